"""The answer pipeline: retrieve → decide → generate → check citations → answer or escalate.

One code path for blocking and streaming answers: :meth:`AnswerPipeline.stream` yields events, and
:meth:`AnswerPipeline.answer` collects them. Streamed ``sentence`` events are provisional until the
``decision`` event: a client must discard them when the decision is ``escalate``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import anyio

from citedesk.core.errors import GeneratorUnavailableError
from citedesk.core.text import markers, renumber_markers, split_complete_sentences, strip_markers
from citedesk.core.types import AnswerReason, Channel, Citation, Decision, Hit, reason_text
from citedesk.retrieval.store import SearchFilter
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
from citedesk.retrieval.confidence import CONFIDENCE_KIND, ConfidenceModel
from citedesk.retrieval.search import Retriever
from citedesk.serving.answer.generators import DECLINE_PATTERN
from citedesk.serving.answer.guidance import match_rule
from citedesk.serving.answer.guidance_store import GuidanceUnavailableError
from citedesk.serving.answer.judges import AnswerabilityJudge
from citedesk.serving.answer.grounding import best_quote, check_claim, non_answer_reason, sanitize
from citedesk.serving.answer.reader import ReaderVerdict
from citedesk.serving.answer.schemas import AnswerRequest, AnswerResponse, HitOut
from citedesk.serving.answer.short_answer import short_answer

log = logging.getLogger(__name__)

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
        entailment_min: with an entailment model, the probability below which a claim is refused.
        judge_timeout: seconds each answerability judge may take before it counts as unavailable.
        reader_timeout: seconds the reader check may take before it counts as unavailable.
        reader_channels: channels whose answers the reader check runs on (when there is one).
        reader_escalates: a reader that picks another answer unit escalates the answer (``reader_disagreement``)
            even when the confidence, which already has the agreement as an input, clears the threshold.
    """

    thresholds: dict[Channel, float]
    top_k: int = 5
    evidence_chunks: int = 4
    min_support: float = 0.6
    entailment_min: float = 0.5
    judge_timeout: float = 3.0
    reader_timeout: float = 10.0
    reader_channels: frozenset[Channel] = frozenset({Channel.CHAT, Channel.VOICE})
    reader_escalates: bool = True


def retrieval_query(request: AnswerRequest, sparse: BM25SparseEncoder, *, min_terms: int = 4) -> str:
    """What is searched: the question, prefixed by the previous customer turn when the question is a short
    follow-up (fewer than ``min_terms`` distinct BM25 terms, e.g. "and on weekends?")."""
    question = request.question.strip()
    if len(set(sparse.terms(question))) >= min_terms:
        return question
    earlier = [t.text.strip() for t in request.history if t.role == "user" and t.text.strip()]
    return f"{earlier[-1][:1000]} {question}" if earlier else question


LEAD_MIN_CONFIDENCE = 0.2
"""An escalation's handoff quotes the reader's pick (its probability ≥ 0.5) only at this confidence or above, where
the articles are about the question. On the 370-row benchmark's escalations (the default reader and thresholds), the
pair of conditions quotes a lead for 77 % of the answerable dev questions, 25 % of them asked without their gold
article, 21 % of MT-RAG conversations and 6 % of off-domain questions (17 % without the confidence floor)."""


def handoff_summary(request: AnswerRequest, hits: list[Hit], reason: str, *,
                    passage: tuple[str, str] | None = None) -> str:
    """A short note for the human who takes over: the question, context, closest articles, the closest passage
    when a reader picked one, and why.

    Args:
        passage: ``(article title, unit text)`` of the answer unit the reader check scored best (its pick, not a
            checked answer), given where the reader vetoed the ranking's unit, or scores its pick as answering at a
            confidence of at least :data:`LEAD_MIN_CONFIDENCE`; cut to 300 characters at a word.
    """
    parts = [f"Customer asked: \"{request.question.strip()[:500]}\"."]
    earlier = [t.text for t in request.history if t.role == "user"][-2:]
    if earlier:
        parts.append("Earlier: " + " / ".join(e.strip()[:200] for e in earlier) + ".")
    titles = list(dict.fromkeys(h.title for h in hits[:3]))
    parts.append("Closest articles: " + ("; ".join(titles) if titles else "none") + ".")
    if passage is not None:
        title, text = passage
        text = " ".join(text.split())
        if len(text) > 300:
            text = text[:300].rsplit(" ", 1)[0] + " …"
        parts.append(f"Closest passage (not checked as an answer), from {title}: \"{text}\".")
    parts.append(f"Escalated because {reason_text(reason)}.")
    return " ".join(parts)


