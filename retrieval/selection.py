"""Which answer unit answers: features of a (question, unit) pair and the fitted model that ranks units.

The extractive generator (:class:`citedesk.serving.answer.generators.ExtractiveGenerator`) answers with the
best-ranked unit of its evidence. Units are ranked by a linear score over :func:`unit_features`
(:class:`SelectionModel`). The shipped weights are the hand-set ones of version 0.1 (``0.5·coverage +
0.5·cosine + 0.3·precision + 0.1`` for the shape a quantity or list question asks for ``− 0.02·rank``; since
2026-11-26 a sentence that enumerates "A, B, and C" counts as that shape for a list question, like a list or a
table row; on the dev questions this changed one answer, to a correct one, and not the top-1 figure below):
``bench/selection_fit.py`` fits rankers over all the features below on units labelled automatically (a unit
answers when it holds ≥ 80 % of the reference answer's words), with folds grouped by question, and on the 52
dev questions that have an answering unit none beat these weights held out (see that script's docstring).
The features say how a unit relates to the *kind* of question as well as to its words:

* match: rarity-weighted coverage of the question (with and without the chunk's title/heading), the share of the
  unit's words the question asks about (precision), the dense cosine of unit and question, the hit's rank;
* answer shape: a number for a quantity question; a list, a table row or an enumeration ("A, B, or C") for a
  list question; a modal or capability verb ("you can", "cannot", "supports") for a yes/no question; the
  defined term as the unit's subject for "what is X?"; a procedure — its title line, or its steps with the title
  as lead-in — for a question that asks how to do something (weighed 0.1 since 2026-11-27, as the other shapes;
  ``bench/procedure_check.py --loose`` 153 → 156 of 177 answered with the steps, no dev answer changed); for
  "what is X?" (not a quantity, list or yes/no question), a sentence that says what X is — X as its subject before
  "is"/"are" (``definition_shape``, weighed 0.1 likewise since 2026-11-27; ``bench/definition_check.py``); for
  "why …?", a unit that gives a reason or a benefit ("helps you lower your cost", "so that", "for enhanced
  availability"; ``reason_shape``, 0.1 likewise);
* form: a short verbless fragment (a heading or a label) rarely answers;
* bound: for a question that asks for one end of a range ("What is the maximum length …?"), a unit that states
  only the other end ("The minimum length … is 1 byte.") does not answer, however well it matches the question's
  other words (``other_bound``, weighed −0.3 since 2026-11-27, three times a shape: a mismatch outweighs the
  cosine and coverage edge a sentence that names the thing has over its elliptic neighbour "The maximum length is
  2048 bytes."; no dev answer changed);
* says nothing itself (since 2026-11-27, hand-set, found asking the dev questions over all 2,757 pages, where
  neighbouring pages answered five of them wrongly): for a question that asks for a number
  (:func:`~citedesk.retrieval.answerability.asks_number`: "What is the maximum unzipped deployment package
  size?", not "What is the default …?"), a unit without a number other than the question's own (``no_value``, −0.2:
  the API field "CodeSizeZipped The maximum size of a deployment package …"); for a question that asks for neither
  a list nor a procedure, a list item whose own text holds less than :data:`LEAD_IN_ONLY` of the question's term
  weight, its match all in its lead-in (``lead_in_only``, −0.3: "The
  resources on which actions can be performed."), and a numbered step (``stray_step``, −0.1: "Open the SageMaker
  console." for "Can I use my own custom algorithm …?"). Over all pages the wrong answers of the dev questions went
  from 7 of 47 to 3–4 of 46–47; over the bundled pages no dev answer changed;
* names a sibling of what the question names, and not it (``sibling_name``, −0.2, hand-set, since 2026-11-27):
  "Elastic Network Adapters (ENAs) provide traditional IP networking …" for "Why use Elastic Fabric Adapter?"
  (:func:`~citedesk.retrieval.answerability.sibling_name`: a multi-word name of as many terms as the asked one,
  sharing at least two and half of them but not all, in a unit that lacks the asked name);
* names another product than the question asks about, and not it (``other_product``, −0.2, hand-set, since
  2026-11-27): "Several factors can affect the performance of Amazon EBS volumes …" on the RDS storage page for
  "What are the factors that affect storage performance in Amazon RDS?"
  (:func:`~citedesk.retrieval.answerability.other_product`: a vendor-prefixed name — "Amazon EBS" — that is none of
  the question's, nor their initials, in a unit that holds no term of theirs). On the dev questions it changed that
  answer only, from wrong to partial ("Both system activities and database workload can affect storage
  performance."), over the bundled pages and over all pages; none of the ~200 hand-written probe questions
  changed over all pages.

Where what the best unit would say still holds no number for a question that asks for one, the extractive generator
declines (:data:`citedesk.serving.answer.generators.NO_VALUE`; the answer escalates, ``generator_declined``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from citedesk.core.text import PROCEDURE_TITLE, is_fragment
from citedesk.retrieval.answerability import QuestionType, UnitMatch, other_bound

__all__ = ["DEFAULT_SELECTION_WEIGHTS", "FEATURES", "SCORE_KIND", "SelectionModel", "unit_features"]

SCORE_KIND = "unit_selection_score"
"""The kind of :meth:`SelectionModel.score`: a weighted sum, comparable between units of one question only."""

_MODAL = re.compile(r"\b(?:can(?:not)?|can't|could|may|must|supports?|supported|allows?|lets you|able to|"
                    r"available|enables?)\b", re.IGNORECASE)
_REASON = re.compile(r"\b(?:because|so that|so you can|helps?(?: you)?|lets? you|enables? you|allows? you|"
                     r"improv\w*|reduc\w*|lower\w*|increas\w*|benefits?|advantages?|in order to|to avoid|to ensure|"
                     r"to protect|recommend\w*|enhanc\w*|optimi[sz]\w*|faster|cheaper|cost-effective|saves?|"
                     r"useful|predictable)\b", re.IGNORECASE)
_ENUMERATION = re.compile(r"(?:[^,;]+,){2,}|;|\b(?:either|or)\b.+\bor\b", re.IGNORECASE)

FEATURES = ("coverage", "own_coverage", "precision", "cosine", "rank", "quantity_number", "list_kind",
            "list_enumeration", "yes_no_modal", "definition_subject", "fragment", "table_row", "list",
            "procedure_shape", "definition_shape", "reason_shape", "other_bound", "no_value", "lead_in_only",
            "stray_step", "sibling_name", "other_product")
"""Feature names, in the order of :func:`unit_features`' vector."""


