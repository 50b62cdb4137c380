"""Where a drafted sentence finds its support in a cited passage: numbers, polarity, names, non-answers.

(About 800 lines on purpose: the passage reader, the number, polarity and name rules share one unit model and
one cache; split, each part would re-parse the same passages or pass their internals around.)

:func:`citedesk.serving.answer.grounding.check_claim` is the public entry point; this module reads
passages and claims. Everything is lexical: *terms* are :meth:`BM25SparseEncoder.terms` (lowercased,
stop words removed, stemmed), never model probabilities.

**Units.** A passage (``f"{title} {text}"`` of a cited chunk) is read line by line as *units*: each
sentence of a paragraph, each sentence of a list item, each table row (a line with ``" | "``) and each
heading line. A unit has a *context* — the table's header row for a row; the list's lead-in sentence
(the sentence ending in ``:`` right before the list) and the parent items for a list item — and a
*topic*: the headings above it and the passage's first line (the title). Lists and tables also form
*blocks* (lead-in or header plus all their units) for claims that sum up several items.

**Rules** (a claim is one sentence, citation markers removed), checked in this order:

* *verbatim*: a claim whose words are, in order, those of consecutive units of one passage (list
  marks, punctuation and case aside, so the extractive ``"lead-in: item; item."`` joins count) passes
  every lexical check below. So does such a join whose items are later units of the lead-in's section
  that the join skips to (the items a question names out of a long list): no heading or other lead-in
  (a unit ending in ``:``) between them, each within 800 words of the part before it. So does a table
  row said cell by cell (``"Header 1: cell 1; Header 3: cell 3"``), each piece a column's name and that
  row's cell in it (a number in a column's name, "Version 12.2", is said where it stands); a claim said
  that way whose pieces name a table's columns but whose cells no row of it holds (a value from another
  row) is rejected (``unit_mismatch``).
* *numbers* (``number_mismatch`` / ``unit_mismatch``): each number of the claim must occur, as a
  number, in one unit (``5,000`` = ``5000`` ≠ ``5``; ``1.5`` ≠ ``15``; decimals compare digit by digit,
  so ``3.10`` ≠ ``3.1``; ``2 million`` = ``2,000,000``), and in that same unit with the same
  measurement unit (``GB``, ``ms``, ``days``, ``%``... right after the number in the claim): right
  after the number there, or — for a bare number — in its column's header cell (table row) or in the
  list lead-in; and about the same thing: at least half of the claim's terms nearest to the number
  (two content words each side, within five tokens; generic quota words such as "maximum", "number",
  "per" left out) in the unit, its context or its headings. Numbers inside names (``EC2``,
  ``us-east-1``, ``t2.micro``) are names, not numbers.
* *term support* (``low_term_support``): the share of the claim's terms found anywhere in the
  passages must reach ``min_support`` (this share is the score).
* *polarity* (``polarity_mismatch``): negation cues are ``not``, ``no``, ``never``, ``none``,
  ``nothing``, ``neither``, ``nor``, ``nobody``, ``nowhere``, ``without`` and the forms ``n't``,
  ``cannot``, ``unsupported``, ``unavailable``, ``unable``; bounds are not negations (``no more than
  5``, ``not only``, ``or not``), and ``cannot exceed 5 GB`` negates only "exceed". A cue negates its
  clause (clauses end at ``, ; ! ? |``, a full stop, ``but``, ``however``, ``although``...); a clause
  that is a bare cue ("No") negates the clause before it ("Adjustable? No"); in a table row, a cell
  with a cue also negates its column's header. The claim's *anchors* are the units (the
  number-bearing ones, for a claim with numbers) sharing most of its terms; one anchor must agree:
  a term the claim asserts must not occur in it only after a cue, and a negated claim needs it to
  negate at least one of the claim's negated terms, and at least as many as it asserts of those the
  claim puts after its cue ("X isn't possible" matches "you can't X").
* *names* (``entity_missing``): capitalised words (not the first word, not after ``:``, not stop
  words), acronyms, words with inner capitals (``InnoDB``) and code-like tokens (``ml.eia2.large``,
  ``us-east-1``, ``snake_case``) of each clause of the claim (cut at ``;`` and ``, and``/``, but``...)
  must occur in the scope (text, context and topic) of one unit supporting that clause: a unit
  bearing every number of the clause (else a list or table block holding them); for a clause without
  numbers, a unit holding the most of its other terms — what it says about the names — (one fewer
  when that is four or more), or such a block two or more of whose items or rows name them
  ("available in A and B"; table rows only where the names stand in the same columns of each row, so one
  row's key is not paired with another row's value: "the pg_cron version is 3.0.2"). A plain capitalised
  word (no digit, inner capital or acronym) may also be found elsewhere in the passage — a product named in
  the intro — unless it occurs in a sibling item or row of that unit's list or table (another region of the
  same list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import ClassVar, NamedTuple

from citedesk.core.text import (
    ABBREVIATION_END,
    FENCE,
    LIST_MARK,
    MD_LINK,
    PROCEDURE_TITLE,
    URL,
    URL_AT,
    answer_units,
    is_group_label,
    row_cells,
    strip_markers,
    table_cells,
)
from citedesk.retrieval.answerability import other_bound, stated_bound
from citedesk.retrieval.embedding.sparse import STOP_WORDS, BM25SparseEncoder

__all__ = ["REASONS", "Assessment", "ClaimCheck", "PolarityTerms", "SaidRow", "assess", "is_answer_sentence",
           "non_answer_reason", "polarity_terms", "said_row"]

REASONS = ("not_an_answer", "number_mismatch", "unit_mismatch", "low_term_support", "polarity_mismatch",
           "entity_missing", "not_entailed")
"""Why :func:`~citedesk.serving.answer.grounding.check_claim` rejects a sentence, in the order checked."""


@dataclass(frozen=True)
class ClaimCheck:
    """Outcome of checking one drafted sentence against the passages it cites.

    Attributes:
        supported: the sentence may be sent.
        score: share in [0, 1] of the sentence's terms found in the passages (kind ``score_kind``).
        reason: one of :data:`REASONS` when not supported, else None.
        unit: the passage unit that best supports the sentence (with its context), when one was found.
        entailment: the entailment probability of ``unit`` ⇒ sentence, when an entailment model was given.
    """

    supported: bool
    score: float
    reason: str | None = None
    unit: str | None = None
    entailment: float | None = None
    score_kind: ClassVar[str] = "lexical_term_share"


# ---------------------------------------------------------------- non-answers

_QUESTION_PREFIX = re.compile(r"^\s*(?:[-*+>]\s+)?(?:\*\*|__)?(?:question|q)\s*\d*\s*(?:\*\*|__)?\s*[:.)\]-]",
                              re.IGNORECASE)
_HEADING_LINE = re.compile(r"^\s*#{1,6}(?:\s|$)|^\s*(\*\*|__)[^*_]+\1\s*:?\s*$")
_SEE_ALSO = re.compile(r"^\s*(?:[-*+]\s+)?(?:\W\s*)?(?:see\b|refer to\b|learn more\b|to learn more\b"
                       r"|for\b[^.?!]{0,200}?,\s*(?:see|refer to)\b)", re.IGNORECASE)
_SEPARATOR = re.compile(r"^[\s|:+\-=_*]*$")
_LINK_LIST_REST = re.compile(r"^(?:[\s,;|•·/\-–—*+.]|\band\b|\bor\b|\d+[.)])*$", re.IGNORECASE)


def non_answer_reason(sentence: str) -> str | None:
    """Why a drafted line is not an answer sentence, or None when it is one.

    Args:
        sentence: one drafted sentence or line, preferably before
            :func:`~citedesk.serving.answer.grounding.sanitize` (headings and links are only visible then).

    Returns:
        ``"empty"`` (no word), ``"question"`` (ends in ``?`` or starts ``Question:`` / ``Q:``),
        ``"heading"`` (``# ...`` or a line that is all bold), ``"see_also"`` (``See ...``, ``Refer to
        ...``, ``For more information, see ...``), ``"table_separator"`` (only ``-``, ``|``, ``:``, ``=``)
        , ``"link_list"`` (nothing but links or URLs) or None.
    """
    text = strip_markers(sentence).strip()
    if _SEPARATOR.match(text) and re.search(r"[-=_*]{3}", text):
        return "table_separator"
    if not re.search(r"\w", text):
        return "empty"
    if _HEADING_LINE.match(text):
        return "heading"
    if _QUESTION_PREFIX.match(text) or re.sub(r"[\s\"')\]*_]+$", "", text).endswith("?"):
        return "question"
    if _SEE_ALSO.match(text):
        return "see_also"
    bare = LIST_MARK.sub("", text)
    if (MD_LINK.search(bare) or URL.search(bare)) and _LINK_LIST_REST.match(URL.sub(" ", MD_LINK.sub(" ", bare))):
        return "link_list"
    return None


def is_answer_sentence(sentence: str) -> bool:
    """Whether a drafted line can be an answer sentence (see :func:`non_answer_reason` for what is not).

    Args:
        sentence: one drafted sentence or line, preferably before sanitising.

    Returns:
        False for questions, headings, "see ..." pointers, table separators, bare link lists and
        empty lines; True otherwise.
    """
    return non_answer_reason(sentence) is None


# ---------------------------------------------------------------- tokens, numbers, terms

_WORDISH = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d.,]\d)|[^\W_]+(?:[._:/\-][^\W_]+)*|%")
_PIECE = re.compile(r"[^\W_]+")


def _words(text: str) -> tuple[str, ...]:
    """Lowercased word pieces of a text, punctuation dropped (what the verbatim rules compare)."""
    return tuple(w.lower() for w in _PIECE.findall(text))


_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_GLUED = re.compile(r"(\d+(?:\.\d+)?)-?([A-Za-z]+)")
_SCALES = {"thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9, "trillion": 10 ** 12}
_MEASURES = {w: canon for canon, words in {
    "byte": "byte bytes", "bit": "bit bits", "kb": "kb kilobyte kilobytes", "kib": "kib kibibyte kibibytes",
    "mb": "mb megabyte megabytes", "mib": "mib mebibyte mebibytes", "gb": "gb gigabyte gigabytes",
    "gib": "gib gibibyte gibibytes", "tb": "tb terabyte terabytes", "tib": "tib tebibyte tebibytes",
    "pb": "pb petabyte petabytes", "kbps": "kbps", "mbps": "mbps", "gbps": "gbps",
    "ms": "ms millisecond milliseconds", "second": "sec secs second seconds", "minute": "min mins minute minutes",
    "hour": "hr hrs hour hours", "day": "day days", "week": "week weeks", "month": "month months",
    "year": "year years", "percent": "% percent pct", "vcpu": "vcpu vcpus", "iops": "iops",
}.items() for w in words.split()}
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "e", "g", "i", "approx", "no"})

_CUES = frozenset({"not", "no", "never", "none", "nothing", "neither", "nor", "nobody", "nowhere", "without"})
_CLAUSE_END = frozenset({"but", "however", "whereas", "while", "although", "though", "unless", "except",
                         "instead", "because", "so"})
_EXPAND = [
    (re.compile(r"\bcan['’]t\b", re.IGNORECASE), "can not"),
    (re.compile(r"\bwon['’]t\b", re.IGNORECASE), "will not"),
    (re.compile(r"\b(\w+)n['’]t\b", re.IGNORECASE), r"\1 not"),
    (re.compile(r"\bcannot\b", re.IGNORECASE), "can not"),
    (re.compile(r"\bun(supported|available|able)\b", re.IGNORECASE), r"not \1"),
]
_COMPARATIVE = r"(?:more|less|fewer|greater|larger|smaller|longer|shorter|higher|lower|later|earlier|bigger|older|newer)"
_BOUND = re.compile(r"\b(?:not|no|never)\s+((?:[^\W\d_]+\s+){0,2}?" + _COMPARATIVE + r"\s+than\b|only\b)"
                    r"|\b(or|whether)\s+not\b", re.IGNORECASE)
_EXCEED = re.compile(r"\b((?:not|never)\s+(?:[^\W\d_]+\s+){0,2}?(?:exceed|exceeds|exceeding|surpass)\b)", re.IGNORECASE)


def _canon(number: str, scale: int = 1) -> str:
    """A number as compared: thousands separators dropped; integers as ints; decimals digit by digit."""
    value = number.replace(",", "")
    if scale != 1:
        try:
            scaled = Decimal(value) * scale
            return str(int(scaled)) if scaled == scaled.to_integral_value() else str(scaled.normalize())
        except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
            return value
    return value if "." in value else str(int(value))


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num" | "word"
    text: str  # the number (canonical) or the word as written
    start: int  # offset in the text
    measure: str | None = None  # num: canonical measurement unit right after it


def _tokens(text: str) -> list[_Tok]:
    """Numbers (scale words folded in, measurement unit attached) and words of a text, in order."""
    raw: list[_Tok] = []
    for m in _WORDISH.finditer(text):
        tok, start = m.group(), m.start()
        if re.fullmatch(r"\d+(?:-\d+)+", tok):  # ranges and dates: separate numbers
            raw.extend(_Tok("num", _canon(p), start) for p in tok.split("-"))
        elif _NUMBER.fullmatch(tok):
            raw.append(_Tok("num", tok, start))
        elif (g := _GLUED.fullmatch(tok)) and g.group(2).lower() in _MEASURES:  # 10GB, 64-bit
            raw += [_Tok("num", g.group(1), start), _Tok("word", g.group(2), start + len(g.group(1)))]
        else:
            raw.append(_Tok("word", tok, start))
    out: list[_Tok] = []
    i = 0
    while i < len(raw):
        t = raw[i]
        if t.kind != "num":
            out.append(t)
            i += 1
            continue
        value, i = t.text, i + 1
        scale = _SCALES.get(raw[i].text.lower()) if i < len(raw) and raw[i].kind == "word" else None
        if scale:
            i += 1
        measure = _MEASURES.get(raw[i].text.lower()) if i < len(raw) and raw[i].kind == "word" else None
        out.append(_Tok("num", _canon(value, scale or 1), t.start, measure))
    return out


_WEAK = "per maximum minimum max min number default limit total value size count amount quota least most x"


@lru_cache(maxsize=8)
def _weak_terms(sparse: BM25SparseEncoder) -> frozenset[str]:
    """Terms too generic to tell what a number quantifies ("maximum", "number", "per"...)."""
    return frozenset(sparse.terms(_WEAK))


def _expand(text: str) -> str:
    text = re.sub(r"\b(?:no|not|non)-(?=\w)", "", text, flags=re.IGNORECASE)  # no-reply, non-volatile
    for pattern, repl in _EXPAND:
        text = pattern.sub(repl, text)
    text = _BOUND.sub(lambda m: m.group(1) or m.group(2), text)  # bounds: "no more than 5" is "at most 5"
    return _EXCEED.sub(r"; \1 ;", text)  # "X cannot exceed 5 GB": a clause of its own, negating "exceed" only


@lru_cache(maxsize=65536)
def _word_terms(sparse: BM25SparseEncoder, word: str) -> tuple[str, ...]:
    return tuple(sparse.terms(word))


def _terms(sparse: BM25SparseEncoder, text: str) -> set[str]:
    """Terms of a text, negation cues left out (polarity is checked on its own)."""
    out: set[str] = set()
    for w in _PIECE.findall(_expand(text).lower()):
        if w not in _CUES:
            out.update(_word_terms(sparse, w))
    return out


@dataclass(frozen=True)
class _Polarity:
    """Terms of a text by negation: ``pos`` in clauses without a cue, ``before``/``after`` a cue in its clause."""

    pos: frozenset[str] = frozenset()
    before: frozenset[str] = frozenset()
    after: frozenset[str] = frozenset()
    cue: bool = False
    heads: frozenset[str] = frozenset()  # the first word after each cue (a bare "No": all of the clause it answers)

    def __or__(self, other: _Polarity) -> _Polarity:
        return _Polarity(self.pos | other.pos, self.before | other.before, self.after | other.after,
                         self.cue or other.cue, self.heads | other.heads)


def _polar(sparse: BM25SparseEncoder, text: str) -> _Polarity:
    """Terms of a text by negation (see :class:`_Polarity`).

    Clauses end at ``, ; ! ? |``, at a full stop that ends a sentence (not ``N. Virginia``) and at ``but``,
    ``however``, ``although``... (:data:`_CLAUSE_END`). A clause that is only a cue ("No", "None")
    negates the clause before it ("Adjustable? No").
    """
    pos: set[str] = set()
    before: set[str] = set()
    after: set[str] = set()
    heads: set[str] = set()
    head: set[str] = set()  # this clause's terms before its cue (all of them while it has none)
    tail: set[str] = set()  # ... and after it
    first: set[str] = set()  # ... the first word's after a cue
    last: set[str] = set()  # terms of the clause before
    negated, cue, prev, want = False, False, "", False

    def close() -> None:
        nonlocal head, tail, first, last, negated, want
        if negated and not head and not tail:  # a bare "No" / "None" answers the clause before
            pos.difference_update(last)
            after.update(last)
            heads.update(last)
        elif negated:
            before.update(head)
            after.update(tail)
            heads.update(first)
        else:
            pos.update(head)
        last, head, tail, first, negated, want = head | tail, set(), set(), set(), False, False

    for m in re.finditer(r"[^\W_]+|[,;!?|]|\.(?=\s|[A-Z<]|$)", _expand(text)):
        w = m.group().lower()
        if w == "." and (len(prev) == 1 or prev in _ABBREVIATIONS):
            continue  # N. Virginia, e.g. Amazon
        if w in _CUES:
            cue = negated = want = True
        elif w in ",;!?|." or w in _CLAUSE_END:
            close()
        else:
            terms = _word_terms(sparse, w)
            (tail if negated else head).update(terms)
            if want and terms:  # "can't *stop* …", "not *supported* …", "can't *undo* deleting …"
                first.update(terms)
                want = False
        prev = w
    close()
    return _Polarity(frozenset(pos), frozenset(before), frozenset(after), cue, frozenset(heads))


class PolarityTerms(NamedTuple):
    """A text's terms by negation, as the polarity rule reads them (:func:`polarity_terms`)."""

    asserted: frozenset[str]
    """Terms of clauses without a negation cue."""
    subject: frozenset[str]
    """Terms before the cue of a negated clause ("*multi-model endpoints* are not supported")."""
    negated: frozenset[str]
    """Terms after it ("… not *supported on GPU instance types*"); a bare "No" negates the clause it answers."""
    heads: frozenset[str]
    """The first word after each cue: what is negated itself ("can't *stop* a DB instance", "can't *undo*
    deleting")."""
    cue: bool
    """The text has a negation cue."""


