"""Fit the answer-confidence model (Platt scaling of retrieval features) and report its AUROC.

Answerable: the questions of a (question, gold_document) CSV over the synced corpus.
Not answerable: last user turns of IBM MT-RAG conversations from other domains (government, Wikipedia,
finance forums) and, as hard negatives, IBM Cloud documentation questions.

    python bench/calibrate_confidence.py --data-dir .citedesk --csv data/aws-docs-qa-dev.csv \
        --mtrag ../shared/data/mtrag/reference.jsonl

Prints the fitted weights (to put in retrieval/confidence.py or config), 5-fold cross-validated AUROC
of the fitted model and of the current defaults, and precision/recall of "answer" at thresholds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path(".citedesk"))
    ap.add_argument("--csv", type=Path, default=Path("data/aws-docs-qa-dev.csv"))
    ap.add_argument("--mtrag", type=Path, default=Path("../shared/data/mtrag/reference.jsonl"))
    ap.add_argument("--negatives", type=int, default=150)
    args = ap.parse_args()

    from citedesk.config.settings import Settings
    from citedesk.retrieval.store import SearchFilter
    from citedesk.retrieval.confidence import ConfidenceModel
    from citedesk.serving.container import Container

    pos = [r["question"] for r in csv.DictReader(args.csv.open(encoding="utf-8"))]
    rows = [json.loads(line) for line in args.mtrag.open(encoding="utf-8")]
    rng = random.Random(13)
    rng.shuffle(rows)
    neg = [r["input"][-1]["text"] for r in rows if r["input"] and r["input"][-1]["speaker"] == "user"]
    neg = neg[: args.negatives]

    c = Container(Settings(data_dir=args.data_dir))
    model = ConfidenceModel()
    feats, labels = [], []
    for label, questions in ((1, pos), (0, neg)):
        for q in questions:
            hits = c.retriever.retrieve(q, SearchFilter(workspace=c.settings.workspace), top_k=5).hits
            f = model.features(q, hits, c.sparse)
            feats.append([f.top_cosine, f.coverage])
            labels.append(label)
    c.index.close()
    x, y = np.array(feats), np.array(labels)
    lr = LogisticRegression(C=10.0)
    cv_prob = cross_val_predict(lr, x, y, cv=5, method="predict_proba")[:, 1]
    lr.fit(x, y)
    default_prob = np.array([model.score(type("F", (), {"top_cosine": a, "coverage": b, "top_rerank": None})())
                             for a, b in x])
    print(f"n={len(y)} answerable={int(y.sum())} not={int((1 - y).sum())}")
    print(f"fitted: w_cosine={lr.coef_[0][0]:.2f} w_coverage={lr.coef_[0][1]:.2f} bias={lr.intercept_[0]:.2f}")
    print(f"AUROC 5-fold CV (fitted): {roc_auc_score(y, cv_prob):.3f}")
    print(f"AUROC current defaults:  {roc_auc_score(y, default_prob):.3f}")
    for t in (0.3, 0.5, 0.6, 0.7, 0.8):
        ans = default_prob >= t
        prec = (y[ans].mean() if ans.any() else float("nan"))
        print(f"defaults @ {t:.1f}: answered {ans.mean():.2f}, precision {prec:.3f}, "
              f"recall of answerable {ans[y == 1].mean():.3f}, unanswerable escalated {1 - ans[y == 0].mean():.3f}")


if __name__ == "__main__":
    main()
