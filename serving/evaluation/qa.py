"""Answer correctness on questions with reference answers, and the leave-gold-out escalation benchmark.

Each question of a CSV (``question``, ``answer`` — the reference —, ``gold_document``) is asked twice through
the answer pipeline:

* ``normal``: as a customer would; the gold article is in the index, so the question is answerable;
* ``gold_out``: with the gold article excluded by a ``must_not`` filter (in-domain, and usually unanswerable:
  the neighbouring pages are about the same thing but do not hold the answer). Questions that another page
  still answers are listed in a small CSV (``question``, ``other_article``, ``note``) and count as answerable.

Every answer gets token F1 and reference recall against the reference (SQuAD-style token overlap, markers and
punctuation removed), the token F1 of its short answer (:mod:`citedesk.serving.answer.short_answer`; of the answer
where it has none), and a correctness label: from the hand labels (a CSV kept in the repository, reused while
the answer text is unchanged, flagged ``changed`` when it changed), else from the configured LLM judge, else
``should_escalate`` by rule for an answer to an unanswerable question (a ``gold_out`` question no other page answers,
or a row whose ``answerable`` column says false: no page answers it), else none (``unlabeled``).

A yes/no question's short answer is a verdict ("Yes"/"No"): it is compared with the CSV's ``yes_no`` column where
that says Yes or No (``yes_no_verdicts``, ``yes_no_flipped``), and the answer's F1 stands for its short answer's.

Reported: answered / escalated per setting, resolution rate (correct ÷ answerable questions), wrong-answer rate
((wrong + should_escalate) ÷ answered), mean token F1 on answered (answers, and short answers where given), AUROC
of the confidence against answerable, and the risk–coverage curve (precision of answered vs share of answerable
answered) at each threshold.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from citedesk.core.text import strip_markers
from citedesk.core.types import Decision
from citedesk.serving.answer.short_answer import NO, YES
from citedesk.serving.evaluation.calibration import auroc

__all__ = ["AnswerLabel", "GoldOut", "HandLabels", "LLMCorrectnessJudge", "QACase", "QAEval", "Setting",
           "evaluate_qa", "load_qa", "reference_recall", "risk_coverage", "token_f1"]


class Setting(StrEnum):
    """How a question is asked: with its gold article in the index, or with it excluded."""

    NORMAL = "normal"
    GOLD_OUT = "gold_out"


class AnswerLabel(StrEnum):
    """Correctness of one answer, judged against the reference answer and the pages."""

    CORRECT = "correct"
    PARTIAL = "partial"
    WRONG = "wrong"
    SHOULD_ESCALATE = "should_escalate"


@dataclass(frozen=True)
class QACase:
    """One question with its reference answer and gold article id; ``answerable`` False for a question that no
    page answers (its ``gold_document`` is the page most about it)."""

    question: str
    reference: str
    gold_document: str
    yes_no: str = ""
    answerable: bool = True


def load_qa(path: Path) -> list[QACase]:
    """Rows of a CSV with ``question``, ``answer`` (reference) and ``gold_document`` columns, and optionally
    ``yes_no`` (Yes / No) and ``answerable`` (``false``, ``no`` or ``0``: no page answers the question, so any answer
    to it should have escalated).

    Raises:
        FileNotFoundError: no such file.
        ValueError: no usable row, or no ``answer`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"questions CSV not found: {path}")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if "answer" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no 'answer' column (reference answers are needed)")
        rows = [QACase(r["question"].strip(), (r.get("answer") or "").strip(), r["gold_document"].strip(),
                       (r.get("yes_no") or "").strip(),
                       (r.get("answerable") or "true").strip().lower() not in ("false", "no", "0"))
                for r in reader if r.get("question") and r.get("gold_document")]
    if not rows:
        raise ValueError(f"{path}: no rows with question, answer and gold_document")
    return rows


_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W_]+")
_ARTICLES = frozenset({"a", "an", "the"})


def _tokens(text: str) -> list[str]:
    """Lowercased word and number tokens, markers removed, articles dropped ("5,000" stays one token)."""
    return [t.replace(",", "") for t in _WORD.findall(strip_markers(text).lower()) if t not in _ARTICLES]


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 in [0, 1] between an answer and the reference (0 when either is empty)."""
    p, r = Counter(_tokens(prediction)), Counter(_tokens(reference))
    common = sum((p & r).values())
    if not common:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(r.values())
    return 2 * precision * recall / (precision + recall)


def reference_recall(prediction: str, reference: str) -> float:
    """Share in [0, 1] of the reference's tokens that the answer contains (1 for an empty reference)."""
    r = Counter(_tokens(reference))
    if not r:
        return 1.0
    return sum((Counter(_tokens(prediction)) & r).values()) / sum(r.values())


def answer_sha(text: str) -> str:
    """16 hex of sha256 of the answer text, whitespace-normalised and without citation markers (their numbering
    does not change what an answer says): the key that ties a hand label to a text."""
    return hashlib.sha256(" ".join(strip_markers(text).split()).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GoldOut:
    """Questions still answerable with their gold article excluded (another page answers them)."""

    answerable: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path | None) -> GoldOut:
        """Read ``question,other_article,note`` rows; a missing file means none.

        Raises:
            ValueError: a row without a question.
        """
        if path is None or not Path(path).is_file():
            return cls()
        with Path(path).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if any(not (r.get("question") or "").strip() for r in rows):
            raise ValueError(f"{path}: a row has no question")
        return cls(frozenset(r["question"].strip() for r in rows))


LABEL_COLUMNS = ("question", "setting", "generator", "answer_sha", "label", "reason", "answer")


class HandLabels:
    """Correctness labels written by a person who read the answer and the pages.

    The CSV has :data:`LABEL_COLUMNS`; a label applies to the answer text whose ``answer_sha`` it carries, so a
    changed answer is flagged instead of inheriting a label it was not given. A question may carry labels for
    several answers (the one over the bundled pages and the one over a larger index, say); each keeps applying to
    its own text.

    Args:
        path: the CSV (created by :meth:`write_pending` when missing).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path else None
        self.rows: dict[tuple[str, str, str], dict[str, dict]] = {}  # (question, setting, generator) → sha → row
        if self.path and self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as fh:
                for r in csv.DictReader(fh):
                    label = (r.get("label") or "").strip()
                    if label and label not in AnswerLabel.__members__.values():
                        raise ValueError(f"{self.path}: unknown label {label!r} (use one of "
                                         f"{', '.join(AnswerLabel)})")
                    key = (r["question"].strip(), r["setting"].strip(), r["generator"].strip())
                    self.rows.setdefault(key, {})[r["answer_sha"].strip()] = r

    def lookup(self, question: str, setting: str, generator: str, answer: str) -> tuple[AnswerLabel | None, str, str]:
        """``(label, status, reason)``; status is ``labeled``, ``changed`` (text differs) or ``unlabeled``."""
        labelled = [r for r in self.rows.get((question, setting, generator), {}).values()
                    if (r.get("label") or "").strip()]
        if not labelled:
            return None, "unlabeled", ""
        row = next((r for r in labelled if r["answer_sha"].strip() == answer_sha(answer)), None)
        if row is None:
            return None, "changed", labelled[-1].get("reason", "")
        return AnswerLabel(row["label"].strip()), "labeled", row.get("reason", "")

    def write_pending(self, path: Path, rows: Sequence[dict]) -> int:
        """Write the answers that need a (new) label as a CSV to fill in; returns how many."""
        pending = [r for r in rows if r["decision"] == Decision.ANSWER.value and r["label_status"] in
                   ("unlabeled", "changed") and r["label_source"] != "rule"]
        with Path(path).open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=[*LABEL_COLUMNS, "reference", "quotes"])
            w.writeheader()
            for r in pending:
                w.writerow({"question": r["question"], "setting": r["setting"], "generator": r["generator"],
                            "answer_sha": answer_sha(r["answer"]), "label": "", "reason": "", "answer": r["answer"],
                            "reference": r["reference"],
                            "quotes": " || ".join(f"{c['article_id']}: {c['quote']}" for c in r["citations"])})
        return len(pending)


class LLMCorrectnessJudge:
    """The configured LLM as judge: a short structured call returning one label (vLLM in production).

    Args:
        generator: an ``OpenAIGenerator`` (its chat endpoint); its timeout bounds each call.
    """

    PROMPT = ("Question: {q}\nReference answer: {ref}\nCandidate answer: {ans}\n"
              "Is the candidate answer correct, partially correct or wrong given the reference? "
              "Reply with one word: CORRECT, PARTIAL or WRONG.")

    def __init__(self, generator) -> None:
        self.generator = generator
        self.name = f"llm:{getattr(generator, 'model', 'default')}"

    async def label(self, question: str, reference: str, answer: str) -> AnswerLabel | None:
        """The judge's label, or None when its reply is not one of the three words.

        Raises:
            GeneratorUnavailableError: the LLM is unreachable or timed out.
        """
        reply = ""
        prompt = self.PROMPT.format(q=question, ref=reference, ans=strip_markers(answer))
        async for delta in self.generator.complete(prompt):
            reply += delta
            if len(reply) > 20:
                break
        word = reply.strip().split()[0].strip(".:,").upper() if reply.strip() else ""
        return {"CORRECT": AnswerLabel.CORRECT, "PARTIAL": AnswerLabel.PARTIAL,
                "WRONG": AnswerLabel.WRONG}.get(word)


def risk_coverage(confidences: Sequence[float], answerable: Sequence[bool],
                  thresholds: Sequence[float] = tuple(i / 20 for i in range(21))) -> list[dict]:
    """At each threshold: ``answered``, ``precision`` (answerable ÷ answered, None when none answered) and
    ``coverage`` (answerable answered ÷ answerable) if questions with confidence ≥ threshold were answered."""
    pos = sum(answerable)
    out = []
    for t in thresholds:
        ans = [y for c, y in zip(confidences, answerable) if c >= t]
        out.append({"threshold": round(t, 4), "answered": len(ans),
                    "precision": round(sum(ans) / len(ans), 4) if ans else None,
                    "coverage": round(sum(ans) / pos, 4) if pos else None})
    return out


@dataclass
class QAEval:
    """Rows (one per question and setting) and the summary of :func:`evaluate_qa`."""

    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"summary": self.summary, "rows": self.rows}, indent=2)


def _valued(short: str | None) -> str | None:
    """A short answer that is a value (its token F1 is scored); a yes/no verdict is scored by agreement with the
    case's ``yes_no`` instead, its F1 being the answer's."""
    return None if short in (YES, NO) else short


def _summarise(rows: list[dict]) -> dict:
    answered = [r for r in rows if r["decision"] == Decision.ANSWER.value]
    answerable = [r for r in rows if r["answerable"]]
    labels = Counter(r["label"] for r in answered if r["label"])
    wrong = labels[AnswerLabel.WRONG] + labels[AnswerLabel.SHOULD_ESCALATE]
    labeled = sum(labels.values())
    correct_answerable = sum(1 for r in answerable if r["decision"] == Decision.ANSWER.value
                             and r["label"] == AnswerLabel.CORRECT)
    f1 = [r["token_f1"] for r in answered]
    short_f1 = [r["short_answer_f1"] for r in answered]
    verdicts = [r for r in answered if r.get("yes_no") and r["short_answer"] in (YES, NO)]
    return {
        "n": len(rows), "answerable": len(answerable), "answered": len(answered),
        "escalated": len(rows) - len(answered),
        "answerable_answered": sum(1 for r in answerable if r["decision"] == Decision.ANSWER.value),
        "labels": {str(k): v for k, v in labels.items()}, "unlabeled_answers": len(answered) - labeled,
        "resolution_rate": round(correct_answerable / len(answerable), 4) if answerable else None,
        "wrong_answer_rate": round(wrong / len(answered), 4) if answered else None,
        "mean_token_f1_answered": round(statistics.fmean(f1), 4) if f1 else None,
        "mean_reference_recall_answered": round(statistics.fmean(r["reference_recall"] for r in answered), 4)
        if answered else None,
        "mean_short_answer_f1_answered": round(statistics.fmean(short_f1), 4) if short_f1 else None,
        "short_answers": sum(1 for r in answered if r["short_answer"]),
        "yes_no_answered": sum(1 for r in answered if r.get("yes_no")),
        "yes_no_verdicts": len(verdicts),
        "yes_no_flipped": sum(1 for r in verdicts if r["short_answer"] != r["yes_no"]),
        "reasons": dict(Counter(r["reason"] for r in rows)),
    }


async def evaluate_qa(pipeline, cases: Sequence[QACase], *, generator_name: str, labels: HandLabels,
                      gold_out: GoldOut, judge: LLMCorrectnessJudge | None = None,
                      settings: Sequence[Setting] = (Setting.NORMAL, Setting.GOLD_OUT),
                      progress: Callable[[str], None] = lambda _: None) -> QAEval:
    """Ask every case in every setting and score the answers (see the module docstring).

    Args:
        pipeline: an ``AnswerPipeline`` over the index holding the gold articles.
        cases: from :func:`load_qa`.
        generator_name: recorded on each row and part of the hand-label key.
        labels: hand labels; gold_out: the questions another page still answers.
        judge: the LLM correctness judge for answers without a hand label (None: no LLM configured).
        settings: which settings to run.
        progress: called with a line every 20 questions.

    Returns:
        :class:`QAEval`: ``summary`` has ``by_setting`` (see :func:`_summarise`), ``overall``,
        ``auroc`` (confidence, kind answerable_probability, vs answerable over all rows), ``risk_coverage``.
    """
    from citedesk.core.errors import GeneratorUnavailableError
    from citedesk.serving.answer.schemas import AnswerRequest

    rows: list[dict] = []
    for setting in settings:
        for n, case in enumerate(cases, 1):
            exclude = (case.gold_document,) if setting == Setting.GOLD_OUT else ()
            t = time.perf_counter()
            resp = await pipeline.answer(AnswerRequest(question=case.question), exclude_articles=exclude)
            ms = (time.perf_counter() - t) * 1000
            answerable = case.answerable and (setting == Setting.NORMAL or case.question in gold_out.answerable)
            answered = resp.decision == Decision.ANSWER
            label, status, why = labels.lookup(case.question, setting, generator_name, resp.answer)
            source = "hand" if label else ""
            if answered and label is None and not answerable:
                label, source, why = AnswerLabel.SHOULD_ESCALATE, "rule", (
                    "no page answers this question" if not case.answerable
                    else "gold article excluded, no other page answers")
            if answered and label is None and judge is not None:
                try:
                    label = await judge.label(case.question, case.reference, resp.answer)
                    source = judge.name if label else ""
                except GeneratorUnavailableError as exc:
                    why = f"LLM judge unavailable: {exc}"
            rows.append({
                "question": case.question, "setting": str(setting), "generator": generator_name,
                "gold_document": case.gold_document, "reference": case.reference, "answerable": answerable,
                "decision": resp.decision.value, "reason": str(resp.reason), "confidence": resp.confidence,
                "answer": resp.answer,
                "citations": [{"marker": c.marker, "article_id": c.article_id, "quote": c.quote} for c in resp.citations],
                "gold_cited": any(c.article_id == case.gold_document for c in resp.citations),
                "gold_in_hits": any(h.article_id == case.gold_document for h in resp.hits),
                "token_f1": round(token_f1(resp.answer, case.reference), 4) if answered else 0.0,
                "reference_recall": round(reference_recall(resp.answer, case.reference), 4) if answered else 0.0,
                "short_answer": resp.short_answer or "",
                "short_answer_f1": round(token_f1(_valued(resp.short_answer) or resp.answer, case.reference), 4)
                if answered else 0.0,
                "yes_no": case.yes_no if case.yes_no in (YES, NO) else "",
                "label": str(label) if (answered and label) else "", "label_source": source if answered else "",
                "label_status": status if answered else "", "label_reason": why if answered else "",
                "signals": resp.signals,
                "latency_ms": round(ms, 1),
            })
            if n % 20 == 0:
                progress(f"{setting}: {n}/{len(cases)} asked")
    conf = [r["confidence"] for r in rows]
    ys = [r["answerable"] for r in rows]
    summary = {
        "generator": generator_name,
        "by_setting": {str(s): _summarise([r for r in rows if r["setting"] == s]) for s in settings},
        "overall": _summarise(rows),
        "auroc": auroc(conf, ys),
        "risk_coverage": risk_coverage(conf, ys),
    }
    return QAEval(rows=rows, summary=summary)


async def run_qa_eval(container, csv_path: Path, *, generators: Sequence[str], labels_path: Path | None,
                      gold_out_path: Path | None, settings: Sequence[Setting], limit: int | None = None,
                      use_llm_judge: bool = False,
                      progress: Callable[[str], None] = lambda _: None) -> tuple[list[QAEval], HandLabels]:
    """Run :func:`evaluate_qa` for each generator over the container's index.

    Args:
        container: the composition root (its index must hold the gold articles: sync them first).
        csv_path: questions with reference answers.
        generators: ``"extractive"`` and/or ``"openai"`` (the latter needs ``llm.base_url``).
        labels_path / gold_out_path: the hand labels and the still-answerable list (missing files: none).
        settings: which settings to ask in.
        limit: first N questions only.
        use_llm_judge: label answers without a hand label with the configured LLM.
        progress: progress lines.

    Raises:
        FileNotFoundError, ValueError: unreadable CSVs. ConfigError: ``openai`` without ``llm.base_url``.
    """
    from citedesk.core.errors import ConfigError
    from citedesk.serving.answer.generators import ExtractiveGenerator, OpenAIGenerator
    from citedesk.serving.answer.pipeline import AnswerPipeline

    cases = load_qa(csv_path)[:limit]
    labels = HandLabels(labels_path)
    gold_out = GoldOut.load(gold_out_path)
    s = container.settings
    llm = s.llm

    def openai_generator(max_tokens: int) -> OpenAIGenerator:
        if not llm.base_url:
            raise ConfigError("the openai generator and the LLM judge need llm.base_url (CITEDESK_LLM__BASE_URL)")
        return OpenAIGenerator(llm.base_url, model=llm.model, api_key=llm.api_key.get_secret_value(),
                               timeout=llm.timeout, max_tokens=max_tokens, temperature=llm.temperature,
                               max_retries=llm.max_retries)

    judge = LLMCorrectnessJudge(openai_generator(8)) if use_llm_judge else None
    results = []
    base = container.pipeline
    for name in generators:
        gen = (ExtractiveGenerator(container.embedder, container.sparse, max_sentences=s.answer.max_sentences)
               if name == "extractive"
               else openai_generator(llm.max_tokens))
        # the configured judges and reader check, as the service runs them (the reader checks extractive answers)
        pipeline = AnswerPipeline(base.retriever, gen, base.sparse, base.policy, confidence=base.confidence,
                                  workspace=base.workspace, entailment=base.entailment, judges=base.judges,
                                  reader=base.reader if name == "extractive" else None)
        pipeline.warm_up()
        checks = [*pipeline.judges, *([pipeline.reader] if pipeline.reader is not None else [])]
        progress(f"asking {len(cases)} questions × {len(settings)} settings with the {name} generator"
                 + (f" (checks: {', '.join(c.name for c in checks)})" if checks else ""))
        results.append(await evaluate_qa(pipeline, cases, generator_name=name, labels=labels, gold_out=gold_out,
                                         judge=judge, settings=settings, progress=progress))
        if hasattr(gen, "aclose"):
            await gen.aclose()
    if judge is not None:
        await judge.generator.aclose()
    return results, labels
