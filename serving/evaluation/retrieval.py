"""Retrieval quality of a gold document: recall@k, MRR and nDCG@10 per search mode.

Per question the top ``chunks`` chunks are reduced to distinct articles in rank order; the gold document's rank
r gives recall@k (r ≤ k), reciprocal rank 1/r and nDCG@10 (one relevant document: ``1/log2(r + 1)`` when
r ≤ 10, else 0). Modes: ``sparse`` (BM25 only), ``dense``, ``hybrid`` (RRF) and ``hybrid+rerank`` (needs a
configured cross-encoder; otherwise the row says it is not available instead of inventing figures).
:func:`evaluate_ranker` scores any other ranking function the same way (the LlamaIndex baseline of
:mod:`citedesk.serving.evaluation.baseline`).
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from citedesk.retrieval.search import Retriever
from citedesk.retrieval.store import SearchFilter

RETRIEVAL_MODES = ("sparse", "dense", "hybrid", "hybrid+rerank")
"""Modes :func:`evaluate_retrieval` knows; ``hybrid+rerank`` is hybrid with the cross-encoder rerank."""

RERANK_UNAVAILABLE = ("not available offline: no cross-encoder configured (retrieval.rerank_model); "
                      "no cross-encoder weights are installable from a package registry here")


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
