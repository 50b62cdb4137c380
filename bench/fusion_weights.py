"""Weighted RRF: gold-document ranks per (dense, sparse) weight pair, with a 2-fold cross-validated pick.

Runs the product ``Retriever`` in hybrid mode over an existing index (``--data-dir``, as written by
``citedesk sync``) for each weight pair, on the questions of ``--csv``. Query embeddings and BM25 vectors
are computed once per question and reused across weight pairs, so only the fusion changes.

Because the weights would otherwise be tuned and scored on the same 60 questions, the script also
reports an honest figure: the questions are split in two halves (fixed seed); the pair with the best
MRR on one half is scored on the other half, and the two held-out halves are pooled.

    CITEDESK_DATA_DIR=/path/to/index python bench/fusion_weights.py --csv data/aws-docs-qa-dev.csv

Prints recall@1/5/10, MRR and nDCG@10 per weight pair, the dense-only and sparse-only rows of the same
run for reference, and the cross-validated row with the pairs chosen per fold.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from citedesk.config.settings import load_settings
from citedesk.retrieval.store import SearchFilter
from citedesk.serving.container import Container
from citedesk.serving.evaluation.retrieval import load_questions, rank_of, ranking_metrics


class MemoEmbedder:
    """Wraps an embedder so each query is embedded once (weight pairs reuse the vector)."""

    def __init__(self, inner) -> None:
        self.inner, self.cache = inner, {}

    def warm_up(self) -> None:
        self.inner.warm_up()

    def embed_query(self, text: str):
        if text not in self.cache:
            self.cache[text] = self.inner.embed_query(text)
        return self.cache[text]


def parse_pairs(spec: str) -> list[tuple[float, float]]:
    """``"1:1,1:2"`` → ``[(1.0, 1.0), (1.0, 2.0)]`` (dense:sparse)."""
    pairs = []
    for part in spec.split(","):
        d, s = part.split(":")
        pairs.append((float(d), float(s)))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, required=True, help="question,gold_document CSV")
    ap.add_argument("--weights", default="1:1,1:1.5,1:2,1:3,1:4,1.5:1,2:1",
                    help="comma-separated dense:sparse pairs")
    ap.add_argument("--chunks", type=int, default=50, help="chunks per question before reduction to articles")
    ap.add_argument("--seed", type=int, default=7, help="seed of the 2-fold split")
    ap.add_argument("--output", type=Path, help="write the results JSON here")
    args = ap.parse_args()

    settings = load_settings()
    c = Container(settings)
    questions = load_questions(args.csv)
    pairs = parse_pairs(args.weights)
    retriever = c.retriever
    retriever.embedder = MemoEmbedder(retriever.embedder)
    retriever.warm_up()
    flt = SearchFilter(workspace=settings.workspace)

    def ranks(mode: str, weights=(1.0, 1.0)) -> list[int | None]:
        retriever.fusion_weights = weights
        out = []
        for q in questions:
            hits = retriever.retrieve(q["question"], flt, top_k=args.chunks, mode=mode, rerank=False).hits
            out.append(rank_of(q["gold_document"], [h.article_id for h in hits]))
        return out

    try:
        rows = {"dense only": ranks("dense"), "sparse only": ranks("sparse")}
        by_pair = {p: ranks("hybrid", p) for p in pairs}
    finally:
        c.index.close()

    idx = list(range(len(questions)))
    random.Random(args.seed).shuffle(idx)
    folds = [idx[: len(idx) // 2], idx[len(idx) // 2:]]
    pooled: list[int | None] = []
    chosen = []
    for tune, test in (folds, folds[::-1]):
        best = max(pairs, key=lambda p: (ranking_metrics([by_pair[p][i] for i in tune])["mrr"], -abs(p[0] - p[1])))
        chosen.append(best)
        pooled += [by_pair[best][i] for i in test]

    results = [{"row": name, **ranking_metrics(r)} for name, r in rows.items()]
    results += [{"row": f"hybrid {d:g}:{s:g}", "dense_weight": d, "sparse_weight": s, **ranking_metrics(by_pair[(d, s)])}
                for d, s in pairs]
    results.append({"row": "hybrid, 2-fold CV pick", "chosen": [f"{d:g}:{s:g}" for d, s in chosen],
                    **ranking_metrics(pooled)})
    print(f"{len(questions)} questions, {args.chunks} chunks per question, workspace {settings.workspace!r}")
    print(f"{'row':<26}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'MRR':>7}{'nDCG@10':>9}")
    for r in results:
        print(f"{r['row']:<26}{r['recall@1']:>7.3f}{r['recall@5']:>7.3f}{r['recall@10']:>7.3f}"
              f"{r['mrr']:>7.3f}{r['ndcg@10']:>9.3f}")
    base = ranking_metrics(by_pair[(1.0, 1.0)]) if (1.0, 1.0) in by_pair else None
    cv = results[-1]
    print(f"CV pick per fold (tuned on the other half): {', '.join(cv['chosen'])}")
    if base:
        print(f"CV pick vs plain RRF 1:1: MRR ×{cv['mrr'] / base['mrr']:.3f}, "
              f"R@1 {cv['recall@1'] - base['recall@1']:+.3f}, R@5 {cv['recall@5'] - base['recall@5']:+.3f}")
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
