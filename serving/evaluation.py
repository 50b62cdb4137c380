"""Retrieval evaluation: recall@k and MRR of a gold document."""

from __future__ import annotations

import csv
import statistics
import time
from pathlib import Path

from ingest.index import SearchFilter
from retrieval.search import Retriever


def load_questions(path: Path) -> list[dict]:
    """Rows of a CSV with at least ``question`` and ``gold_document`` (an article id) columns."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("question") and r.get("gold_document")]
    if not rows:
        raise ValueError(f"{path}: no rows with question and gold_document")
    return rows


def rank_of(gold: str, article_ids: list[str]) -> int | None:
    """1-based rank of ``gold`` among distinct article ids, or None."""
    seen: list[str] = []
    for a in article_ids:
        if a not in seen:
            seen.append(a)
    return seen.index(gold) + 1 if gold in seen else None


def evaluate_retrieval(retriever: Retriever, questions: list[dict], *, workspace: str,
                       modes: list[str], chunks: int = 50) -> list[dict]:
    """Document-level metrics per mode.

    Each question retrieves ``chunks`` chunks; hits are reduced to distinct articles in rank order and
    the gold document's rank r gives recall@k (r ≤ k) and reciprocal rank 1/r (0 when absent).

    Returns:
        One dict per mode: ``mode``, ``recall@1``, ``recall@5``, ``recall@10``, ``mrr``, ``n``,
        ``latency_p50_ms`` (retrieval wall time per query, milliseconds).
    """
    flt = SearchFilter(workspace=workspace)
    results = []
    for mode in modes:
        ranks, times = [], []
        for q in questions:
            t = time.perf_counter()
            r = retriever.retrieve(q["question"], flt, top_k=chunks, mode=mode, rerank=False)
            times.append((time.perf_counter() - t) * 1000)
            ranks.append(rank_of(q["gold_document"], [h.article_id for h in r.hits]))
        n = len(ranks)
        results.append({
            "mode": mode, "n": n,
            **{f"recall@{k}": sum(1 for x in ranks if x is not None and x <= k) / n for k in (1, 5, 10)},
            "mrr": sum(1 / x for x in ranks if x is not None) / n,
            "latency_p50_ms": statistics.median(times),
        })
    return results