def unit_features(qtype: str, match: UnitMatch, cosine: float, *, term_terms: frozenset[str] = frozenset(),
                  unit_terms: list[str] | None = None, procedure: bool = False,
                  defines: bool = False, reason: bool = False, bound: str | None = None,
                  value: bool = False, step: bool = False, sibling: bool = False,
                  other: bool = False) -> dict[str, float]:
    """Features of one candidate unit (see the module docstring; in [0, 1] except ``cosine`` in [-1, 1] and
    ``rank``, the hit's 0-based rank).

    Args:
        qtype: :func:`citedesk.retrieval.answerability.question_type` of the question.
        match: the unit with its lexical match (:func:`citedesk.retrieval.answerability.match_units`).
        cosine: dense cosine of the unit (with its context) and the question.
        term_terms: stemmed terms of the defined term of a "what is X?" question (empty otherwise).
        unit_terms: the unit text's stemmed terms in order (for the subject test; None: no subject test).
        procedure: the question asks how to do something (:func:`citedesk.retrieval.answerability.asks_procedure`).
        reason: the question asks why (:func:`citedesk.retrieval.answerability.asks_reason`), for the reason shape.
        defines: the unit says what the defined term is
            (:func:`~citedesk.retrieval.answerability.defines`), for the definition shape.
        bound: the end of a range the question asks for (:func:`~citedesk.retrieval.answerability.asked_bound`),
            for ``other_bound``.
        value: the question asks for a number (:func:`~citedesk.retrieval.answerability.asks_number`), for
            ``no_value``.
        step: the unit is a numbered list item (a step of a procedure), for ``stray_step``.
        sibling: the unit names a sibling of a name the question asks about, and not that name
            (:func:`~citedesk.retrieval.answerability.sibling_name`), for ``sibling_name``.
        other: the unit names another product than the question asks about, and not it
            (:func:`~citedesk.retrieval.answerability.other_product`), for ``other_product``.
    """
    u = match.unit
    text = u.text
    subject = 0.0
    if term_terms and unit_terms:
        head = set(unit_terms[: len(term_terms) + 2])
        subject = len(head & term_terms) / len(term_terms)
    return {
        "coverage": match.coverage,
        "own_coverage": match.own_coverage,
        "precision": match.precision,
        "cosine": float(cosine),
        "rank": float(match.hit),
        "quantity_number": float(qtype == QuestionType.QUANTITY and match.has_number),
        "list_kind": float(qtype == QuestionType.LIST and u.kind in ("list", "table_row")),
        "list_enumeration": float(qtype == QuestionType.LIST and u.kind == "sentence"
                                  and bool(_ENUMERATION.search(text))),
        "yes_no_modal": float(qtype == QuestionType.YES_NO and bool(_MODAL.search(text))),
        "definition_subject": subject,
        "fragment": float(u.kind == "sentence" and is_fragment(text)),
        "table_row": float(u.kind == "table_row"),
        "list": float(u.kind in ("list", "list_item")),
        "procedure_shape": float(procedure and bool(PROCEDURE_TITLE.fullmatch(
            (u.context if u.kind == "list" else text if u.kind == "sentence" else "").strip()))),
        "definition_shape": float(qtype == QuestionType.OTHER and bool(term_terms) and defines),
        "reason_shape": float(reason and u.kind != "table_row" and bool(_REASON.search(text))),
        "other_bound": float(bound is not None and other_bound(f"{u.context} {text}", bound)),
        "no_value": float(value and not match.has_number),
        "lead_in_only": float(qtype != QuestionType.LIST and not procedure and u.kind == "list_item"
                              and bool(u.context) and match.text_coverage < LEAD_IN_ONLY),
        "stray_step": float(step and not procedure and qtype != QuestionType.LIST),
        "sibling_name": float(sibling),
        "other_product": float(other),
    }


