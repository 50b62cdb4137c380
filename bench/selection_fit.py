"""Fit the extractive generator's unit-selection model, cross-validated, and report held-out figures.

For each question of a (question, answer, gold_document) CSV, the evidence is retrieved as the answer pipeline
retrieves it, and every candidate unit the generator would rank (:meth:`ExtractiveGenerator.rank`) is labelled
automatically: a unit *answers* when it (with its header or lead-in) holds at least ``--min-recall`` of the
reference answer's words. Two rankers over :data:`citedesk.retrieval.selection.FEATURES` are fitted with
folds grouped by question (a question is only ever ranked by a model fitted without it): a pointwise logistic
model and a pairwise one (answering minus non-answering units of the same question). The figure is the share
of questions whose top-ranked unit answers, among those where some candidate answers, next to the shipped
hand-set weights (``DEFAULT_SELECTION_WEIGHTS`` in ``retrieval/selection.py``) on the same candidates. Ship
fitted weights only when they win held out.

After the answer-unit changes of 2026-11-26 (a list item is its whole line, lists of links are not units): 51
questions with an answering candidate, 1,386 units, shipped weights 0.863 (0.788 before those changes).

Measured 2026-11-26 on the bundled 301 pages, 60 dev questions (52 with an answering candidate, 1,409 units):
shipped 0.769; pointwise 0.685 ± 0.009; pairwise 0.688 ± 0.022 (5 fold shuffles; with only the six features
the shipped weights use, pairwise reached 0.71–0.73). Too few questions to fit 13 features; the hand-set weights
stay, and in 17 of the 19 answers hand-labelled wrong or partial the answering unit was in the evidence: the
ranking, not retrieval, is what a reader model (a fine-tuned cross-encoder) would have to fix.

Tried 2026-11-26 (branch ``issue-11-ce``: ``bench/train_reader.py``, ``bench/reader_eval.py``): a cross-encoder
fine-tuned from the shipped MiniLM weights on 25,247 corpus pairs (titles, headings and table rows as pseudo-queries
→ their section's first unit; hard negatives from the page and its BM25 neighbours; dev gold pages excluded), 459
steps (0.59 epoch, 27 min on one core). On these candidates: reader alone 0.269; replacing ``cosine`` 0.750; shipped
+ w·reader with w picked by grouped 5-fold CV 0.769 (w = 0 in all 25 folds); as an answerability signal
(leave-gold-out, 120 cases) AUROC 0.533 against the confidence's 0.841; 0.9 s per answer on one core. Not shipped.

Tried 2026-11-26, a second reader: query likelihood (UPR: each unit scored by the mean log-probability of the
question's tokens after ``Passage: <unit>``, under SmolLM2-135M-Instruct run in process by llama.cpp; the
``--dump`` rows carry the question and unit text for this). Alone 37 of 52 (0.712, against the shipped 40); shipped
+ w·(per-question z-score) with w picked by grouped 5-fold CV 0.738 ± 0.023; reciprocal-rank fusion of the two
orders 38–41 of 52 depending on its two constants (no fold-free choice); either top-1 answers on 42 of 52. About
0.45 s per unit on 2 cores (10 s per answer). Not shipped as a ranker; shipped as a check instead
(``answer.reader_model``, ``serving/answer/reader.py``): where the reader's best of the ranking's top 5 is not the
ranking's best, the answer escalates — those answers were mostly the wrong ones (README, "Reader agreement").

    python bench/selection_fit.py --data-dir <index of data/aws-docs> --csv data/aws-docs-qa-dev.csv [--dump f.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def collect(data_dir: Path, csv_path: Path, min_recall: float) -> list[dict]:
    """One row per candidate unit: question index, features, label."""
    from citedesk.config.settings import Settings
    from citedesk.retrieval.store import SearchFilter
    from citedesk.serving.container import Container
    from citedesk.serving.evaluation.qa import load_qa, reference_recall

    c = Container(Settings(data_dir=data_dir))
    gen = c.generator if hasattr(c.generator, "rank") else None
    if gen is None:
        from citedesk.serving.answer.generators import ExtractiveGenerator

        gen = ExtractiveGenerator(c.embedder, c.sparse)
    rows = []
    try:
        for qi, case in enumerate(load_qa(csv_path)):
            hits = c.retriever.retrieve(case.question, SearchFilter(workspace=c.settings.workspace),
                                        top_k=c.settings.retrieval.top_k).hits
            evidence = hits[: c.settings.answer.evidence_chunks]
            for m, f, _ in gen.rank(case.question, evidence):
                said = f"{m.unit.context} {m.unit.text}".strip()
                rows.append({"q": qi, "features": f, "question": case.question, "unit": said,
                             "label": int(reference_recall(said, case.reference) >= min_recall)})
    finally:
        c.index.close()
    return rows


def top1(rows: list[dict], questions: set[int], score) -> tuple[int, int]:
    """(questions whose best-scored unit answers, questions with some answering unit) among ``questions``."""
    hit = total = 0
    for q in questions:
        cands = [r for r in rows if r["q"] == q]
        if not any(r["label"] for r in cands):
            continue
        total += 1
        hit += max(cands, key=score)["label"]
    return hit, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, help="citedesk data dir whose index holds the CSV's gold pages")
    ap.add_argument("--csv", type=Path, default=Path("data/aws-docs-qa-dev.csv"))
    ap.add_argument("--min-recall", type=float, default=0.8)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=5, help="fold shuffles averaged")
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the logistic model")
    ap.add_argument("--dump", type=Path, help="write the candidate rows here")
    ap.add_argument("--load", type=Path, help="read candidate rows from here instead of retrieving")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression

    from citedesk.retrieval.selection import DEFAULT_SELECTION_WEIGHTS, FEATURES, SelectionModel

    rows = json.loads(args.load.read_text()) if args.load else collect(args.data_dir, args.csv, args.min_recall)
    if args.dump:
        args.dump.write_text(json.dumps(rows))
    X = np.array([[r["features"][k] for k in FEATURES] for r in rows])
    y = np.array([r["label"] for r in rows])
    qs = sorted({r["q"] for r in rows})
    answerable = {r["q"] for r in rows if r["label"]}
    print(f"{len(qs)} questions, {len(rows)} candidate units, {int(y.sum())} answering; "
          f"{len(answerable)} questions have an answering candidate")

    def pointwise(train_q: set[int]) -> np.ndarray:
        idx = np.array([r["q"] in train_q for r in rows])
        model = LogisticRegression(C=args.c, max_iter=2000).fit(X[idx], y[idx])
        return model.coef_[0]

    def pairwise(train_q: set[int]) -> np.ndarray:
        diffs, labels = [], []
        for q in train_q:
            idx = [i for i, r in enumerate(rows) if r["q"] == q]
            pos = [i for i in idx if y[i]]
            neg = [i for i in idx if not y[i]]
            for p in pos:
                for n in neg:
                    diffs += [X[p] - X[n], X[n] - X[p]]
                    labels += [1, 0]
        model = LogisticRegression(C=args.c, fit_intercept=False, max_iter=3000).fit(np.array(diffs), labels)
        return model.coef_[0]

    shipped = SelectionModel()
    names = ("shipped weights", "pointwise (held out)", "pairwise (held out)")
    results: dict[str, list[float]] = {n: [] for n in names}
    for seed in range(args.seeds):
        order = list(qs)
        random.Random(seed).shuffle(order)
        fold_of = {q: i % args.folds for i, q in enumerate(order)}
        held = {n: [0, 0] for n in names}
        for f in range(args.folds):
            test_q = {q for q in qs if fold_of[q] == f}
            train_q = set(qs) - test_q
            w_point, w_pair = pointwise(train_q), pairwise(train_q)
            scores = {"shipped weights": lambda r: shipped.score(r["features"]),
                      "pointwise (held out)": lambda r: float(np.dot([r["features"][k] for k in FEATURES], w_point)),
                      "pairwise (held out)": lambda r: float(np.dot([r["features"][k] for k in FEATURES], w_pair))}
            for n in names:
                h, t = top1(rows, test_q, scores[n])
                held[n][0] += h
                held[n][1] += t
        for n, (h, t) in held.items():
            results[n].append(h / t if t else 0.0)
    for n, vals in results.items():
        print(f"top-1 unit answers: {n:22s} {np.mean(vals):.3f} (± {np.std(vals):.3f} over {args.seeds} fold shuffles)")
    w = pairwise(set(qs))
    print("pairwise weights fitted on all questions:", json.dumps({k: round(float(v), 3) for k, v in zip(FEATURES, w)}))
    print("shipped DEFAULT_SELECTION_WEIGHTS:", json.dumps(DEFAULT_SELECTION_WEIGHTS))


if __name__ == "__main__":
    main()
