"""Evaluation: retrieval quality of a gold document, answer/escalation quality, threshold calibration.

Retrieval (:func:`evaluate_retrieval`): per question the top ``chunks`` chunks are reduced to distinct
articles in rank order; the gold document's rank r gives recall@k (r ≤ k), reciprocal rank 1/r and
nDCG@10 (one relevant document: ``1/log2(r + 1)`` when r ≤ 10, else 0). Modes: ``sparse`` (BM25 only),
``dense``, ``hybrid`` (RRF) and ``hybrid+rerank`` (needs a configured cross-encoder; otherwise the row
says it is not available instead of inventing figures). :func:`evaluate_ranker` scores any other
ranking function the same way (the LlamaIndex baseline of :mod:`serving.evaluation_baseline`).

Answers (:func:`evaluate_answers`) on IBM MT-RAG conversations: each conversation's last user turn is
asked, with its history, against an index holding its gold passages plus other conversations' passages
of the same collection. Escalation quality is measured against the answerability labels and citation
support is judged per cited sentence (:class:`LexicalJudge` offline, :class:`LLMJudge` when an LLM is
configured).

Calibration (:func:`pick_threshold`): the lowest confidence threshold whose answered questions reach a
target precision.
"""

from __future__ import annotations

import csv
import json
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.text import markers, split_complete_sentences, strip_markers
from core.types import Article, Channel, Decision, Hit, ScoreKind, Turn
from ingest.index import SearchFilter
from ingest.sparse import BM25SparseEncoder
from retrieval.search import Retriever

RETRIEVAL_MODES = ("sparse", "dense", "hybrid", "hybrid+rerank")
"""Modes :func:`evaluate_retrieval` knows; ``hybrid+rerank`` is hybrid with the cross-encoder rerank."""

RERANK_UNAVAILABLE = ("not available offline: no cross-encoder configured (retrieval.rerank_model); "
                      "no cross-encoder weights are installable from a package registry here")

ANSWERABLE_LABELS = frozenset({"ANSWERABLE", "PARTIAL"})
"""MT-RAG answerability labels counted as answerable; UNANSWERABLE and UNDERSPECIFIED should escalate."""


