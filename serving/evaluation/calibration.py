"""Confidence calibration: AUROC, answered precision / coverage at a threshold, and the per-channel pick.

:func:`pick_threshold` chooses the lowest confidence threshold whose answered questions reach a target
precision; :func:`write_thresholds` stores the picks in the TOML settings file.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from citedesk.retrieval.store import SearchFilter
from citedesk.serving.evaluation.mtrag import load_mtrag, sample_conversations

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


def calibration_questions(csv_path: Path, negatives: Path | None, n_negatives: int,
                          seed: int) -> tuple[list[str], list[bool]]:
    """Questions and answerable labels: CSV rows (``answerable`` column optional, default true) plus
    MT-RAG last user turns as out-of-domain unanswerable questions.

    Raises:
        FileNotFoundError: no CSV at ``csv_path``.
        ValueError: the labels are all answerable or all unanswerable.
    """
    if not csv_path.is_file():
        raise FileNotFoundError(f"questions CSV not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("question")]
    qs = [r["question"] for r in rows]
    labels = [str(r.get("answerable") or "true").strip().lower() not in ("false", "0", "no") for r in rows]
    if negatives is not None:
        neg = sample_conversations(load_mtrag(negatives), n_negatives, seed=seed)
        qs += [c.question for c in neg]
        labels += [False] * len(neg)
    if all(labels) or not any(labels):
        raise ValueError("calibration needs answerable and unanswerable questions: add --negatives or an "
                         "'answerable' column with false rows")
    return qs, labels


def confidences(container, questions: Sequence[str], *, workspace: str, top_k: int) -> list[float]:
    """The pipeline's confidence (answerable_probability, 0..1) for each question, retrieved as it answers.

    Args:
        container: the composition root (retriever, pipeline's confidence model, sparse encoder).
        questions: asked in order.
        workspace: tenant searched.
        top_k: hits retrieved per question.
    """
    flt = SearchFilter(workspace=workspace)
    model = container.pipeline.confidence
    out = []
    for q in questions:
        hits = container.retriever.retrieve(q, flt, top_k=top_k).hits
        out.append(model.score(model.features(q, hits, container.sparse)))
    return out
