"""Answer and escalation quality on MT-RAG conversations, with citation support judged per cited sentence.

Each conversation's last user turn is asked, with its history, against an index holding its gold passages plus
other conversations' passages of the same collection (:func:`run_answer_eval` builds it). Escalation quality is
measured against the answerability labels; citation support is judged per cited sentence
(:class:`LexicalJudge` offline, :class:`LLMJudge` when an LLM is configured).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from citedesk.core.errors import CitedeskError
from citedesk.core.text import markers, split_complete_sentences
from citedesk.core.types import Channel, Decision
from citedesk.serving.evaluation.calibration import answer_stats, auroc
from citedesk.serving.evaluation.judges import JudgeKind, LexicalJudge, LLMJudge
from citedesk.serving.evaluation.mtrag import (
    Conversation,
    PassageConnector,
    load_mtrag,
    passages_by_collection,
    sample_conversations,
)

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
        pipelines: MT-RAG collection → :class:`~citedesk.serving.answer.pipeline.AnswerPipeline` over that collection's
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
    from citedesk.serving.answer.schemas import AnswerRequest

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


async def run_answer_eval(settings, mtrag: Path, *, limit: int, pool: int, channel: Channel, judge: JudgeKind,
                          seed: int, index_dir: Path | None,
                          progress: Callable[[str], None] = lambda _: None) -> tuple[AnswerEval, str, float]:
    """Index sampled MT-RAG collections in a separate local index and evaluate the answers on them.

    Args:
        settings: the service's settings; the eval copies them with a data dir of its own (local Qdrant).
        mtrag: MT-RAG ``reference.jsonl``.
        limit: conversations sampled (seeded); pool: distractor passages per collection.
        channel: channel whose threshold decides answer vs escalate.
        judge: citation-support judge.
        seed: sampling seed.
        index_dir: keep the index here and reuse it (incremental sync); ``None``: a temporary folder.
        progress: called with one line per indexed collection.

    Returns:
        ``(result, generator name, threshold used)``.

    Raises:
        FileNotFoundError, ValueError: unreadable MT-RAG file. CitedeskError: ``llm`` judge without
        ``llm.base_url``, or an index / model failure.
    """
    from citedesk.serving.answer.generators import OpenAIGenerator
    from citedesk.serving.answer.pipeline import AnswerPipeline
    from citedesk.serving.container import Container

    everything = load_mtrag(mtrag)
    sample = sample_conversations(everything, limit, seed=seed)
    per_coll = passages_by_collection(sample, everything, pool=pool, seed=seed)
    keep = contextlib.nullcontext(str(index_dir)) if index_dir else tempfile.TemporaryDirectory(prefix="citedesk-mtrag-")
    s = settings
    with keep as tmp:
        c = Container(s.model_copy(update={
            "data_dir": Path(tmp), "qdrant": s.qdrant.model_copy(update={"url": None, "path": None})}))
        try:
            for coll, passages in per_coll.items():
                report = c.sync_engine.sync(PassageConnector(coll, passages))
                progress(f"indexed {coll}: {report.added} passages, {report.chunks_written} chunks "
                         f"in {report.seconds:.1f}s")
            c.pipeline.warm_up()  # the configured judges and reader check, as the service runs them
            pipelines = {coll: AnswerPipeline(c.retriever, c.generator, c.sparse, c.pipeline.policy, workspace=coll,
                                              judges=c.judges, reader=c.reader)
                         for coll in per_coll}
            use_llm = judge == JudgeKind.LLM or (judge == JudgeKind.AUTO and s.llm.base_url)
            if use_llm and not s.llm.base_url:
                raise CitedeskError("--judge llm needs llm.base_url")
            the_judge = LLMJudge(OpenAIGenerator(s.llm.base_url, model=s.llm.model,
                                                 api_key=s.llm.api_key.get_secret_value(), timeout=s.llm.timeout,
                                                 max_tokens=8)) if use_llm else LexicalJudge(c.sparse)
            threshold = c.pipeline.policy.thresholds[channel]
            result = await evaluate_answers(pipelines, sample, judge=the_judge, channel=channel, threshold=threshold)
        finally:
            c.index.close()
    return result, c.generator.name, threshold