# --------------------------------------------------------------------------------------------------
# retrieval
# --------------------------------------------------------------------------------------------------
def load_questions(path: Path) -> list[dict]:
    """Rows of a CSV with at least ``question`` and ``gold_document`` (an article id) columns.

    Raises:
        FileNotFoundError: no such file.
        ValueError: no row has both columns filled.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"questions CSV not found: {path}")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("question") and r.get("gold_document")]
    if not rows:
        raise ValueError(f"{path}: no rows with question and gold_document")
    return rows


def rank_of(gold: str, article_ids: list[str]) -> int | None:
    """1-based rank of ``gold`` among distinct article ids (first occurrence order), or None."""
    seen: list[str] = []
    for a in article_ids:
        if a not in seen:
            seen.append(a)
    return seen.index(gold) + 1 if gold in seen else None


def ndcg_at(rank: int | None, k: int = 10) -> float:
    """nDCG@k with one relevant document at 1-based ``rank`` (None: not retrieved) → [0, 1]."""
    if rank is None or rank > k:
        return 0.0
    return 1.0 / math.log2(rank + 1)


def ranking_metrics(ranks: Sequence[int | None]) -> dict:
    """Aggregate gold-document ranks.

    Returns:
        ``n``, ``recall@1``, ``recall@5``, ``recall@10``, ``mrr``, ``ndcg@10`` (all in [0, 1]).
    """
    n = len(ranks)
    if n == 0:
        raise ValueError("no ranks to aggregate")
    return {
        "n": n,
        **{f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 5, 10)},
        "mrr": sum(1 / r for r in ranks if r is not None) / n,
        "ndcg@10": sum(ndcg_at(r, 10) for r in ranks) / n,
    }


def evaluate_ranker(name: str, rank_fn: Callable[[str], list[str]], questions: list[dict]) -> dict:
    """Document-level metrics of any ranking function.

    Args:
        name: row label (``mode`` key of the result).
        rank_fn: question → article ids of its hits, best first (duplicates allowed).
        questions: rows with ``question`` and ``gold_document``.

    Returns:
        ``{"mode": name, "available": True, **ranking_metrics, "latency_p50_ms"}`` (wall time of
        ``rank_fn`` per question, milliseconds).
    """
    ranks, times = [], []
    for q in questions:
        t = time.perf_counter()
        ids = rank_fn(q["question"])
        times.append((time.perf_counter() - t) * 1000)
        ranks.append(rank_of(q["gold_document"], ids))
    return {"mode": name, "available": True, **ranking_metrics(ranks),
            "latency_p50_ms": statistics.median(times)}


def evaluate_retrieval(retriever: Retriever, questions: list[dict], *, workspace: str,
                       modes: list[str], chunks: int = 50) -> list[dict]:
    """Document-level metrics per retrieval mode.

    Args:
        retriever: the product retriever (its ``reranker`` serves ``hybrid+rerank``).
        questions: rows with ``question`` and ``gold_document``.
        workspace: tenant searched.
        modes: subset of :data:`RETRIEVAL_MODES`, in output order.
        chunks: chunks retrieved per question before reduction to distinct articles.

    Returns:
        One dict per mode: ``mode``, ``available``, ``n``, ``recall@1``, ``recall@5``, ``recall@10``,
        ``mrr``, ``ndcg@10``, ``latency_p50_ms`` (retrieval wall time per query, milliseconds). A
        ``hybrid+rerank`` row without a reranker has ``available: False``, a ``note`` and no metrics.

    Raises:
        ValueError: unknown mode. IndexUnavailableError: Qdrant unreachable.
    """
    unknown = [m for m in modes if m not in RETRIEVAL_MODES]
    if unknown:
        raise ValueError(f"unknown retrieval mode(s) {unknown}; choose from {', '.join(RETRIEVAL_MODES)}")
    flt = SearchFilter(workspace=workspace)
    results = []
    for mode in modes:
        rerank = mode == "hybrid+rerank"
        if rerank and retriever.reranker is None:
            results.append({"mode": mode, "available": False, "n": len(questions), "note": RERANK_UNAVAILABLE})
            continue
        base = "hybrid" if rerank else mode

        def rank_fn(question: str, base=base, rerank=rerank) -> list[str]:
            r = retriever.retrieve(question, flt, top_k=chunks, mode=base, rerank=rerank)
            return [h.article_id for h in r.hits]

        results.append(evaluate_ranker(mode, rank_fn, questions))
    return results


# --------------------------------------------------------------------------------------------------
# escalation metrics and calibration
# --------------------------------------------------------------------------------------------------
def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (None when one class is missing)."""
    if len({bool(x) for x in labels}) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([int(bool(x)) for x in labels], list(scores)))


def answer_stats(confidences: Sequence[float], labels: Sequence[bool], threshold: float) -> dict:
    """What answering at ``confidence ≥ threshold`` gives.

    Returns:
        ``threshold``, ``answered`` (count), ``precision`` (share of answered that are answerable, None
        when nothing is answered), ``coverage`` (share of answerable answered), ``unanswerable_escalated``
        (share of unanswerable below the threshold); shares in [0, 1] or None without such cases.
    """
    ans = [c >= threshold for c in confidences]
    n_ans = sum(ans)
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    tp = sum(1 for a, y in zip(ans, labels) if a and y)
    fp = n_ans - tp
    return {"threshold": threshold, "answered": n_ans,
            "precision": tp / n_ans if n_ans else None,
            "coverage": tp / pos if pos else None,
            "unanswerable_escalated": (neg - fp) / neg if neg else None}