def polarity_terms(text: str, sparse: BM25SparseEncoder) -> PolarityTerms:
    """The text's terms by negation — the polarity rule's reading (:class:`ClaimCheck`, ``polarity_mismatch``):
    clauses end at ``, ; ! ? |``, a sentence's full stop and ``but``, ``however``…; "Adjustable? No" negates
    "adjustable"; bounds ("no more than 5") are not negations."""
    pol = _polar(sparse, text)
    return PolarityTerms(pol.pos, pol.before, pol.after, pol.heads, pol.cue)


def _norm_word(sparse: BM25SparseEncoder, word: str) -> str | None:
    """A name word as compared: stemmed, a plural ``s`` the stemmer keeps (``GPUs``) dropped."""
    ts = _word_terms(sparse, word.lower())
    if not ts:
        return None
    t = ts[0]
    return t[:-1] if len(t) > 3 and t.endswith("s") else t


def _names(sparse: BM25SparseEncoder, text: str) -> set[str]:
    """Everything a name of a claim can be found as in a text (lowercased tokens, normalised words)."""
    out = {m.group().lower() for m in _WORDISH.finditer(text)}
    out.update(n for w in _PIECE.findall(text) if (n := _norm_word(sparse, w)))
    return out


def _claim_names(sparse: BM25SparseEncoder, claim: str) -> tuple[set[str], set[str]]:
    """Names of a claim: (strict, plain).

    Strict: code-like tokens (``ml.eia2.large``, ``us-east-1``, ``EC2``, ``snake_case``, ``Multi-AZ``;
    lowercased), words with an inner capital (``InnoDB``) and acronyms (``GPU``), normalised. Plain:
    other capitalised words (``Forecast``, ``Oregon``), normalised. The first word, a word right after
    ``:`` and stop words are not names.
    """
    strict: set[str] = set()
    plain: set[str] = set()
    first = True
    for m in _WORDISH.finditer(claim):
        tok, exempt = m.group(), first or claim[:m.start()].rstrip().endswith(":")
        first = False
        if tok.lower() in _ABBREVIATIONS or _NUMBER.fullmatch(tok) or re.fullmatch(r"[\d\-%]+", tok):
            continue
        if re.search(r"[._:/]|\d", tok):  # ml.eia2.large, us-east-1, EC2, snake_case
            if not _GLUED.fullmatch(tok):
                strict.add(tok.lower())
            continue
        inner = bool(re.search(r"[A-Z]", tok[1:]))
        if "-" in tok:  # hyphenated words: a name only with an inner capital (Multi-AZ)
            if inner:
                strict.add(tok.lower())
            continue
        if tok.lower() in STOP_WORDS or not tok[0].isupper() and not inner or exempt and not inner:
            continue
        if n := _norm_word(sparse, tok):
            (strict if inner else plain).add(n)
    return strict, plain