LEAD_IN_ONLY = 0.2
"""``lead_in_only``: a list item whose own text holds less than this share of the question's term weight."""

DEFAULT_SELECTION_WEIGHTS: dict[str, float] = {
    "coverage": 0.5, "cosine": 0.5, "precision": 0.3, "quantity_number": 0.1, "list_kind": 0.1, "list_enumeration": 0.1,
    "procedure_shape": 0.1, "definition_shape": 0.1, "reason_shape": 0.1, "other_bound": -0.3, "rank": -0.02,
    "no_value": -0.2, "lead_in_only": -0.3, "stray_step": -0.1, "sibling_name": -0.2,
    "other_product": -0.2,
}
"""Weights of :class:`SelectionModel` (features not named weigh 0): version 0.1's hand-set ranking, with the
enumeration shape weighed as the list shape."""


class SelectionModel:
    """Linear score over :func:`unit_features` (kind :data:`SCORE_KIND`); the best-scoring unit answers.

    Args:
        weights: feature name → weight, plus an optional ``bias``; missing names weigh 0.
    """

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self.weights = dict(DEFAULT_SELECTION_WEIGHTS if weights is None else weights)

    def score(self, features: Mapping[str, float]) -> float:
        """Weighted sum of ``features`` (kind :data:`SCORE_KIND`)."""
        return self.weights.get("bias", 0.0) + sum(self.weights.get(k, 0.0) * v for k, v in features.items())