def pick_threshold(confidences: Sequence[float], labels: Sequence[bool], target_precision: float) -> dict:
    """Lowest threshold whose answered questions reach ``target_precision`` (most coverage at that precision).

    Candidates are the observed confidences. When none reaches the target, the threshold is 1.0 (answer
    only a confidence of exactly 1) and ``reached`` is False.

    Args:
        confidences: per question, kind ``answerable_probability`` in [0, 1].
        labels: True for answerable questions.
        target_precision: in (0, 1].

    Returns:
        :func:`answer_stats` at the chosen threshold plus ``target_precision`` and ``reached``.

    Raises:
        ValueError: empty input, length mismatch, or a target outside (0, 1].
    """
    if not confidences or len(confidences) != len(labels):
        raise ValueError("need as many labels as confidences, at least one")
    if not 0 < target_precision <= 1:
        raise ValueError("target_precision must be in (0, 1]")
    for t in sorted(set(confidences)):
        st = answer_stats(confidences, labels, t)
        if st["precision"] is not None and st["precision"] >= target_precision:
            return {**st, "target_precision": target_precision, "reached": True}
    return {**answer_stats(confidences, labels, 1.0), "target_precision": target_precision, "reached": False}


def write_thresholds(path: Path, thresholds: dict[str, float]) -> None:
    """Set ``[answer] threshold_<channel>`` keys in a TOML settings file, keeping everything else.

    Args:
        path: TOML file (created when missing).
        thresholds: channel name (``chat``, ``voice``) → confidence threshold in [0, 1].
    """
    import tomlkit

    path = Path(path)
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.is_file() else tomlkit.document()
    if "answer" not in doc:
        doc["answer"] = tomlkit.table()
    for channel, value in thresholds.items():
        doc["answer"][f"threshold_{channel}"] = round(float(value), 4)
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# MT-RAG answers
# --------------------------------------------------------------------------------------------------
@dataclass
class Conversation:
    """One MT-RAG task: the last user turn to answer, its history and gold passages.

    Attributes:
        label: MT-RAG answerability label (ANSWERABLE, PARTIAL, UNANSWERABLE, UNDERSPECIFIED).
        contexts: gold passages as (document_id, text).
    """

    conversation_id: str
    collection: str
    label: str
    question: str
    history: list[Turn]
    contexts: list[tuple[str, str]]

    @property
    def answerable(self) -> bool:
        """True for labels in :data:`ANSWERABLE_LABELS`."""
        return self.label in ANSWERABLE_LABELS