# ---------------------------------------------------------------- passages

_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|(?<=[a-z0-9]{2}[.!?])(?=[A-Z][A-Za-z]*\s)|(?<=[.!?])\s+(?=<)")
_DRAFT_CUT = re.compile(r"(?<=[.!?])[\"')\]]*\s+")  # where the pipeline cuts drafts into sentences
_NO_END = re.compile(r"(?:^|[\s(\[])(?:[A-Z]|e\.g|i\.e|vs|approx|No|Nos|Inc|Ltd|St|Dr|Mr|Mrs|Ms|Fig|cf)\.$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)")


def _sentences(line: str) -> list[str]:
    """Sentences of one line; no cut after an initial or an abbreviation (``N. Virginia``, ``e.g.``)."""
    out, pos = [], 0
    for m in _SENT_END.finditer(line):
        before = line[:m.start()].rstrip("\"')]")
        if _NO_END.search(before) or ABBREVIATION_END.search(before):
            continue
        out.append(line[pos:m.start()].strip())
        pos = m.end()
    out.append(line[pos:].strip())
    return [s for s in out if s]


@dataclass
class _Unit:
    text: str
    context: tuple[str, ...] = ()
    topic: tuple[str, ...] = ()
    headings: tuple[str, ...] = ()
    block: int = -1
    header: str | None = None  # table rows: the header row
    mark: str = ""  # list items: the list mark before the first sentence ("-", "1.")
    # filled by _analyse
    numbers: tuple[_Tok, ...] = ()
    own: frozenset[str] = frozenset()
    terms: frozenset[str] = frozenset()  # text + context
    thing: frozenset[str] = frozenset()  # text + context + headings
    allowed: tuple[frozenset[str], ...] = ()  # per number: its measurement unit, else those of its header / context
    heading: bool = False
    polarity: _Polarity = _Polarity()
    names: frozenset[str] = frozenset()  # text + context + topic
    own_names: frozenset[str] = frozenset()  # text only

    def premise(self) -> str:
        """The unit with its context, as a premise for an entailment model."""
        return "\n".join((*self.context, self.text))


