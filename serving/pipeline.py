"""The answer pipeline: retrieve → decide → generate → check citations → answer or escalate.

One code path for blocking and streaming answers: :meth:`AnswerPipeline.stream` yields events, and
:meth:`AnswerPipeline.answer` collects them. Streamed ``sentence`` events are provisional until the
``decision`` event: a client must discard them when the decision is ``escalate``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio

from core.errors import GeneratorUnavailableError
from core.text import (HTML_TAG, MD_IMAGE, markers, sentence_spans, split_complete_sentences, strip_markers,
                       with_list_items)
from core.types import Channel, Citation, Decision, Hit
from ingest.index import SearchFilter
from ingest.sparse import BM25SparseEncoder
from retrieval.confidence import CONFIDENCE_KIND, ConfidenceModel
from retrieval.search import Retriever
from serving.generators import DECLINE_PATTERN
from serving.schemas import AnswerRequest, AnswerResponse, HitOut

log = logging.getLogger(__name__)

REASON_TEXT = {
    "no_evidence": "no article matches the question",
    "low_confidence": "the closest articles are unlikely to answer the question",
    "generator_declined": "the model found no answer in the articles",
    "uncited_answer": "the model drafted no usable answer",
    "unsupported_claim": "a sentence of the drafted answer is not supported by any retrieved passage",
    "invalid_citation": "the drafted answer cited a source that was not retrieved",
    "unsupported_citation": "the drafted answer is not supported by the passages it cites",
    "generator_unavailable": "the language model is unavailable",
    "index_unavailable": "the knowledge base could not be searched",
}


@dataclass
class Event:
    """A streaming event: ``retrieval``, ``sentence``, ``citations``, ``decision`` or ``done``."""

    type: str
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AnswerPolicy:
    """Thresholds and sizes of the answer step.

    Attributes:
        thresholds: minimum confidence per channel to attempt an answer.
        top_k: hits retrieved.
        evidence_chunks: hits given to the generator (≤ top_k).
        min_support: share of an answer sentence's terms that must appear in the chunks it cites (and
            every number in it must appear there too).
    """

    thresholds: dict[Channel, float]
    top_k: int = 5
    evidence_chunks: int = 4
    min_support: float = 0.6


_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_CODE_BLOCK = re.compile(r"<(script|style|iframe|object)\b.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_MD_LINK = re.compile(r"\[([^\]]+)\]\((?:https?:|mailto:|www\.)[^)]*\)")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


def sanitize(sentence: str) -> str:
    """Generated sentence without markup, images, links or URLs (citation markers kept)."""
    s = _CODE_BLOCK.sub("", sentence)
    s = MD_IMAGE.sub("", s)
    s = _MD_LINK.sub(r"\1", s)
    s = _URL.sub("", s)
    s = HTML_TAG.sub("", s)
    s = re.sub(r"[*`]+", "", s)  # emphasis and code marks
    s = re.sub(r"(?<!\w)_+|_+(?!\w)", "", s)  # _emphasis_, but not snake_case identifiers
    s = re.sub(r"(?m)^\s*[#>]+\s+", "", s)  # heading / quote marks at line start, not "C#" or "a > b"
    return re.sub(r"\s+", " ", s).strip()


def _quantities(text: str, sparse: BM25SparseEncoder, window: int = 3) -> tuple[set[str], set[tuple[str, str]]]:
    """Numbers of a text, and (number, stemmed word) pairs for words up to ``window`` tokens after it."""
    tokens = _TOKEN.findall(text.lower())
    numbers, pairs = set(), set()
    for i, tok in enumerate(tokens):
        if tok[0].isdigit():
            numbers.add(tok)
            for w in tokens[i + 1:i + 1 + window]:
                if not w[0].isdigit():
                    stems = sparse.terms(w)
                    pairs.add((tok, stems[0] if stems else w))
    return numbers, pairs


def support(sentence: str, passages: list[str], sparse: BM25SparseEncoder) -> float:
    """Share in [0, 1] of the sentence's terms found in the passages.

    0 when a quantity of the sentence is absent: every number must occur in the passages, and when a
    word follows it in the sentence ("3 bytes"), the same number must be followed by that word within
    three tokens in a passage.
    """
    claim = strip_markers(sentence)
    text = " ".join(passages)
    p_numbers, p_pairs = _quantities(text, sparse)
    tokens = _TOKEN.findall(claim.lower())
    for i, tok in enumerate(tokens):
        if not tok[0].isdigit():
            continue
        if tok not in p_numbers:
            return 0.0
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        stems = sparse.terms(nxt) if nxt and not nxt[0].isdigit() else []
        if stems and (tok, stems[0]) not in p_pairs:
            return 0.0
    terms = set(sparse.terms(claim))
    if not terms:
        return 1.0
    return len(terms & set(sparse.terms(text))) / len(terms)


def best_quote(hit: Hit, claims: list[str], sparse: BM25SparseEncoder, *,
               max_chars: int = 1000) -> tuple[str, int, int]:
    """The quoted span of ``hit.text`` backing the claims citing it: (quote, start, end).

    Each claim picks the sentence (or list item) of the chunk sharing most of its BM25 terms; the quote
    is the contiguous span from the first to the last picked sentence, so every claim finds its support
    in it. When that span is over ``max_chars`` characters, the single sentence best for all claims
    together is quoted instead. Offsets are characters into ``hit.text``.
    """
    spans = list(with_list_items(hit.text, sentence_spans(hit.text)))
    if not spans:
        return hit.text, 0, len(hit.text)
    span_terms = [set(sparse.terms(span.text)) for span in spans]

    def best(terms: set[str]) -> int:
        scores = [len(terms & st) / (1 + 0.01 * len(span.text)) for span, st in zip(spans, span_terms)]
        return scores.index(max(scores))

    claim_terms = [set(sparse.terms(strip_markers(c))) for c in claims]
    picked = [spans[best(t)] for t in claim_terms] or [spans[0]]
    start, end = min(p.start for p in picked), max(p.end for p in picked)
    if end - start > max_chars:
        one = spans[best(set().union(*claim_terms))]
        start, end = one.start, one.end
    return hit.text[start:end], start, end


def retrieval_query(request: AnswerRequest, sparse: BM25SparseEncoder, *, min_terms: int = 4) -> str:
    """What is searched: the question, prefixed by the previous customer turn when the question is a short
    follow-up (fewer than ``min_terms`` distinct BM25 terms, e.g. "and on weekends?")."""
    question = request.question.strip()
    if len(set(sparse.terms(question))) >= min_terms:
        return question
    earlier = [t.text.strip() for t in request.history if t.role == "user" and t.text.strip()]
    return f"{earlier[-1][:1000]} {question}" if earlier else question


def handoff_summary(request: AnswerRequest, hits: list[Hit], reason: str) -> str:
    """A short note for the human who takes over: the question, context, closest articles and why."""
    parts = [f"Customer asked: \"{request.question.strip()[:500]}\"."]
    earlier = [t.text for t in request.history if t.role == "user"][-2:]
    if earlier:
        parts.append("Earlier: " + " / ".join(e.strip()[:200] for e in earlier) + ".")
    titles = list(dict.fromkeys(h.title for h in hits[:3]))
    parts.append("Closest articles: " + ("; ".join(titles) if titles else "none") + ".")
    parts.append(f"Escalated because {REASON_TEXT.get(reason, reason)}.")
    return " ".join(parts)


class AnswerPipeline:
    """Grounded answers with citations, or escalation.

    Args:
        retriever: hybrid retriever.
        generator: :class:`~serving.generators.ExtractiveGenerator` or ``OpenAIGenerator``.
        sparse: BM25 encoder (term analysis for support checks and quotes).
        policy: thresholds and sizes.
        confidence: confidence model.
        workspace: tenant whose articles are searched.
        recorder: called once per finished answer (before the ``citations`` event) in a worker thread as
            ``recorder(request, response, evidence, workspace=...)``, ``evidence`` being the hits given to the generator
            (``[n]`` cites ``evidence[n-1]``; empty when it escalated before generating) — the audit trail
            (:meth:`serving.audit.AuditLog.record`). Its exceptions are logged, never raised.
    """

    def __init__(self, retriever: Retriever, generator, sparse: BM25SparseEncoder, policy: AnswerPolicy, *,
                 confidence: ConfidenceModel | None = None, workspace: str = "default",
                 recorder: Callable[..., object] | None = None) -> None:
        self.retriever = retriever
        self.generator = generator
        self.sparse = sparse
        self.policy = policy
        self.confidence = confidence or ConfidenceModel()
        self.workspace = workspace
        self.recorder = recorder

    def warm_up(self) -> None:
        """Load models."""
        self.retriever.warm_up()

    async def answer(self, request: AnswerRequest, *, workspace: str | None = None) -> AnswerResponse:
        """Answer or escalate (blocking variant of :meth:`stream`).

        Args:
            request: the question.
            workspace: tenant to search (the caller's API key's); default: the pipeline's.

        Raises:
            IndexUnavailableError: Qdrant unreachable (the API answers 503).
        """
        final = None
        async for event in self.stream(request, workspace=workspace):
            if event.type == "done":
                final = event.data["response"]
        assert final is not None
        return final

    async def stream(self, request: AnswerRequest, *, workspace: str | None = None) -> AsyncIterator[Event]:
        """Yield ``retrieval``, ``sentence``\\*, ``citations``, ``decision``, ``done`` events.

        ``done.data["response"]`` is the full :class:`AnswerResponse`.
        """
        t0 = time.perf_counter()
        latency: dict[str, float] = {}
        flt = SearchFilter(workspace=workspace or self.workspace,
                           locales=(request.locale,) if request.locale else None)
        query = retrieval_query(request, self.sparse)
        top_k = request.top_k or self.policy.top_k
        retrieval = await anyio.to_thread.run_sync(  # cancelled (client gone): stop waiting, drop the result
            lambda: self.retriever.retrieve(query, flt, top_k=top_k), abandon_on_cancel=True)
        for k, v in retrieval.timings.items():
            latency[k] = round(v * 1000, 2)
        hits = retrieval.hits
        conf = self.confidence.score(self.confidence.features(query, hits, self.sparse))
        hits_out = [HitOut(**h.model_dump(include=set(HitOut.model_fields))) for h in hits]
        yield Event("retrieval", {"hits": [h.model_dump() for h in hits_out], "confidence": conf})

        def finish(decision: Decision, reason: str, answer: str = "", citations=()) -> AnswerResponse:
            latency["total"] = round((time.perf_counter() - t0) * 1000, 2)
            escalate = decision == Decision.ESCALATE
            return AnswerResponse(
                decision=decision, reason=reason, answer="" if escalate else answer,
                citations=[] if escalate else list(citations), confidence=round(conf, 4),
                confidence_kind=CONFIDENCE_KIND,
                handoff_summary=handoff_summary(request, hits, reason) if escalate else None,
                hits=hits_out, generator=self.generator.name, model=getattr(self.generator, "model", ""),
                latency_ms=latency)

        evidence: list[Hit] = []  # what the generator saw (set below); the recorder gets it

        async def end(response: AnswerResponse):
            await self.record(request, response, evidence, flt.workspace)
            yield Event("citations", {"citations": [c.model_dump() for c in response.citations]})
            yield Event("decision", {"decision": response.decision.value, "reason": response.reason,
                                     "confidence": response.confidence,
                                     "handoff_summary": response.handoff_summary})
            log.info("answer decision=%s reason=%s confidence=%.3f latency_ms=%s",
                     response.decision.value, response.reason, response.confidence, response.latency_ms)
            yield Event("done", {"response": response})

        threshold = self.policy.thresholds.get(request.channel, 0.5)
        if not hits or conf < threshold:
            async for e in end(finish(Decision.ESCALATE, "no_evidence" if not hits else "low_confidence")):
                yield e
            return

        evidence = hits[: self.policy.evidence_chunks]
        sentences: list[str] = []
        reason = None
        buffer = ""
        t_gen = time.perf_counter()
        voice = request.channel == Channel.VOICE
        agen = self.generator.stream(request.question, request.history, evidence, voice=voice)
        try:
            async for delta in agen:
                if "first_token" not in latency:
                    latency["first_token"] = round((time.perf_counter() - t_gen) * 1000, 2)
                buffer += delta
                done, buffer = split_complete_sentences(buffer)
                for raw in done:
                    s, reason = self._check(raw, evidence, first=not sentences)
                    if reason:
                        break
                    if s is None:
                        continue
                    sentences.append(s)
                    if "first_sentence" not in latency:
                        latency["first_sentence"] = round((time.perf_counter() - t0) * 1000, 2)
                    yield Event("sentence", {"text": s, "markers": markers(s)})
                if reason:
                    break
        except GeneratorUnavailableError as exc:
            log.warning("generator unavailable: %s", exc)
            reason = "generator_unavailable"
        finally:
            await agen.aclose()
        if reason is None and buffer.strip():
            s, reason = self._check(buffer.strip(), evidence, first=not sentences)
            if s is not None:
                sentences.append(s)
                latency.setdefault("first_sentence", round((time.perf_counter() - t0) * 1000, 2))
                yield Event("sentence", {"text": s, "markers": markers(s)})
        if reason is None and not sentences:
            reason = "uncited_answer"
        if reason is not None:
            async for e in end(finish(Decision.ESCALATE, reason)):
                yield e
            return
        citations = self._citations(sentences, evidence)
        async for e in end(finish(Decision.ANSWER, "grounded", " ".join(sentences), citations)):
            yield e

    async def record(self, request: AnswerRequest, response: AnswerResponse, evidence: list[Hit],
                     workspace: str) -> None:
        """Hand a finished answer to the recorder, in a worker thread.

        Also used for answers made outside :meth:`stream`, such as voice turns continued from a
        ``voice_state``. A failing recorder is logged and never raised: the answer goes on.

        Args:
            request: the question as asked.
            response: the final answer or escalation.
            evidence: the hits given to the generator, in marker order (``[n]`` cites
                ``evidence[n-1]``); empty when nothing was generated this turn.
            workspace: the tenant the answer belongs to.
        """
        if self.recorder is None:
            return
        try:
            await anyio.to_thread.run_sync(
                lambda: self.recorder(request, response, list(evidence), workspace=workspace))
        except Exception:  # noqa: BLE001 - recording must never fail an answer
            log.exception("recording the answer failed (answer delivered anyway)")

    def _check(self, sentence: str, evidence: list[Hit], *, first: bool) -> tuple[str | None, str | None]:
        """Vet one generated sentence.

        Returns:
            ``(sentence, None)`` to emit (sanitised; an uncited but supported sentence gets the marker of
            its best-supporting source), ``(None, None)`` to drop a markup-only piece, or
            ``(None, reason)`` to escalate.
        """
        if first and DECLINE_PATTERN.match(sentence):
            return None, "generator_declined"
        clean = sanitize(sentence)
        if not re.search(r"\w", strip_markers(clean)):
            return None, None
        cited = list(dict.fromkeys(markers(clean)))
        if any(not 1 <= m <= len(evidence) for m in cited):
            return None, "invalid_citation"
        passages = [f"{h.title} {h.text}" for h in evidence]
        if cited:
            ok = support(clean, [passages[m - 1] for m in cited], self.sparse) >= self.policy.min_support
            return (clean, None) if ok else (None, "unsupported_citation")
        scores = [support(clean, [p], self.sparse) for p in passages]
        best = max(range(len(scores)), key=scores.__getitem__)
        if scores[best] < self.policy.min_support:
            return None, "unsupported_claim"
        return f"{clean} [{best + 1}]", None

    def _citations(self, sentences: list[str], evidence: list[Hit]) -> list[Citation]:
        claims: dict[int, list[str]] = {}
        for s in sentences:
            for m in dict.fromkeys(markers(s)):
                claims.setdefault(m, []).append(s)
        out = []
        for m in sorted(claims):
            hit = evidence[m - 1]
            quote, start, end = best_quote(hit, claims[m], self.sparse)
            out.append(Citation(marker=m, article_id=hit.article_id, title=hit.title, url=hit.url, source=hit.source,
                                locale=hit.locale, updated_at=hit.updated_at, content_hash=hit.content_hash,
                                chunk_index=hit.chunk_index, quote=quote, quote_start=start, quote_end=end))
        return out