def load_mtrag(path: Path) -> list[Conversation]:
    """Conversations of an MT-RAG ``reference.jsonl`` (tasks whose last turn is the user's).

    Raises:
        FileNotFoundError: no such file. ValueError: no usable conversation.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MT-RAG file not found: {path}")
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            turns = row.get("input") or []
            if not turns or turns[-1].get("speaker") != "user" or not turns[-1].get("text", "").strip():
                continue
            history = [Turn(role="user" if t["speaker"] == "user" else "agent", text=t["text"][:8000])
                       for t in turns[:-1]]
            out.append(Conversation(
                conversation_id=row.get("task_id") or row["conversation_id"], collection=row.get("Collection", ""),
                label=(row.get("answerability") or ["UNKNOWN"])[0], question=turns[-1]["text"].strip()[:2000],
                history=history[-50:],
                contexts=[(c["document_id"], c["text"]) for c in row.get("contexts") or [] if c.get("text")]))
    if not out:
        raise ValueError(f"{path}: no conversation ending with a user turn")
    return out


def sample_conversations(conversations: list[Conversation], limit: int | None, *, seed: int = 13) -> list[Conversation]:
    """A seeded random sample of at most ``limit`` conversations (all, shuffled, when None)."""
    rows = list(conversations)
    random.Random(seed).shuffle(rows)
    return rows[:limit] if limit else rows


class PassageConnector:
    """A connector over MT-RAG passages: one plain-text article per passage (document id = article id).

    Args:
        workspace: tenant the passages go to (one per MT-RAG collection).
        passages: (document_id, text).
    """

    name = "mtrag"

    def __init__(self, workspace: str, passages: list[tuple[str, str]]) -> None:
        self.workspace = workspace
        self.passages = passages

    @property
    def total_hint(self) -> int:
        return len(self.passages)

    def list_articles(self) -> Iterator[Article]:
        for doc_id, text in self.passages:
            title = " ".join(text.split()[:8])
            yield Article(source=self.name, workspace=self.workspace, article_id=doc_id, title=title,
                          body=text.strip(), body_format="text", updated_at=1)

    def fetch_article(self, article_id: str) -> list[Article]:
        return [a for a in self.list_articles() if a.article_id == article_id]


def passages_by_collection(sample: list[Conversation], everything: list[Conversation], *,
                           pool: int, seed: int = 13) -> dict[str, list[tuple[str, str]]]:
    """Passages to index per collection: every sampled conversation's gold passages plus up to ``pool``
    passages of other conversations of the same collection (distractors), deduplicated by document id."""
    rng = random.Random(seed)
    out: dict[str, dict[str, str]] = {}
    for conv in sample:
        out.setdefault(conv.collection, {}).update(dict(conv.contexts))
    chosen = {c.conversation_id for c in sample}
    for coll, passages in out.items():
        others = [p for c in everything if c.collection == coll and c.conversation_id not in chosen
                  for p in c.contexts if p[0] not in passages]
        others = list(dict(others).items())
        rng.shuffle(others)
        passages.update(dict(others[:pool]))
    return {coll: sorted(p.items()) for coll, p in out.items()}


class LexicalJudge:
    """Offline citation-support judge: a sentence is supported when at least ``min_overlap`` of its
    content terms (stemmed, stop words removed) occur in the quotes it cites. Score kind: ``term_overlap``."""

    name = "lexical"

    def __init__(self, sparse: BM25SparseEncoder, *, min_overlap: float = 0.6) -> None:
        self.sparse = sparse
        self.min_overlap = min_overlap

    def overlap(self, sentence: str, quotes: list[str]) -> float:
        """Share in [0, 1] of the sentence's terms found in the quotes (1 when it has no terms)."""
        terms = set(self.sparse.terms(strip_markers(sentence)))
        if not terms:
            return 1.0
        return len(terms & set(self.sparse.terms(" ".join(quotes)))) / len(terms)

    async def supports(self, sentence: str, quotes: list[str]) -> bool:
        """True when :meth:`overlap` ≥ ``min_overlap``."""
        return self.overlap(sentence, quotes) >= self.min_overlap


class LLMJudge:
    """LLM citation-support judge through the configured OpenAI-compatible generator.

    The quotes are given as sources and the model is asked whether they state the sentence; a reply
    starting with "yes" counts as supported. An unreachable LLM raises GeneratorUnavailableError.
    """

    def __init__(self, generator) -> None:
        self.generator = generator
        self.name = f"llm:{getattr(generator, 'model', 'default')}"

    async def supports(self, sentence: str, quotes: list[str]) -> bool:
        evidence = [Hit(point_id=str(i), score=1.0, score_kind=ScoreKind.COSINE, workspace="judge", source="judge",
                        article_id=f"quote-{i}", locale="en", title=f"quote {i}", content_hash="", chunk_index=0,
                        text=q) for i, q in enumerate(quotes, 1)]
        prompt = (f'Claim: "{strip_markers(sentence)}"\nDo the sources state this claim? '
                  "Reply with YES or NO only.")
        reply = ""
        async for delta in self.generator.stream(prompt, [], evidence):
            reply += delta
            if len(reply) > 40:
                break
        return reply.strip().lower().startswith("yes")


@dataclass
class AnswerEval:
    """Outcome of :func:`evaluate_answers`.

    Attributes:
        summary: aggregate figures (see :func:`evaluate_answers`).
        rows: one dict per conversation.
    """

    summary: dict
    rows: list[dict] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"summary": self.summary, "conversations": self.rows}, indent=2)