@dataclass
class _Stream:
    """Lowercased words of a passage's units in order, for verbatim claims.

    Units start and end at ``starts`` / ``ends`` (word offsets); so do the pieces the pipeline may cut a
    sentence into. A numbered list mark (``"1."``) is a unit that a matching claim may hold or skip
    (drafts keep some and drop others); ``marks`` maps its start to its end.
    """

    words: list[str] = field(default_factory=list)
    starts: set[int] = field(default_factory=set)
    ends: set[int] = field(default_factory=set)
    marks: dict[int, int] = field(default_factory=dict)
    walls: list[int] = field(default_factory=list)  # starts of headings and of lead-ins ("…:"), ascending

    def add(self, segment: str, *, mark: bool = False, wall: bool = False) -> None:
        if seg_words := _words(URL_AT.sub(" ", segment)):  # claims reach the checks with URLs (and "at") removed
            start = len(self.words)
            self.words += seg_words
            self.starts.add(start)
            self.ends.add(len(self.words))
            if mark:
                self.marks[start] = len(self.words)
            if wall:
                self.walls.append(start)

    def _ends_from(self, words: tuple[str, ...], start: int) -> set[int]:
        """Ends of the runs of consecutive units, beginning at ``start``, whose words are ``words``."""
        out: set[int] = set()
        seen: set[tuple[int, int]] = set()
        todo = [(0, start)]
        while todo:
            i, j = todo.pop()
            if (i, j) in seen:
                continue
            seen.add((i, j))
            if i == len(words):
                if j in self.ends:
                    out.add(j)
                continue
            if j in self.marks:
                todo.append((i, self.marks[j]))
            if j < len(self.words) and self.words[j] == words[i]:
                todo.append((i + 1, j + 1))
        return out

    def chains(self, parts: list[tuple[str, ...]], *, reach: int = 800) -> bool:
        """Whether ``parts`` are, in order, runs of consecutive units with gaps between them: the extractive
        ``"lead-in: item; item."`` that says a lead-in with the items the question names, not every item
        after it. A gap may not pass a heading or another lead-in, and an item starts within ``reach`` words
        of the end of the part before it."""
        if len(parts) < 2 or not all(parts):
            return False
        frontier = {e for s in self._origins() for e in self._ends_from(parts[0], s)}
        for part in parts[1:]:
            nxt: set[int] = set()
            for s in sorted(self.starts):
                if any(f <= s <= f + reach and not any(f <= w < s for w in self.walls) for f in frontier):
                    nxt |= self._ends_from(part, s)
            if not (frontier := nxt):
                return False
        return True

    def _origins(self) -> list[int]:
        """Where a run may begin: any unit start, or any word of the first unit (the title is glued to it)."""
        first_end = min(self.ends, default=0)
        return sorted(self.starts | set(range(first_end)))

    def holds(self, words: tuple[str, ...]) -> bool:
        """Whether ``words`` are those of consecutive units (any start within the first: the title is glued to it)."""
        return bool(words) and any(self._ends_from(words, s) for s in self._origins())


