"""Confidence calibration: AUROC, answered precision / coverage at a threshold, and the per-channel pick.

:func:`pick_threshold` chooses the lowest confidence threshold whose answered questions reach a target
precision; :func:`cross_validated_pick` reports what such a pick gives on questions it was not picked on
(folds by question, so a question's normal and leave-gold-out askings stay together);
:func:`write_thresholds` stores the picks in the TOML settings file.

Questions come from a CSV (answerable unless an ``answerable`` column says otherwise), optionally each asked a
second time with its gold article excluded (leave-gold-out: in-domain and usually unanswerable), and
optionally MT-RAG turns as off-domain unanswerable questions.
"""

from __future__ import annotations

import csv
import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from citedesk.retrieval.store import SearchFilter
from citedesk.serving.evaluation.mtrag import load_mtrag, sample_conversations


@dataclass(frozen=True)
class CalibrationCase:
    """One asking of a question for calibration.

    Attributes:
        question: as a customer asks it.
        answerable: the ground truth the threshold is picked against.
        exclude: article ids kept out of retrieval (``must_not``): the gold article in leave-gold-out.
        group: cross-validation group (the question's row; both askings of a question share it).
    """

    question: str
    answerable: bool
    exclude: tuple[str, ...] = ()
    group: int = 0

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


def calibration_questions(csv_path: Path, negatives: Path | None, n_negatives: int, seed: int, *,
                          gold_out: bool = False,
                          gold_out_answerable: frozenset[str] = frozenset()) -> list[CalibrationCase]:
    """Calibration cases: CSV rows (``answerable`` column optional, default true), with ``gold_out`` each row
    again with its ``gold_document`` excluded (answerable only when listed in ``gold_out_answerable``), plus
    MT-RAG last user turns as off-domain unanswerable questions.

    Raises:
        FileNotFoundError: no CSV at ``csv_path``.
        ValueError: ``gold_out`` without a ``gold_document`` column, or the labels are all answerable or all
            unanswerable.
    """
    if not csv_path.is_file():
        raise FileNotFoundError(f"questions CSV not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("question")]
    cases = [CalibrationCase(r["question"].strip(),
                             str(r.get("answerable") or "true").strip().lower() not in ("false", "0", "no"), (), i)
             for i, r in enumerate(rows)]
    if gold_out:
        if any(not (r.get("gold_document") or "").strip() for r in rows):
            raise ValueError(f"{csv_path}: leave-gold-out needs a gold_document on every row")
        cases += [CalibrationCase(c.question, c.question in gold_out_answerable, (r["gold_document"].strip(),),
                                  c.group) for c, r in zip(cases, rows)]
    if negatives is not None:
        neg = sample_conversations(load_mtrag(negatives), n_negatives, seed=seed)
        cases += [CalibrationCase(c.question, False, (), len(rows) + i) for i, c in enumerate(neg)]
    labels = [c.answerable for c in cases]
    if all(labels) or not any(labels):
        raise ValueError("calibration needs answerable and unanswerable questions: add --gold-out, --negatives or "
                         "an 'answerable' column with false rows")
    return cases


def cross_validated_pick(confidences: Sequence[float], cases: Sequence[CalibrationCase], target_precision: float,
                         *, folds: int = 5, seed: int = 13) -> dict:
    """Held-out figures of :func:`pick_threshold`: pick on k-1 folds, answer the held-out fold at that pick.

    Folds are drawn by ``group`` (seeded), so no question is scored by a threshold picked on its other asking.

    Args:
        confidences: per case, kind ``answerable_probability`` in [0, 1].
        cases: with ``answerable`` and ``group``.
        target_precision: in (0, 1].
        folds: at most the number of groups.

    Returns:
        :func:`answer_stats` of the pooled held-out decisions (``threshold`` is None: one per fold),
        ``thresholds`` (per fold) and ``folds``.
    """
    groups = sorted({c.group for c in cases})
    random.Random(seed).shuffle(groups)
    k = max(2, min(folds, len(groups)))
    fold_of = {g: i % k for i, g in enumerate(groups)}
    answered = [False] * len(cases)
    picks = []
    for f in range(k):
        train = [i for i, c in enumerate(cases) if fold_of[c.group] != f]
        labels = [cases[i].answerable for i in train]
        if all(labels) or not any(labels):
            t = 1.0
        else:
            t = pick_threshold([confidences[i] for i in train], labels, target_precision)["threshold"]
        picks.append(t)
        for i, c in enumerate(cases):
            if fold_of[c.group] == f:
                answered[i] = confidences[i] >= t
    # answer_stats on 0/1 "confidences" at threshold 1 pools the held-out decisions
    st = answer_stats([1.0 if a else 0.0 for a in answered], [c.answerable for c in cases], 1.0)
    return {**st, "threshold": None, "thresholds": picks, "folds": k}


def confidences(container, cases: Sequence[CalibrationCase], *, workspace: str, top_k: int) -> list[float]:
    """The pipeline's confidence (answerable_probability, 0..1) for each case, retrieved as it answers.

    Args:
        container: the composition root (retriever, pipeline's confidence model, sparse encoder, and the reader
            check when ``answer.reader_model`` is set: its agreement is then scored as the pipeline scores it).
        cases: asked in order, each with its excluded articles.
        workspace: tenant searched.
        top_k: hits retrieved per question.
    """
    model = container.pipeline.confidence
    reader = container.reader  # its agreement is an input of the confidence when configured
    if reader is not None:
        reader.warm_up()
    out = []
    for c in cases:
        flt = SearchFilter(workspace=workspace, exclude_article_ids=c.exclude)
        hits = container.retriever.retrieve(c.question, flt, top_k=top_k).hits
        features = model.features(c.question, hits, container.sparse)
        if reader is not None and hits:
            verdict = reader.verdict(c.question, hits[: container.settings.answer.evidence_chunks])
            features = dataclasses.replace(features, reader_agrees=verdict.agreement)
        out.append(model.score(features))
    return out