async def evaluate_answers(pipelines: dict[str, object], conversations: list[Conversation], *, judge,
                           channel: Channel = Channel.CHAT, threshold: float,
                           thresholds_for_stats: Sequence[float] = (0.3, 0.5, 0.7)) -> AnswerEval:
    """Ask each conversation's last user turn (with history) and score escalation and citations.

    Args:
        pipelines: MT-RAG collection → :class:`~serving.pipeline.AnswerPipeline` over that collection's
            workspace (gold passages + distractor pool).
        conversations: the sample.
        judge: :class:`LexicalJudge` or :class:`LLMJudge`.
        channel: channel of the requests (its threshold decides escalation).
        threshold: the pipeline's threshold for ``channel`` (reported, and used for precision figures).
        thresholds_for_stats: other thresholds reported from the same confidences.

    Returns:
        :class:`AnswerEval` whose summary has ``n``, ``labels`` (count per MT-RAG label),
        ``auroc`` (confidence of kind answerable_probability vs answerable; None with one class),
        ``decision`` (:func:`answer_stats` of the pipeline's actual decisions: answered, precision,
        coverage, unanswerable_escalated), ``at_thresholds`` (confidence-only stats),
        ``escalated_by_label``, ``reasons``, ``gold_in_hits`` (share of conversations with gold passages
        that have one among the top_k hits), ``citation_support_rate`` (supported / cited sentences of answers),
        ``cited_sentences``, ``judge``, ``latency_p50_ms``.
    """
    from serving.schemas import AnswerRequest

    rows = []
    for conv in conversations:
        pipeline = pipelines[conv.collection]
        req = AnswerRequest(question=conv.question, history=conv.history, channel=channel)
        t = time.perf_counter()
        resp = await pipeline.answer(req)
        ms = (time.perf_counter() - t) * 1000
        gold_ids = {d for d, _ in conv.contexts}
        sentences = []
        if resp.decision == Decision.ANSWER:
            quotes = {c.marker: c.quote for c in resp.citations}
            # the splitter the pipeline checks with: markers after the full stop stay with their sentence
            done, rest = split_complete_sentences(resp.answer + "\n")
            for sentence in done + ([rest.strip()] if rest.strip() else []):
                cited = [quotes[m] for m in markers(sentence) if m in quotes]
                if not cited:
                    continue
                sentences.append({"sentence": sentence, "supported": await judge.supports(sentence, cited)})
        rows.append({
            "id": conv.conversation_id, "collection": conv.collection, "label": conv.label,
            "answerable": conv.answerable, "question": conv.question, "confidence": resp.confidence,
            "decision": resp.decision.value, "reason": resp.reason,
            "has_gold": bool(gold_ids), "gold_in_hits": bool(gold_ids & {h.article_id for h in resp.hits}),
            "sentences": sentences, "latency_ms": round(ms, 1),
        })
    conf = [r["confidence"] for r in rows]
    labels = [r["answerable"] for r in rows]
    answered = [r["decision"] == "answer" for r in rows]
    pos = sum(labels)
    neg = len(labels) - pos
    tp = sum(1 for a, y in zip(answered, labels) if a and y)
    n_ans = sum(answered)
    cited = [s for r in rows for s in r["sentences"]]
    gold_rows = [r for r in rows if r["has_gold"]]
    by_label: dict[str, list[bool]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r["decision"] == "escalate")
    summary = {
        "n": len(rows), "channel": channel.value, "threshold": threshold,
        "labels": dict(Counter(r["label"] for r in rows)),
        "answerable": pos, "unanswerable": neg,
        "auroc": auroc(conf, labels),
        "decision": {"answered": n_ans, "precision": tp / n_ans if n_ans else None,
                     "coverage": tp / pos if pos else None,
                     "unanswerable_escalated": sum(1 for a, y in zip(answered, labels) if not a and not y) / neg
                     if neg else None},
        "at_thresholds": [answer_stats(conf, labels, t) for t in thresholds_for_stats],
        "escalated_by_label": {k: sum(v) / len(v) for k, v in sorted(by_label.items())},
        "reasons": dict(Counter(r["reason"] for r in rows)),
        "gold_in_hits": (sum(r["gold_in_hits"] for r in gold_rows) / len(gold_rows)) if gold_rows else None,
        "cited_sentences": len(cited),
        "citation_support_rate": sum(s["supported"] for s in cited) / len(cited) if cited else None,
        "judge": judge.name,
        "latency_p50_ms": statistics.median(r["latency_ms"] for r in rows) if rows else None,
    }
    return AnswerEval(summary, rows)