@dataclass
class _Passage:
    units: list[_Unit]
    blocks: dict[int, list[int]]  # block id -> unit indices
    block_names: dict[int, frozenset[str]]
    block_terms: dict[int, frozenset[str]]
    stream: _Stream
    capitalised: dict[str, set[int]]  # normalised capitalised word -> blocks (-1: outside any) it occurs in
    headings: set[tuple[str, ...]]
    terms: frozenset[str]


def _starts_in_code(lines: list[str]) -> bool:
    """Whether a chunk starts inside a code block: an odd number of fences, and more prose after the last
    fence than before the first (a chunk can also end inside one)."""
    at = [i for i, line in enumerate(lines) if FENCE.match(line.strip())]
    if len(at) % 2 == 0:
        return False

    def prose(part: list[str]) -> float:
        part = [x.strip() for x in part if x.strip()]
        return sum(bool(re.match(r"[-*+\d.\s]*[A-Z][^=;{}()]*[.:]$", x)) for x in part) / max(1, len(part))

    return prose(lines[at[-1] + 1:]) > prose(lines[1:at[0]])


def _split(passage: str) -> list[_Unit]:
    """Units of a passage, in order (see the module docstring)."""
    units: list[_Unit] = []
    lines = passage.split("\n")
    title = lines[0].strip()
    if m := re.search(r"\s(#{1,6}\s+\S.*)$", lines[0]):  # "Title # Heading": the title glued to a heading
        lines[0], title = m.group(1), lines[0][:m.start()].strip()
    fence = _starts_in_code(lines)
    stack: list[tuple[int, str]] = []  # headings
    table, lst, last_para, block = None, None, None, 0
    resume = None  # the table a group label line ("db.m5 – Latest Generation") interrupted, with its cell count
    continued: list[str] = []  # a command's lines ending in "\\", said as one line with the line that ends it
    for line in lines:
        s = line.strip()
        heads = tuple(h for _, h in stack)
        topic = (*heads, title)
        if FENCE.match(s):
            if continued:  # a block that ends on a continued line
                units.extend(_Unit(x, (), topic, heads) for x in _sentences(" ".join(continued)))
                continued = []
            fence, table, lst = not fence, None, None
            continue
        is_row = " | " in s or s.startswith("|") or (table is not None and "|" in s)
        if fence and not is_row:  # code: no headings or lists, but tables (query output) stay tables
            if s and _SEPARATOR.match(s):
                continue
            table = None
            if s.endswith("\\"):
                continued.append(s[:-1].strip())
                continue
            if continued:
                line = s = " ".join([*continued, s])
                continued = []
            lm = LIST_MARK.match(line)
            units.extend(_Unit(x, (), topic, heads, mark=lm.group().strip() if lm and k == 0 else "")
                         for k, x in enumerate(_sentences(line[lm.end():] if lm else s)))
            continue
        if not s:
            table = lst = None
            continue
        if hm := _HEADING.match(s):
            level = len(hm.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, hm.group(2)))
            units.append(_Unit(hm.group(2), (), topic, heads, heading=True))
            table = lst = last_para = resume = None
            continue
        if _SEPARATOR.match(s):
            continue
        if is_row:
            if table is None and resume is not None and len(table_cells(s)) == resume[1]:
                table = resume[0]  # rows after a group label go on under the same header
            resume = None
            is_header = table is None
            if is_header:
                block += 1
                table = (block, s)
            header = () if is_header else (table[1],)
            if len(sents := _sentences(s)) == 1:
                units.append(_Unit(s, header, topic, heads, table[0], header=None if is_header else table[1]))
            else:  # cells of several sentences: one unit each, the row's first cell as context
                key = (s.strip("| ").split("|")[0].strip(),)
                units.extend(_Unit(x, header if k == 0 else (*header, *key), topic, heads, table[0])
                             for k, x in enumerate(sents))
            lst = last_para = None
            continue
        lm = LIST_MARK.match(line)
        if lm or (lst is not None and line[:1].isspace()):
            resume = None
            if lst is None:
                block += 1
                lst = (block, last_para if last_para and last_para.endswith(":") else None, [])
            indent = len(line) - len(line.lstrip())
            parents = lst[2]
            item = line[lm.end():].strip() if lm else s
            if lm:
                while parents and parents[-1][0] >= indent:
                    parents.pop()
            ctx = ((lst[1],) if lst[1] else ()) + tuple(t for _, t in parents)
            mark = lm.group().strip() if lm else ""
            units.extend(_Unit(x, ctx, topic, heads, lst[0], mark=mark if k == 0 else "")
                         for k, x in enumerate(_sentences(item)))
            if lm:
                parents.append((indent, item))
            table = last_para = None
            continue
        if table is not None and is_group_label(s):
            resume = (table, len(table_cells(table[1])))
        else:
            resume = None
        table = lst = None
        sents = _sentences(s)
        units.extend(_Unit(x, (), topic, heads) for x in sents)
        last_para = sents[-1] if sents else None
    return units


