"""Grounding checks of drafted sentences: sanitising, claim checks against cited passages, quoted spans.

These are the checks :class:`~citedesk.serving.answer.pipeline.AnswerPipeline` runs on every sentence before it
is sent. :func:`check_claim` says whether a sentence may be sent and why not; its score is lexical (share of
BM25 terms), not a model probability, and its rules (numbers, units and polarity checked in the same sentence,
list item or table row of the passage; names; non-answers) are those of :mod:`citedesk.serving.answer.claims`.
An entailment model (:class:`citedesk.retrieval.embedding.dense.EntailmentModel`) can be added after them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from citedesk.core.text import (
    HTML_TAG,
    MD_IMAGE,
    MD_LINK,
    URL_AT,
    sentence_spans,
    strip_markers,
    with_list_items,
)
from citedesk.core.types import Hit
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
from citedesk.serving.answer.claims import (
    REASONS,
    ClaimCheck,
    assess,
    is_answer_sentence,
    non_answer_reason,
)

__all__ = ["REASONS", "ClaimCheck", "best_quote", "check_claim", "is_answer_sentence", "non_answer_reason",
           "sanitize", "support"]

_CODE_BLOCK = re.compile(r"<(script|style|iframe|object)\b.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_LINK_TARGETS = ("http:", "https:", "mailto:", "www.")
_EMPHASIS = re.compile(r"(?<!\w)\*+|\*+(?!\w)")
_EMPTY_PARENS = re.compile(r"\s+\(\s*\)")  # after a space: a call's "getItem()" stays


def _link_text(m: re.Match[str]) -> str:
    """A markdown link to the web or an email collapses to its text; other brackets stay as written."""
    return m.group(1) if m.group(2).startswith(_LINK_TARGETS) else m.group(0)


def _url_gone(m: re.Match[str]) -> str:
    """What is left of a URL (and its "at"): the punctuation it swallowed ("…/ec2spot; Select …" keeps its "; ")."""
    return m.group(0)[len(m.group(0).rstrip(".,;:!?")):]


def _unemphasised(m: re.Match[str]) -> str:
    """An emphasis mark goes; a wildcard written "(*)" stays."""
    return m.group(0) if m.string[max(m.start() - 1, 0):m.end() + 1] == "(*)" else ""


def sanitize(sentence: str) -> str:
    """Generated sentence without markup, images, links or URLs (citation markers kept)."""
    s = _CODE_BLOCK.sub("", sentence)
    s = MD_IMAGE.sub("", s)
    s = MD_LINK.sub(_link_text, s)
    s = URL_AT.sub(_url_gone, s)
    s = HTML_TAG.sub("", s)
    s = _EMPTY_PARENS.sub("", s)  # what held an image or a URL: "choose the icon ( ) in", "console () and"
    s = s.replace("`", "")  # code marks
    s = _EMPHASIS.sub(_unemphasised, s)  # **emphasis**, but not a*b or a wildcard "(*)"
    s = re.sub(r"(?<!\w)_+|_+(?!\w)", "", s)  # _emphasis_, but not snake_case identifiers
    s = re.sub(r"(?m)^\s*[#>]+\s+", "", s)  # heading / quote marks at line start, not "C#" or "a > b"
    return re.sub(r"^[;,:]\s*", "", re.sub(r"\s+", " ", s).strip())  # a line that began with a URL


def check_claim(sentence: str, passages: list[str], sparse: BM25SparseEncoder, *, min_support: float = 0.6,
                entail: Callable[[str, str], float] | None = None, entail_min: float = 0.5) -> ClaimCheck:
    """Whether a drafted sentence is backed by the passages it cites, and if not, why.

    Checks, in order (first failure wins; rules in :mod:`citedesk.serving.answer.claims`):
    ``not_an_answer`` (questions, headings, "see ..." pointers, table separators, link lists, a copy
    of a passage heading), ``number_mismatch``, ``unit_mismatch``, ``low_term_support``,
    ``polarity_mismatch``, ``entity_missing`` and, when ``entail`` is given, ``not_entailed``. A
    sentence that copies consecutive units of a passage verbatim passes every check but the first.

    Args:
        sentence: one drafted sentence, raw or sanitised (raw lets headings and link lists be seen);
            citation markers are ignored.
        passages: texts of the cited chunks (``f"{hit.title} {hit.text}"``).
        sparse: the BM25 encoder whose terms are compared.
        min_support: share of the sentence's terms the passages must hold.
        entail: optional ``entail(premise, hypothesis) -> probability``, run only on lexically
            supported, non-verbatim sentences with the best-supporting unit(s) (at most three, the
            highest probability counts) as premise.
        entail_min: lowest entailment probability accepted.

    Returns:
        A :class:`ClaimCheck`; ``score`` is the lexical term share (0.0 for a non-answer).
    """
    if non_answer_reason(sentence):
        return ClaimCheck(False, 0.0, "not_an_answer")
    claim = strip_markers(sanitize(sentence))
    a = assess(claim, passages, sparse, min_support=min_support)
    unit = a.anchors[0] if a.anchors else None
    if a.reason is not None:
        return ClaimCheck(False, a.score, a.reason, unit)
    if entail is None or a.verbatim or not a.anchors:
        return ClaimCheck(True, a.score, None, unit)
    probs = [float(entail(premise, claim)) for premise in a.anchors[:3]]
    best = max(range(len(probs)), key=probs.__getitem__)
    ok = probs[best] >= entail_min
    return ClaimCheck(ok, a.score, None if ok else "not_entailed", a.anchors[best], probs[best])


def support(sentence: str, passages: list[str], sparse: BM25SparseEncoder) -> float:
    """Share in [0, 1] of the sentence's terms found in the passages; 0 when a claim check fails.

    The lexical part of :func:`check_claim`: 0.0 on a number, unit, polarity or name mismatch (see
    :mod:`citedesk.serving.answer.claims`), else the term share, which the caller compares with its own
    threshold. Non-answers are not judged here (see :func:`is_answer_sentence`).
    """
    a = assess(strip_markers(sentence), passages, sparse, term_gate=False)
    return a.score if a.reason in (None, "not_an_answer") else 0.0


def best_quote(hit: Hit, claims: list[str], sparse: BM25SparseEncoder, *,
               max_chars: int = 1000) -> tuple[str, int, int]:
    """The quoted span of ``hit.text`` backing the claims citing it: (quote, start, end).

    Each claim picks the sentence (or a lead-in with its list items) of the chunk sharing most of its BM25 terms
    for its length (a shorter span wins a tie, so an item's claim quotes the item, not its whole list), and each
    piece of it (cut at ``": "`` and ``"; "``) whose terms that sentence lacks, and some other sentence has, picks its
    own (the items a lead-in join names; not a column name of a table whose header row is in another chunk); the
    quote is the contiguous span from the first to the last picked sentence, so
    every claim finds its support in it. When that span is over ``max_chars`` characters, the single
    sentence best for all claims together is quoted instead. Offsets are characters into ``hit.text``.
    """
    sentences = sentence_spans(hit.text)
    merged = with_list_items(hit.text, sentences)  # a lead-in with its items, as one span …
    spans = sorted({(sp.start, sp.end): sp for sp in [*merged, *sentences]}.values(), key=lambda sp: (sp.start, sp.end))
    if not spans:  # … and each sentence alone, so an item's claim quotes that item, not its whole list
        return hit.text, 0, len(hit.text)
    span_terms = [set(sparse.terms(span.text)) for span in spans]

    def best(terms: set[str]) -> int:
        scores = [len(terms & st) / (1 + 0.01 * len(span.text)) for span, st in zip(spans, span_terms)]
        return scores.index(max(scores))

    def holds(terms: set[str]) -> bool:  # some span has one of them (a carried table header's are in none)
        return any(terms & st for st in span_terms)

    texts = [strip_markers(c) for c in claims]
    claim_terms = [set(sparse.terms(t)) for t in texts]
    picked = []
    for text, terms in zip(texts, claim_terms):
        k = best(terms)
        picked.append(spans[k])
        for piece in re.split(r":\s|;\s", text):  # "lead-in: item; item" may skip to items further down
            missing = set(sparse.terms(piece)) - span_terms[k]
            if missing and holds(missing):
                picked.append(spans[best(missing)])
    picked = picked or [spans[0]]
    start, end = min(p.start for p in picked), max(p.end for p in picked)
    if end - start > max_chars:
        one = spans[best(set().union(*claim_terms))]
        start, end = one.start, one.end
    return hit.text[start:end], start, end
