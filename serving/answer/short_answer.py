"""The short answer: the span of a checked answer that answers the question itself.

An answer is whole sentences (or a table row said with its header), each cited. Many questions ask for one value
("What is F32 Throughput in TFLOPS of ml.eia2.large?", "What is the maximum function timeout?"): the short answer
is that value, taken verbatim from the answer ("2 TFLOPS", "900 seconds"), like a search engine's answer box
above its snippet. It is shown next to the answer, never instead of it (the answer carries the citations).

Found without a model, from the answer's first sentences and the passages they cite:

* **a table row** said in the answer ("Accelerator Type: ml.eia2.large; F32 Throughput in TFLOPS: 2"): the cell
  the question asks for — not the row's name, not a cell holding the question's own terms (the key it was found
  by); among several, for a quantity question those with a number, then the column whose name shares most terms
  with the question. A bare number takes the unit its column names ("Memory in GB" → "4 GB");
* **a quantity question** (:data:`~citedesk.retrieval.answerability.QuestionType.QUANTITY`) answered by
  sentences (or by a cell holding several values): the quantity — a number with its unit or magnitude ("900
  seconds", "1.25 Gbps", "1 billion", "2 x 900 GB", "1.11 and later") — whose surrounding words (since the previous
  quantity or clause, and its own parenthetical or counted words) hold the most question terms; none when two tie;
* **a list question** answered by a lead-in with what it announces ("… one of the following states: provisioning:
  The load balancer is being set up; active: …"): the names of the entries ("provisioning, active, …"), when each
  has at most four words;
* **a yes/no question** (:func:`yes_no`): "Yes" or "No" — the Yes/No cell of the column asked, for a table row
  said; else the polarity of the answer's sentences as the claim checks read it ("You can't stop a DB instance
  that has a read replica" → "No" for "Can I stop a DB instance that has a read replica?"), when they say every
  term of the question (or their article's title does) without a hedge ("unless", "only", "if" …). A verdict read from the cited text, not a span:
  the sentences stay the answer;
* nothing otherwise (procedures and explanations are answered by the sentences themselves).
"""

from __future__ import annotations

import re

from citedesk.core.text import MEASURE_UNIT, markers, strip_markers
from citedesk.core.types import Hit
from citedesk.retrieval.answerability import (
    QuestionType,
    asked_bound,
    asks_count,
    asks_value,
    other_bound,
    question_type,
    term_weights,
)
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
from citedesk.serving.answer.claims import polarity_terms, said_row

__all__ = ["NO", "YES", "quantities", "short_answer", "yes_no"]

YES, NO = "Yes", "No"
"""The short answer of a yes/no question (:func:`yes_no`)."""
_HEDGE = re.compile(r"\b(?:unless|only|except|if|but|however|although|though|whether|depend\w*|some|certain|"
                    r"may|might|partially|limited|instead|otherwise)\b", re.IGNORECASE)

_MAGNITUDE = r"(?:thousand|million|billion|trillion)"
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)*"
_QUANTITY = re.compile(
    rf"(?<![\w.\-/])(?:{_NUM})(?:\s*[x×]\s*(?:{_NUM}))?"  # 2 x 900
    rf"(?:\s*{_MAGNITUDE}\b)?(?:\s*{MEASURE_UNIT}(?![\w]))?"  # 1 billion, 900 GB, 250MB
    r"(?:\s+(?:and|or)\s+(?:later|above|higher|newer|greater|earlier|below|lower|more|less|fewer)\b)?"  # 1.11 and later
    r"(?![\w\-]|\.\d)")
_PAREN = re.compile(r"\s*\(([^()]{0,80})\)")
_CLAUSE = re.compile(r"[.;!?](?:\s|$)|,\s")  # not ":": "Load balancers per Region: 50" names what 50 counts
_OPERATOR_BEFORE = re.compile(r"(?:[+*/×=]|\bplus|\btimes)[\s(]*$", re.IGNORECASE)  # "… + (1 byte)"
_OPERATOR_AFTER = re.compile(r"^[\s)]*(?:[+*/×=]|plus\b|times\b)", re.IGNORECASE)
_ANNOUNCES = re.compile(r"\b(?:the following|as follows)\b", re.IGNORECASE)
_BARE_BOUND = re.compile(r"\s*(?:(?:up to|at most|at least|no more than|(?:a )?(?:maximum|minimum) of|max(?:imum)?|"
                         r"min(?:imum)?)\s*)?", re.IGNORECASE)