def _measures(text: str) -> frozenset[str]:
    """Measurement units a text names (canonical: ``gb``, ``day``, ``percent``...)."""
    return frozenset(_MEASURES[w] for w in re.findall(r"[^\W\d_]+|%", text.lower()) if w in _MEASURES)


def _context_of(u: _Unit, at: int) -> str:
    """What says the unit of a bare number at offset ``at`` of a unit: its column's header cell in a table
    row, else the unit's context (list lead-in, parent items)."""
    if u.header is None:
        return " \n ".join(u.context)
    cells = u.header.strip().strip("|").split("|")
    column = u.text[:at].count("|") - u.text.lstrip().startswith("|")
    return cells[column] if 0 <= column < len(cells) else ""


def _row_polarity(sparse: BM25SparseEncoder, row: str, header: str) -> _Polarity:
    """Polarity of a table row: a cell with a negation cue negates its column's header too."""
    out = _Polarity()
    hcells = table_cells(header)
    for i, cell in enumerate(table_cells(row)):
        pol = _polar(sparse, cell)
        out |= pol
        if i < len(hcells):
            head = _polar(sparse, hcells[i])
            terms = head.pos | head.before | head.after
            out |= _Polarity(after=terms) if pol.cue else head
    return out


@lru_cache(maxsize=256)
def _analyse(passage: str, sparse: BM25SparseEncoder) -> _Passage:
    units = _split(passage)
    stream = _Stream()
    capitalised: dict[str, set[int]] = {}
    blocks: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        toks = _tokens(u.text)
        u.numbers = tuple(t for t in toks if t.kind == "num")
        local = " \n ".join((*u.context, u.text))
        u.own = frozenset(_terms(sparse, u.text))
        u.terms = frozenset(_terms(sparse, local))
        u.thing = u.terms | frozenset(_terms(sparse, " \n ".join(u.headings)))
        u.allowed = tuple(frozenset({t.measure}) if t.measure else _measures(_context_of(u, t.start))
                          for t in u.numbers)
        if u.header is not None:
            u.polarity = _row_polarity(sparse, u.text, u.header)
        else:
            for seg in (*u.context, u.text):
                u.polarity |= _polar(sparse, seg)
        u.names = frozenset(_names(sparse, " \n ".join((*u.context, *u.topic, u.text))))
        u.own_names = frozenset(_names(sparse, u.text))
        if u.block >= 0:
            blocks.setdefault(u.block, []).append(i)
        for m in _WORDISH.finditer(u.text):
            if m.group()[0].isupper() and m.group().isalpha() and (n := _norm_word(sparse, m.group())):
                capitalised.setdefault(n, set()).add(u.block)
        stream.add(u.mark, mark=True)
        wall = u.heading or u.text.rstrip().endswith(":")
        for k, piece in enumerate(_DRAFT_CUT.split(u.text)):
            stream.add(piece, wall=wall and k == 0)
    block_names, block_terms = {}, {}
    for b, idx in blocks.items():
        block_names[b] = frozenset().union(*(units[i].names for i in idx))
        block_terms[b] = frozenset().union(*(units[i].terms for i in idx))
    headings = {_words(u.text) for u in units if u.heading}
    return _Passage(units, blocks, block_names, block_terms, stream, capitalised, headings,
                    frozenset(_terms(sparse, passage)))


# ---------------------------------------------------------------- the assessment