class AnswerPipeline:
    """Grounded answers with citations, or escalation.

    Args:
        retriever: hybrid retriever.
        generator: :class:`~citedesk.serving.answer.generators.ExtractiveGenerator` or ``OpenAIGenerator``.
        sparse: BM25 encoder (term analysis for support checks and quotes).
        policy: thresholds and sizes.
        confidence: confidence model.
        workspace: tenant whose articles are searched.
        recorder: called once per finished answer (before the ``citations`` event) in a worker thread as
            ``recorder(request, response, evidence, workspace=...)``, ``evidence`` being the hits given to the generator
            (``[n]`` cites ``evidence[n-1]``; empty when it escalated before generating) — the audit trail
            (:meth:`citedesk.serving.audit.log.AuditLog.record`). Its exceptions are logged, never raised.
        observer: called once per finished answer, on the event loop, as ``observer(request, response, workspace)``
            (the metrics); cheap and non-blocking. Its exceptions are logged, never raised.
        entailment: optional model slot (``entails(premise, hypothesis) -> probability`` and ``warm_up()``, e.g.
            :class:`citedesk.retrieval.embedding.dense.EntailmentModel`) run after the lexical claim checks.
        judges: optional answerability judges (:mod:`citedesk.serving.answer.judges`); each can only lower
            the confidence, and one that fails or times out is skipped.
        guidance: workspace guidance (:class:`~citedesk.serving.answer.guidance_store.GuidanceStore`, its
            ``current(workspace)``): escalation rules checked before retrieval (reason ``guidance_rule``; unreadable
            guidance escalates with ``guidance_unavailable``) and instructions passed to the generator.
        reader: optional :class:`~citedesk.serving.answer.reader.ReaderAgreementCheck` (extractive generator only),
            run on ``reader_channels`` before the confidence is scored: its agreement is an input of the
            confidence (``reader_agrees``, :data:`~citedesk.retrieval.confidence.READER_WEIGHTS`), and, with
            ``policy.reader_escalates``, when the confidence clears the threshold but the second reader picks
            another answer unit, the answer escalates with ``reader_disagreement`` (its verdict in
            ``signals.reader``); a reader that fails or runs past ``reader_timeout`` is recorded as ``unavailable``
            and the answer is decided without it (the default confidence weights).
    """

    def __init__(self, retriever: Retriever, generator, sparse: BM25SparseEncoder, policy: AnswerPolicy, *,
                 confidence: ConfidenceModel | None = None, workspace: str = "default",
                 recorder: Callable[..., object] | None = None, observer: Callable[..., object] | None = None,
                 entailment=None, judges: Sequence[AnswerabilityJudge] = (), guidance=None, reader=None) -> None:
        self.retriever = retriever
        self.generator = generator
        self.sparse = sparse
        self.policy = policy
        self.confidence = confidence or ConfidenceModel()
        self.workspace = workspace
        self.recorder = recorder
        self.observer = observer
        self.entailment = entailment
        self.judges = list(judges)
        self.guidance = guidance
        self.reader = reader

    def warm_up(self) -> None:
        """Load models (the retriever's, and the entailment model, judges and reader when configured)."""
        self.retriever.warm_up()
        if self.entailment is not None:
            self.entailment.warm_up()
        for judge in self.judges:
            judge.warm_up()
        if self.reader is not None:
            self.reader.warm_up()

    async def answer(self, request: AnswerRequest, *, workspace: str | None = None,
                     exclude_articles: tuple[str, ...] = (), threshold: float | None = None) -> AnswerResponse:
        """Answer or escalate (blocking variant of :meth:`stream`).

        Args:
            request: the question.
            workspace: tenant to search (the caller's API key's); default: the pipeline's.
            exclude_articles: article ids left out of the search (the leave-gold-out eval; not in the API).
            threshold: minimum confidence to answer; default: the policy's threshold of the request's channel.

        Raises:
            IndexUnavailableError: Qdrant unreachable (the API answers 503).
        """
        final = None
        async for event in self.stream(request, workspace=workspace, exclude_articles=exclude_articles,
                                       threshold=threshold):
            if event.type == "done":
                final = event.data["response"]
        assert final is not None
        return final

    async def stream(self, request: AnswerRequest, *, workspace: str | None = None,
                     exclude_articles: tuple[str, ...] = (), threshold: float | None = None) -> AsyncIterator[Event]:
        """Yield ``retrieval``, ``sentence``\\*, ``citations``, ``decision``, ``done`` events.

        ``done.data["response"]`` is the full :class:`AnswerResponse`. Arguments as in :meth:`answer`.
        """
        t0 = time.perf_counter()
        latency: dict[str, float] = {}
        flt = SearchFilter(workspace=workspace or self.workspace,
                           locales=(request.locale,) if request.locale else None,
                           exclude_article_ids=tuple(exclude_articles) or None)
        evidence: list[Hit] = []  # what the generator saw (set below); the recorder gets it

        async def end(response: AnswerResponse):
            response.audit_id = await self.record(request, response, evidence, flt.workspace)
            yield Event("citations", {"citations": [c.model_dump() for c in response.citations]})
            yield Event("decision", {"decision": response.decision.value, "reason": response.reason,
                                     "confidence": response.confidence,
                                     "handoff_summary": response.handoff_summary})
            log.info("answer decision=%s reason=%s confidence=%.3f latency_ms=%s",
                     response.decision.value, response.reason, response.confidence, response.latency_ms)
            yield Event("done", {"response": response})

        instructions: list[str] = []
        if self.guidance is not None:  # before retrieval: a rule needs no search, and unreadable guidance no answer
            try:
                guidance = await anyio.to_thread.run_sync(self.guidance.current, flt.workspace)
            except GuidanceUnavailableError as exc:
                log.error("%s: escalating", exc)
                early = (AnswerReason.GUIDANCE_UNAVAILABLE, {"guidance": {"error": str(exc)[:300]}}, "")
            else:
                rule, early = match_rule(guidance, request), None
                if rule is not None:
                    early = (AnswerReason.GUIDANCE_RULE,
                             {"guidance": {"version": guidance.version, **rule.model_dump()}},
                             f" Guidance rule: {rule.rule} ({rule.matched}).")
                elif guidance is not None:
                    instructions = list(guidance.instructions)
            if early is not None:
                reason, signals, extra = early
                yield Event("retrieval", {"hits": [], "confidence": 0.0})
                latency["total"] = round((time.perf_counter() - t0) * 1000, 2)
                response = AnswerResponse(
                    decision=Decision.ESCALATE, reason=reason, confidence=0.0, confidence_kind=CONFIDENCE_KIND,
                    handoff_summary=handoff_summary(request, [], reason) + extra, hits=[],
                    generator=self.generator.name, model=getattr(self.generator, "model", ""), latency_ms=latency,
                    signals=signals)
                async for e in end(response):
                    yield e
                return

        query = retrieval_query(request, self.sparse)
        top_k = request.top_k or self.policy.top_k
        retrieval = await anyio.to_thread.run_sync(  # cancelled (client gone): stop waiting, drop the result
            lambda: self.retriever.retrieve(query, flt, top_k=top_k), abandon_on_cancel=True)
        for k, v in retrieval.timings.items():
            latency[k] = round(v * 1000, 2)
        hits = retrieval.hits
        features = await anyio.to_thread.run_sync(self.confidence.features, query, hits, self.sparse)
        verdict, read = None, False
        if hits and self.reader is not None and request.channel in self.policy.reader_channels:
            read, verdict = True, await self._read(request.question, hits[: self.policy.evidence_chunks])
            if verdict is not None:  # the reader's agreement is an input of the confidence
                features = dataclasses.replace(features, reader_agrees=verdict.agreement)
        conf = self.confidence.score(features)
        decided: dict = {"confidence": {k: (round(v, 4) if isinstance(v, float) else v)
                                        for k, v in features.as_dict().items()}, "rejected": []}
        if read:
            decided["reader"] = verdict.as_signal() if verdict is not None else "unavailable"
        hits_out = [HitOut(**h.model_dump(include=set(HitOut.model_fields))) for h in hits]
        yield Event("retrieval", {"hits": [h.model_dump() for h in hits_out], "confidence": conf})

        def finish(decision: Decision, reason: str, answer: str = "", citations=(),
                   short: str | None = None) -> AnswerResponse:
            latency["total"] = round((time.perf_counter() - t0) * 1000, 2)
            escalate = decision == Decision.ESCALATE
            may_answer = verdict is not None and (  # the reader's pick, quoted for the human where it may answer
                reason == AnswerReason.READER_DISAGREEMENT or (verdict.pick_answers and conf >= LEAD_MIN_CONFIDENCE))
            lead = verdict.pick(hits) if escalate and may_answer else None
            return AnswerResponse(
                decision=decision, reason=reason, answer="" if escalate else answer,
                citations=[] if escalate else list(citations), short_answer=None if escalate else short,
                confidence=round(conf, 4),
                confidence_kind=CONFIDENCE_KIND,
                handoff_summary=handoff_summary(request, hits, reason, passage=lead) if escalate else None,
                hits=hits_out, generator=self.generator.name, model=getattr(self.generator, "model", ""),
                latency_ms=latency, signals=decided)

        if threshold is None:
            threshold = self.policy.thresholds.get(request.channel, 0.5)
        if hits and conf >= threshold and self.judges:
            conf = await self._judge(request.question, hits[: self.policy.evidence_chunks], conf, decided)
        if not hits or conf < threshold:
            async for e in end(finish(Decision.ESCALATE, AnswerReason.NO_EVIDENCE if not hits else AnswerReason.LOW_CONFIDENCE)):
                yield e
            return

        evidence = hits[: self.policy.evidence_chunks]
        if verdict is not None and not verdict.agrees and self.policy.reader_escalates:
            async for e in end(finish(Decision.ESCALATE, AnswerReason.READER_DISAGREEMENT)):
                yield e
            return
        sentences: list[str] = []
        shown: dict[int, int] = {}  # evidence marker → displayed marker (1..n in order of first citation)
        reason = None
        buffer = ""
        t_gen = time.perf_counter()
        voice = request.channel == Channel.VOICE
        steer = {"guidance": instructions} if instructions else {}  # generators without guidance keep working
        agen = self.generator.stream(request.question, request.history, evidence, voice=voice, **steer)
        try:
            async for delta in agen:
                if "first_token" not in latency:
                    latency["first_token"] = round((time.perf_counter() - t_gen) * 1000, 2)
                buffer += delta
                done, buffer = split_complete_sentences(buffer)
                for raw in done:
                    s, reason = self._check(raw, evidence, first=not sentences, rejected=decided["rejected"])
                    if reason:
                        break
                    if s is None:
                        continue
                    s = renumber_markers(s, shown)
                    sentences.append(s)
                    if "first_sentence" not in latency:
                        latency["first_sentence"] = round((time.perf_counter() - t0) * 1000, 2)
                    yield Event("sentence", {"text": s, "markers": markers(s)})
                if reason:
                    break
        except GeneratorUnavailableError as exc:
            log.warning("generator unavailable: %s", exc)
            reason = AnswerReason.GENERATOR_UNAVAILABLE
        finally:
            await agen.aclose()
        if reason is None and buffer.strip():
            s, reason = self._check(buffer.strip(), evidence, first=not sentences, rejected=decided["rejected"])
            if s is not None:
                s = renumber_markers(s, shown)
                sentences.append(s)
                latency.setdefault("first_sentence", round((time.perf_counter() - t0) * 1000, 2))
                yield Event("sentence", {"text": s, "markers": markers(s)})
        if reason is None and not sentences:
            reason = AnswerReason.UNCITED_ANSWER
        if reason is not None:
            async for e in end(finish(Decision.ESCALATE, reason)):
                yield e
            return
        # Evidence in displayed order, so that ``[n]`` still cites ``evidence[n-1]`` (citations, audit record).
        evidence = ([evidence[m - 1] for m in shown]
                    + [h for i, h in enumerate(evidence, start=1) if i not in shown])
        citations = self._citations(sentences, evidence)
        short = short_answer(request.question, sentences, evidence, self.sparse)
        async for e in end(finish(Decision.ANSWER, AnswerReason.GROUNDED, " ".join(sentences), citations, short)):
            yield e

    async def _read(self, question: str, evidence: list[Hit]) -> ReaderVerdict | None:
        """Run the reader check; None when it failed or ran past ``reader_timeout`` (then the answer is decided
        without it)."""
        try:
            with anyio.fail_after(self.policy.reader_timeout):
                return await self.reader.check(question, evidence)
        except Exception as exc:  # a reader that fails or is slow never blocks the answer; it is recorded
            log.warning("reader check unavailable (%s): answering without it", type(exc).__name__)
            return None

    async def _judge(self, question: str, evidence: list[Hit], conf: float, decided: dict) -> float:
        """Lower ``conf`` to each judge's probability; record each in ``decided["judges"]`` (or ``unavailable``)."""
        verdicts = decided.setdefault("judges", {})
        for judge in self.judges:
            try:
                with anyio.fail_after(self.policy.judge_timeout):
                    p = float(await judge.probability(question, evidence))
            except (TimeoutError, GeneratorUnavailableError) as exc:
                log.warning("answerability judge %s unavailable (%s): the fitted confidence decides",
                            judge.name, type(exc).__name__)
                verdicts[judge.name] = "unavailable"
                continue
            verdicts[judge.name] = round(p, 4)
            conf = min(conf, p)
        return conf

    async def record(self, request: AnswerRequest, response: AnswerResponse, evidence: list[Hit],
                     workspace: str) -> str | None:
        """Hand a finished answer to the observer, then to the recorder in a worker thread.

        Also used for answers made outside :meth:`stream`, such as voice turns continued from a
        ``voice_state``. A failing recorder is logged and never raised: the answer goes on.

        Args:
            request: the question as asked.
            response: the final answer or escalation.
            evidence: the hits given to the generator, in marker order (``[n]`` cites
                ``evidence[n-1]``); empty when nothing was generated this turn.
            workspace: the tenant the answer belongs to.

        Returns:
            The audit record's id (what the recorder returned), or None (no recorder, or it failed).
        """
        if self.observer is not None:
            try:
                self.observer(request, response, workspace)
            except Exception:  # noqa: BLE001 - metrics must never fail an answer
                log.exception("observing the answer failed")
        if self.recorder is None:
            return None
        try:
            record_id = await anyio.to_thread.run_sync(
                lambda: self.recorder(request, response, list(evidence), workspace=workspace))
        except Exception:  # noqa: BLE001 - recording must never fail an answer
            log.exception("recording the answer failed (answer delivered anyway)")
            return None
        return record_id if isinstance(record_id, str) else None

    def _check(self, sentence: str, evidence: list[Hit], *, first: bool,
               rejected: list[dict] | None = None) -> tuple[str | None, str | None]:
        """Vet one generated sentence with the claim checks (:func:`~citedesk.serving.answer.grounding.check_claim`).

        Args:
            sentence: one drafted sentence with its markers.
            evidence: the hits the generator saw (``[n]`` is ``evidence[n-1]``).
            first: the answer's first sentence (where a decline is recognised).
            rejected: collects ``{"sentence", "reason", "score"}`` for sentences dropped or refused (the
                response's ``signals``).

        Returns:
            ``(sentence, None)`` to emit (sanitised; an uncited but supported sentence gets the marker of
            its best-supporting source), ``(None, None)`` to drop a piece that is not an answer (a question,
            a heading, a see-also line, markup only), or ``(None, reason)`` to escalate.
        """
        rejected = rejected if rejected is not None else []
        if first and DECLINE_PATTERN.match(sentence):
            rejected.append({"sentence": sentence[:300], "reason": "declined", "score": None})
            return None, AnswerReason.GENERATOR_DECLINED
        why = non_answer_reason(sentence)
        if why is not None:
            rejected.append({"sentence": sentence[:300], "reason": f"not_an_answer ({why})", "score": None})
            return None, None
        clean = sanitize(sentence)
        if not re.search(r"\w", strip_markers(clean)):
            return None, None
        cited = list(dict.fromkeys(markers(clean)))
        if any(not 1 <= m <= len(evidence) for m in cited):
            return None, AnswerReason.INVALID_CITATION
        passages = [f"{h.title} {h.heading}\n{h.table_header}\n{h.text}" if h.table_header
                    else f"{h.title} {h.heading} {h.text}" for h in evidence]
        entail = self.entailment.entails if self.entailment is not None else None

        def check(texts: list[str]):
            return check_claim(clean, texts, self.sparse, min_support=self.policy.min_support, entail=entail,
                               entail_min=self.policy.entailment_min)

        if cited:
            result = check([passages[m - 1] for m in cited])
            if result.supported:
                return clean, None
            rejected.append({"sentence": clean[:300], "reason": result.reason, "score": round(result.score, 4)})
            return None, AnswerReason.UNSUPPORTED_CITATION
        results = [check([p]) for p in passages]
        ok = [i for i, r in enumerate(results) if r.supported]
        if not ok:
            worst = max(results, key=lambda r: r.score)
            rejected.append({"sentence": clean[:300], "reason": worst.reason, "score": round(worst.score, 4)})
            return None, AnswerReason.UNSUPPORTED_CLAIM
        best = max(ok, key=lambda i: results[i].score)
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