_ENTRY_LABEL = re.compile(r"\s*([^;:–—.]{1,60}?)\s+[–—]\s+")  # "Batch size – The number of records …"
_MEASURED = re.compile(rf"\d\s*(?:{_MAGNITUDE}\s*)?{MEASURE_UNIT}(?!\w)")
_HEADER_UNIT = re.compile(rf"(?:\bin\s+|\()({MEASURE_UNIT})\)?\s*$")


def quantities(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each quantity in ``text``: a number (not inside a name such as ``ml.eia2.large``,
    ``db.t2.medium`` or ``us-east-1``) with its multiplier, magnitude, unit and "and later" qualifier. A quantity
    in the parentheses right after another is the same one restated ("2 x 900 GB (1.8 TB)") and left out."""
    out: list[tuple[int, int]] = []
    restated = -1
    for m in _QUANTITY.finditer(text):
        if m.start() < restated:
            continue
        out.append(m.span())
        paren = _PAREN.match(text, m.end())
        restated = paren.end() if paren is not None else -1
    return out


def _context(text: str, spans: list[tuple[int, int]], k: int) -> str:
    """The words that say what quantity ``k`` quantifies: from the previous quantity or clause end before it, to
    its parenthetical or the next clause end or quantity after it; a bare bound before it ("…in each batch, up to
    1,000") reaches back one more clause, and the label of the list entry it is in ("Batch size – …") counts in that
    entry's first sentence."""
    start, end = spans[k]
    floor = spans[k - 1][1] if k else 0
    cut = [m.end() for m in _CLAUSE.finditer(text, floor, start)]
    left = cut[-1] if cut else floor
    if len(cut) > 1 and _BARE_BOUND.fullmatch(text[left:start]):
        left = cut[-2]
    entry = text.rfind("; ", 0, start) + 1
    label = _ENTRY_LABEL.match(text, entry)
    head = (label.group(1) + " " if label is not None and label.end() <= left  # the entry's first sentence only
            and not re.search(r"[.!?]\s", text[label.end():start]) else "")
    right = spans[k + 1][0] if k + 1 < len(spans) else len(text)
    paren = _PAREN.match(text, end)
    if paren is not None:
        right = min(right, paren.end())
    else:
        stop = _CLAUSE.search(text, end, right)
        right = stop.start() if stop is not None else right
    return head + text[left:start] + " " + text[end:right]


def _best_quantity(text: str, weights: dict[str, float], sparse: BM25SparseEncoder, *,
                   named: bool = False, count: bool = False, bound: str | None = None) -> str | None:
    """The quantity of ``text`` whose context holds the most question-term weight (the only one when there is one).

    None when there is none, when the best two tie, when the quantity is a term of a formula ("(length of
    attribute name) + (1 byte)"), or, with ``named``, when its context holds no question term (a sentence's number
    that quantifies something else). With ``count`` (the question asks how many), only numbers without a unit of
    measure are candidates: "400 KB" is no count of indexes. With ``bound`` (the question asks for the maximum or
    the minimum, :func:`~citedesk.retrieval.answerability.asked_bound`), a quantity whose context states the other
    bound is no candidate ("The minimum length … is 1 byte" for the maximum length)."""
    spans = quantities(text)
    if count:
        spans = [(a, b) for a, b in spans if _MEASURED.search(text, a, b) is None]
    if bound is not None:
        spans = [span for k, span in enumerate(spans) if not other_bound(_context(text, spans, k), bound)]
    if not spans:
        return None
    scored = sorted(((sum(weights.get(t, 0.0) for t in set(sparse.terms(_context(text, spans, k)))), k)
                     for k in range(len(spans))), reverse=True)
    if len(spans) > 1 and (scored[0][0] <= 0.0 or scored[0][0] == scored[1][0]):
        return None
    if named and scored[0][0] <= 0.0:
        return None
    start, end = spans[scored[0][1]]
    if _OPERATOR_BEFORE.search(text[:start]) or _OPERATOR_AFTER.search(text[end:]):
        return None
    return text[start:end]


def _name_shares(names: list[str], keys: set[str], sparse: BM25SparseEncoder) -> list[tuple[float, int]]:
    """For each column name, (the share of its terms the question has, how many): how plainly the question names
    that column ("Supports tagging on creation" over "Supports tags" for "… support tagging on creation?")."""
    out = []
    for name in names:
        terms = set(sparse.terms(name))
        out.append((len(keys & terms) / max(1, len(terms)), len(keys & terms)))
    return out


def _row_answer(row: tuple[tuple[str, str, bool], ...], weights: dict[str, float], sparse: BM25SparseEncoder,
                quantity: bool) -> str | None:
    """The asked cell of a row said in the answer (``row``: :attr:`~citedesk.serving.answer.claims.SaidRow.cells`),
    or None when not exactly one said cell is asked."""
    keys = set(weights)
    said = [(name, cell) for k, (name, cell, was_said) in enumerate(row) if was_said and k > 0]
    shares = _name_shares([n for n, _ in said], keys, sparse)
    top = max(shares, default=(0.0, 0))
    if top[0] >= 0.5:  # the column the question names ("F32 Throughput in TFLOPS", "Description")
        asked = [a for a, share in zip(said, shares) if share == top]
    else:  # not a cell with the question's terms (the key the row was found by), unless it is the quantity asked
        asked = [(n, c) for n, c in said if not keys & set(sparse.terms(c)) or quantity and quantities(c)]
        if quantity and len(asked) > 1:
            asked = [(n, c) for n, c in asked if quantities(c)] or asked
    if len(asked) != 1:
        return None
    name, cell = asked[0]
    value = _best_quantity(cell, weights, sparse) if quantity and quantities(cell) else None
    value = value or cell  # the cell's values, when none of several is the one asked ("1, 2")
    if len(value.split()) > 12:
        return None
    unit = _HEADER_UNIT.search(name)
    if unit is not None and re.fullmatch(_NUM, value):  # "Memory in GB" | 4 → "4 GB"
        value = f"{value} {unit.group(1)}"
    return value


def _list_answer(text: str) -> str | None:
    """The names a lead-in's list gives ("… one of the following states: provisioning: The load balancer is being set
    up; active: …" → "provisioning, active, …"): each entry's term (before its ": "), or the entry itself; None
    unless the sentence is a lead-in that announces what follows and every name has at most four words."""
    lead, sep, rest = text.partition(": ")
    if not sep or not _ANNOUNCES.search(lead) or len(lead.split()) < 3:
        return None
    names = []
    for entry in rest.rstrip(" .").split("; "):
        name = entry.partition(": ")[0].strip() if ": " in entry else entry.strip()
        if not name or len(name.split()) > 4:
            return None
        names.append(name)
    return ", ".join(names) if len(names) >= 2 else None


_YES_CELLS = frozenset({"yes", "supported", "true"})
_NO_CELLS = frozenset({"no", "not supported", "unsupported", "false"})


def _cell_yes_no(cell: str) -> str | None:
    value = " ".join(cell.strip(" *.`").lower().split())
    return YES if value in _YES_CELLS else NO if value in _NO_CELLS else None


def _row_yes_no(row: tuple[tuple[str, str, bool], ...], weights: dict[str, float],
                sparse: BM25SparseEncoder) -> str | None:
    """The Yes/No cell a yes/no question asks for, of a row said in the answer ("Resource: AMI; Supports tags:
    Yes"): the said cell holding Yes/No (or true/false, supported/not supported) whose column name shares the largest
    part of its terms with the question — at least half when the row has several such cells —; None when there is
    none (a value such as "32" says no yes or no) or two tie."""
    cells = [(name, _cell_yes_no(cell)) for k, (name, cell, said) in enumerate(row) if said and k > 0]
    cells = [(name, v) for name, v in cells if v is not None]
    if not cells:
        return None
    shares = _name_shares([n for n, _ in cells], set(weights), sparse)
    best = max(shares)
    top = [v for (_, v), share in zip(cells, shares) if share == best]
    if len(top) != 1 or (len(cells) > 1 and best[0] < 0.5):
        return None
    return top[0]


def yes_no(question: str, texts: list[str], weights: dict[str, float], sparse: BM25SparseEncoder, *,
           topic: str = "") -> str | None:
    """:data:`YES` or :data:`NO` for a yes/no question, read from the polarity of the answer's sentences (or the
    table row said), or None where they do not settle it.

    The polarity rule of the claim checks (:func:`~citedesk.serving.answer.claims.polarity_terms`) reads which
    terms each sentence asserts and which it negates ("You can't *stop a DB instance that has a read replica*";
    "Adjustable? No"). :data:`NO` when the sentences negate a term of the question that none of them asserts, and
    a negation's first word is one of the question's ("You can't undo deleting your account" does not say you
    can't delete it);
    :data:`YES` when none negates one and they have no negation cue at all, or clauses without one assert every
    term. None when a term of the question is neither said by the sentences nor
    in ``topic`` (a sentence about a read replica's storage type does not say whether you can *stop* a DB instance
    that has one; "SageMaker" may stay in the id or title of the cited article), when they hedge
    ("unless", "only", "if", "but", "some", "may" …: a condition the question does not state), when the question
    is itself negated ("Can't I …?") or holds a quantity ("Can I use more than 20 GB?": a comparison, which
    polarity does not read).

    Args:
        question: as asked.
        texts: the answer's sentences, markers stripped.
        weights: the question's term weights.
        sparse: the BM25 encoder (the same term analysis as ``weights``).
        topic: the cited passages' article ids (a folder article's path names its guide), titles and headings:
            what they are about, unsaid in their sentences.
    """
    if not texts or not weights or polarity_terms(question, sparse).cue or quantities(question):
        return None  # "Can I use more than 20 GB?" against "up to 10 GB" is arithmetic, not polarity
    if any(_HEDGE.search(t) for t in texts):
        return None
    asserted: set[str] = set()
    said: set[str] = set()
    negated: set[str] = set()
    heads: set[str] = set()
    cue = False
    for text in texts:
        pol = polarity_terms(text, sparse)
        asserted |= pol.asserted
        said |= pol.asserted | pol.subject | pol.negated
        negated |= pol.negated
        heads |= pol.heads
        cue = cue or pol.cue
    keys = weights.keys()
    topic_terms = set(sparse.terms(topic))
    if keys - said - topic_terms:
        return None
    if keys & negated:  # the negation must be of what is asked: "can't *stop* …", not "can't undo *deleting* …"
        return NO if (keys & negated) - asserted and heads & set(sparse.terms(question)) else None
    # a negation about something else ("… a public Git repository that is not a resource in your account") leaves
    # a yes standing only where clauses without one assert all that is asked
    return YES if not cue or not keys - asserted - topic_terms else None


def _cited(sentence: str, evidence: list[Hit]) -> list[Hit]:
    """The hits a sentence's ``[n]`` markers cite, in the order first cited."""
    return [evidence[m - 1] for m in dict.fromkeys(markers(sentence)) if 1 <= m <= len(evidence)]


def _passages(hits: list[Hit]) -> list[str]:
    """The hits' texts as the claim checks read them: a table header line carried before the chunk's text."""
    return [f"{h.table_header}\n{h.text}" if h.table_header else h.text for h in hits]


def short_answer(question: str, sentences: list[str], evidence: list[Hit], sparse: BM25SparseEncoder, *,
                 max_sentences: int = 3) -> str | None:
    """The short answer of a checked answer (see the module docstring).

    Args:
        question: as asked.
        sentences: the answer's sentences as given, with their ``[n]`` markers (``[n]`` cites ``evidence[n-1]``).
        evidence: the hits in marker order.
        sparse: the BM25 encoder (the question's term analysis).
        max_sentences: answer sentences looked at, from the first.

    Returns:
        A span of the answer (a table cell, possibly with its column's unit; a quantity; a list's names), "Yes" or
        "No" for a yes/no question, or None where the answer has no single value that answers (the sentences
        answer: procedures, explanations, a yes/no they do not settle).
    """
    qtype = question_type(question)
    if qtype == QuestionType.LIST and sentences:
        return _list_answer(strip_markers(sentences[0]).strip())
    weights = term_weights(question, sparse)
    if qtype == QuestionType.YES_NO:
        texts: list[str] = []
        topic: list[str] = []  # "amazon-sagemaker-developer-guide/multi-model-endpoints.md", title, heading
        for sentence in sentences[:max_sentences]:
            text = strip_markers(sentence).strip()
            cited = _cited(sentence, evidence)
            row = said_row(text, _passages(cited))
            if row.cells:
                return _row_yes_no(row.cells, weights, sparse)
            texts.append(text)
            topic += [f"{h.article_id} {h.title} {h.heading}" for h in cited]
        return yes_no(question, texts, weights, sparse, topic=" ".join(topic))
    quantity = qtype == QuestionType.QUANTITY and asks_value(question)
    found: list[str] = []
    for sentence in sentences[:max_sentences]:
        text = strip_markers(sentence).strip()
        if qtype in (QuestionType.QUANTITY, QuestionType.OTHER):
            row = said_row(text, _passages(_cited(sentence, evidence)))
            if row.cells:
                return _row_answer(row.cells, weights, sparse, quantity)
        if quantity and quantities(text):
            found.append(text)
    if not found:
        return None
    return _best_quantity(" ".join(found), weights, sparse, named=True, count=asks_count(question),
                          bound=asked_bound(question))