@dataclass(frozen=True)
class Assessment:
    """Lexical verdict on a clean claim (see :func:`assess`).

    Attributes:
        score: share of the claim's terms found in the passages.
        reason: one of :data:`REASONS` (never ``not_entailed``) or None when supported.
        anchors: premises (unit text with its context) of the units that best support the claim, in
            passage order (the anchors of the polarity rule; one unit for a verbatim claim).
        verbatim: the claim copies consecutive units of a passage.
    """

    score: float
    reason: str | None
    anchors: tuple[str, ...] = ()
    verbatim: bool = False


@dataclass(frozen=True)
class SaidRow:
    """The table row a claim says cell by cell (:func:`said_row`).

    Attributes:
        premise: the row with its header line (``"Header 1 | Header 2\nrow 1 | row 2"``); None when no row holds
            the claim's cells.
        cells: ``(column name, cell, said)`` of that row in column order, ``said`` when the claim says that cell;
            empty when there is no such row.
        named: with no such row, whether the pieces name columns of a table of the passages (a value from another
            row or column).
    """

    premise: str | None = None
    cells: tuple[tuple[str, str, bool], ...] = ()
    named: bool = False


def said_row(claim: str, passages: list[str]) -> SaidRow:
    """The table row a claim says cell by cell, as the extractive generator renders one (``"Header 1: cell 1;
    Header 3: cell 3"``, :func:`citedesk.core.text.say_cells`; tables read as :func:`~citedesk.core.text.
    answer_units` reads them): the row in which every piece is a column's name and that row's cell, compared word
    by word (case and punctuation aside).

    Args:
        claim: one sentence, citation markers removed.
        passages: the cited passages' texts (a carried header row on the line before the chunk's text).

    Returns:
        :class:`SaidRow`; empty (``premise`` None, ``named`` False) when the claim is not said that way.
    """
    pieces = [p.partition(": ") for p in claim.strip().rstrip(".").split("; ")]
    if len(pieces) < 2 or not any(colon for _, colon, _ in pieces):
        return SaidRow()

    # a piece without a name is the cell of a column whose header is blank ("Per account; Provisioned: 80,000 …")
    said = [(_words(name), _words(value)) if colon else ((), _words(name)) for name, colon, value in pieces]
    named = False
    for passage in passages:
        for u in answer_units(passage):
            if u.kind != "table_row" or not u.context:
                continue
            row = row_cells(u.context, passage[u.start:u.end])
            cells = {(_words(h), _words(c)) for h, c in row}
            if all(pair in cells for pair in said):
                return SaidRow(f"{u.context}\n{passage[u.start:u.end]}",
                               tuple((h, c, (_words(h), _words(c)) in said) for h, c in row))
            columns = {_words(h) for h in table_cells(u.context)}
            named = named or all(name in columns for name, _ in said)
    return SaidRow(named=named)


def _clause_at(text: str, at: int) -> str:
    """The clause (:func:`_clauses`) of a sentence that holds offset ``at``."""
    return next((text[a:b] for a, b in _clauses(text) if a <= at < b), text)


def _number_ok(num: _Tok, near: set[str], u: _Unit, bound: str | None = None) -> bool:
    """Whether unit ``u`` states ``num`` with the same measurement unit and about the same thing; with ``bound``
    (the end of a range the claim's clause states for it), not as the other end ("1 byte" of "The minimum length
    … is 1 byte" is no maximum)."""
    for t, allowed in zip(u.numbers, u.allowed):
        if t.text != num.text or num.measure and num.measure not in allowed:
            continue
        if bound is not None and u.header is None and other_bound(_clause_at(u.text, t.start), bound):
            continue
        if 2 * len(near & u.thing) >= len(near):
            return True
    return False


def assess(claim: str, passages: list[str], sparse: BM25SparseEncoder, *, min_support: float = 0.6,
           term_gate: bool = True) -> Assessment:
    """Check a clean claim (sanitised, markers stripped) against passages, by the module's rules.

    Args:
        claim: one sentence without markup or citation markers.
        passages: texts of the cited chunks (``f"{title} {text}"``).
        sparse: the BM25 encoder whose terms are compared.
        min_support: share of the claim's terms the passages must hold.
        term_gate: False skips the ``low_term_support`` rejection (the caller compares the score itself).

    Returns:
        The score, the first failed rule (None when it passes) and the best-supporting units.
    """
    analysed = [_analyse(p, sparse) for p in passages]
    terms = _terms(sparse, claim)
    found = frozenset().union(*(p.terms for p in analysed)) if analysed else frozenset()
    score = len(terms & found) / len(terms) if terms else 1.0
    body = LIST_MARK.sub("", claim)
    words = _words(body)
    if any(words in p.headings for p in analysed):
        return Assessment(score, "not_an_answer")
    units = [u for p in analysed for u in p.units]
    lead, colon, items = body.partition(": ")
    parts = [_words(x) for x in (lead, *items.split("; "))] if colon else []
    if any(p.stream.holds(words) or p.stream.chains(parts) for p in analysed):
        best = max(units, key=lambda u: (len(terms & u.terms), len(terms & u.own)), default=None)
        return Assessment(score, None, (best.premise(),) if best else (), verbatim=True)
    row = said_row(body, passages)
    if row.premise is not None:
        return Assessment(score, None, (row.premise,), verbatim=True)
    if row.named:
        return Assessment(score, "unit_mismatch")

    # numbers: each in one unit, with its measurement unit and the thing it quantifies
    toks = _tokens(body)
    passing: list[tuple[int, set[int]]] = []  # (offset in body, units stating the number)
    for i, t in enumerate(toks):
        if t.kind != "num":
            continue
        near: set[str] = set()
        weak = _weak_terms(sparse)
        for side in (toks[:i][::-1], toks[i + 1:]):
            side_terms = [ts for x in side[:5] if x.kind == "word" and (ts := _terms(sparse, x.text) - weak)]
            near = near.union(*side_terms[:2])
        if not any(x.text == t.text for u in units for x in u.numbers):
            return Assessment(score, "number_mismatch")
        bound = stated_bound(_clause_at(body, t.start))
        ok = {k for k, u in enumerate(units) if _number_ok(t, near, u, bound)}
        if not ok:
            return Assessment(score, "unit_mismatch")
        passing.append((t.start, ok))
    if term_gate and score < min_support:
        return Assessment(score, "low_term_support")

    # polarity against the anchors: units (number-bearing ones, for a claim with numbers) sharing most terms
    pool = sorted(set().union(*(ok for _, ok in passing))) if passing else range(len(units))
    keys = {k: (len(terms & units[k].terms), len(terms & units[k].own)) for k in pool}
    top = max(keys.values(), default=(0, 0))
    anchors = [units[k] for k in pool if keys[k] == top] if top[0] else []
    premises = tuple(u.premise() for u in anchors)
    c = _polar(sparse, claim)
    if anchors and not any(_polarity_ok(c, u.polarity) for u in anchors):
        return Assessment(score, "polarity_mismatch", premises)

    # names: those of each clause ("A, and B"; "A; B") in the scope of one unit supporting that clause
    for start, end in _clauses(body):
        clause = body[start:end]
        strict, plain = _claim_names(sparse, clause)
        own = [ok for at, ok in passing if start <= at < end]
        if (strict or plain) and not _names_ok(strict, plain, _terms(sparse, clause), analysed, own, sparse):
            return Assessment(score, "entity_missing", premises)
    return Assessment(score, None, premises)


_TITLE_CLAUSE = re.compile(r"\s*(" + PROCEDURE_TITLE.pattern + r"):\s+")  # "To view metrics: " before the steps
_CLAUSE_CUT = re.compile(r"\s*;\s*|,\s*(?:and|but|while|whereas|or|so)\s+", re.IGNORECASE)


def _clauses(text: str) -> list[tuple[int, int]]:
    """Spans of the clauses of a sentence, cut at ``;``, at a comma before and/but/while/or/so, and after a
    procedure's title said before its steps ("To view performance metrics: Sign in to the AWS Management Console
    …": the title names what the steps do, each step is its own claim)."""
    spans, pos = [], 0
    title = _TITLE_CLAUSE.match(text)
    if title and "," not in title.group(1):  # "To download an object, use the following command: …" is a sentence
        spans.append((title.start(1), title.end(1)))
        pos = title.end()
    for m in _CLAUSE_CUT.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    return [(a, b) for a, b in spans if b > a]


def _polarity_ok(c: _Polarity, u: _Polarity) -> bool:
    """Whether a unit states the claim with the same polarity.

    A term the claim asserts (outside any negated clause) must not occur in the unit only after a cue. A
    negated claim needs the unit to negate (in a negated clause) at least as many of its negated terms as
    the unit asserts of the terms the claim puts after its cue — and at least one.
    """
    kept = u.pos | u.before
    if any(t in u.after and t not in kept for t in c.pos - c.before - c.after):
        return False  # the claim asserts what the unit only negates
    if not c.cue:
        return True
    negated = c.before | c.after
    if not negated:  # a bare "No."
        return u.cue
    agree = negated & (u.before | u.after)
    flipped = {t for t in c.after - c.pos if t in u.pos and t not in u.before | u.after}
    return bool(agree) and len(agree) >= len(flipped)


def _names_ok(strict: set[str], plain: set[str], terms: set[str], analysed: list[_Passage],
              passing: list[set[int]], sparse: BM25SparseEncoder) -> bool:
    """Whether one supporting unit (or block) holds the claim's names (see the module docstring).

    A plain name missing there still passes when the passage capitalises it elsewhere, but not in a
    sibling item or row of the supporting unit's own list or table (a product name in the intro, not
    another region of the same list). A table vouches for names spread over its rows only when they stand in
    the same columns of each row ("us-east-1 and eu-west-1", two rows' keys), not one row's key with another
    row's value.
    """
    names = strict | plain
    # candidates: (scope names, passage, block id or -1, its terms) of every unit, then of every block
    flat = [u for p in analysed for u in p.units]
    units = [(u.names, pi, u.block, u.terms) for pi, p in enumerate(analysed) for u in p.units]
    blocks, offset = [], 0  # (unit indices into ``units``, candidate)
    for pi, p in enumerate(analysed):
        blocks += [({offset + i for i in idx}, (p.block_names[b], pi, b, p.block_terms[b]))
                   for b, idx in p.blocks.items()]
        offset += len(p.units)

    def name_ok(n: str, cand) -> bool:
        scope, pi, block = cand[0], cand[1], cand[2]
        if n in scope:
            return True
        caps = analysed[pi].capitalised
        return n in plain and n in caps and (block < 0 or block not in caps[n])

    def holds(cand) -> bool:
        return all(name_ok(n, cand) for n in names)

    def enumerates(idx: set[int]) -> bool:  # a block vouches for names spread over two or more of its units
        naming = [k for k in idx if names & flat[k].own_names]
        if len(naming) < 2:
            return False
        if any(flat[k].header is None for k in naming):
            return True
        columns = {frozenset(c for c, cell in enumerate(table_cells(flat[k].text)) if names & _names(sparse, cell))
                   for k in naming}
        return len(columns) == 1  # rows naming them in the same columns, not a key here and a value there

    if passing:
        every = set.intersection(*passing)
        if every:
            return any(holds(units[k]) for k in every)
        holding = [c for idx, c in blocks if all(idx & ok for ok in passing)]
        if holding:
            return any(holds(c) for c in holding)
        spread = set().union(*passing)  # numbers in unrelated units: each name in one of them
        return all(any(name_ok(n, units[k]) for k in spread) for n in names)
    predicate = terms - names  # the supporting unit is the one saying what the claim says about the names
    cands = units + [c for idx, c in blocks if enumerates(idx)]
    best = max((len(predicate & c[3]) for c in cands), default=0)
    need = best - 1 if best >= 4 else best
    return any(holds(c) for c in cands if len(predicate & c[3]) >= need)
