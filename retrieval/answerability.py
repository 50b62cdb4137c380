"""Answerability signals: does one retrieved passage hold the answer, or is the index only *about* the same thing?

The confidence model (:mod:`citedesk.retrieval.confidence`) turns these into ``answerable_probability``; the
extractive generator ranks answer units with the same lexical match. All signals are computed from the
question and the hits (no model call):

* **rare-term coverage of the best unit**: the question's content words weighted by rarity (``7 − zipf``
  frequency of the word in the language, from ``wordfreq``; a word it does not know, such as ``ml.eia2.large``
  or ``InnoDB``, weighs 7), and the weighted share found in the single best answer unit (a sentence, a list
  item with its lead-in, a table row with its header — :func:`citedesk.core.text.answer_units`) together with
  its chunk's title and heading path. Neighbouring pages share the topic words but rarely the rare ones.
* **the same in the best single chunk** (title, heading and text), and **in the best title/heading** alone;
* **answer type**: a question asking for a quantity (how many, maximum, limit, size, default …) needs a number
  in the best unit (for "how many X", one that can count X: not "a 400 KB limit"); one asking for a list needs a
  list or several rows; "What is a/an X?" needs a unit among the best-covering that says what X is ("A trail is
  …", "A source repository, which …"; since 2026-11-27, held out 0.915 → 0.916 leave-gold-out, 0.742 → 0.746
  MT-RAG with the shipped weights' inputs refitted per fold, and on ``bench/definition_check.py`` the confidence
  separates defined answers from the rest with AUROC 0.816 → 0.911); other questions (yes/no included) have no
  requirement (a yes/no rule — "Can I change …?" needs a unit with the verb — was measured and not kept: held-out
  AUROC 0.915 → 0.913 leave-gold-out, 0.742 → 0.737 MT-RAG);
* **dense signals**: the top cosine, its margin over the second hit, and whether the best-cosine hit is also
  the top fused hit (dense–sparse agreement).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from citedesk.core.text import CODE_LINE, MEASURE_UNIT, URL, AnswerUnit, answer_units
from citedesk.core.types import Hit
from citedesk.retrieval.embedding.sparse import STOP_WORDS, BM25SparseEncoder

__all__ = ["AnswerabilitySignals", "Bound", "Name", "QuestionType", "UnitMatch", "asked_bound", "asks_count",
           "asks_definition", "asks_number", "asks_procedure", "asks_reason", "asks_value", "copula_subject",
           "counted", "counts", "defined_term", "defines", "given_numbers", "match_units", "names", "other_bound",
           "other_product", "products", "question_type", "sibling_name", "signals", "stated_bound", "states_value",
           "subject_head", "term_weights"]

_WORD = re.compile(r"[\w][\w.\-/]*[\w]|[\w]", re.UNICODE)
_NUMBER = re.compile(r"(?<![A-Za-z_.\-/:])\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                     r"twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen|once|twice)\b", re.IGNORECASE)
"""A number as a value: a digit that does not continue a name ("S3", "EC2", "us-east-2", "db.t2.small", an ARN's
account) or a number word; not "single" or "double" ("a single S3 bucket")."""
_VAGUE_COUNT = re.compile(r"\bone or (?:more|several|many)\b|\b(?:one|any) of\b", re.IGNORECASE)
"""Counts that state no value ("You can create one or more aliases", "one of the following")."""
_COMMAND = re.compile(r"^\s*(?:aws|sudo|curl|wget|pip3?|npm|docker|kubectl|python3?|java|git|cd|ls|cat)\s+\S|"
                      r"(?:(?:^|\s)--[a-z][\w-]*\b.*){2}")
"""A command line ("aws cloudtrail lookup-events --max-results 1", or any line with two ``--options``): its numbers
are an example's arguments, not a value the page states. A sentence naming one option ("--max-items accepts up to
1000") is prose."""
_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|large|big|often|fast)\b|\b(?:max(?:imum)?|min(?:imum)?|limit|quota|number of|"
    r"size|default|timeout|throughput|bandwidth|memory|storage|interval|rate|duration|capacity|version)\b",
    re.IGNORECASE)
_YES_NO = re.compile(r"^\s*(?:can|could|does|do|did|is|are|was|will|should|may|has|have)\b", re.IGNORECASE)
_LIST = re.compile(r"^\s*(?:what|which)\s+(?:are|were)\b|\b(?:types|kinds|states|options|factors|ways|steps|"
                   r"engines|modes)\b|^\s*which\s+(?:[\w\-]+\s+){0,3}[A-Za-z\-]+[^su\W]s\s+(?:support|are|can|do|does|"
                   r"have|include|work|run|use|allow)\b", re.IGNORECASE)  # "Which SQL Server editions support …?"
_HOW_MANY = re.compile(
    r"\bhow many\s+((?:[\w\-/%]+\s+){0,4}?[\w\-/%]+?)(?=\s+(?:can|could|does|do|did|is|are|was|were|will|should|"
    r"may|must|per|in|on|for|of|at|by|with|from|before|after|until|to|into|between|within|during|over|under|than|if|"
    r"when|as|and|or|i|you|we|there|that)\b|\s*[?,.;]|\s*$)", re.IGNORECASE)
_COUNT = re.compile(
    r"(?<![\w.\-/])(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|"
    r"twelve|twenty|thirty|forty|fifty|hundred|thousand|dozen|single)(?:\s*(?:thousand|million|billion)\b)?"
    r"(?![\w\-]|\.\d)", re.IGNORECASE)
_COUNT_END = re.compile(r"\s*(?:[;,.)]|$|(?:per|for|in|on|at|each|total)\b)", re.IGNORECASE)
_COUNT_WORDS = re.compile(r"((?:\s+[\w\-/]+)*)")  # the words after a number, up to punctuation
_DEFINITION = re.compile(r"^\s*what\s+(?:is|are)\s+(?:an?\s+|the\s+)?(?P<term>.+?)\s*\??\s*$", re.IGNORECASE)
_VALUE_HEAD = re.compile(
    r"(?:max(?:imum)?|min(?:imum)?|(?:limit|quota|number|count|size|default|timeout|value|version|port|threshold|"
    r"level|length|period|price|cost|total|amount|percentage|height|width)s?|throughput|bandwidth|memory|storage|"
    r"interval|rate|duration|capacity|retention|speed|latency|frequency|ttl|depth|seconds|minutes|hours|days|"
    r"bytes)$",
    re.IGNORECASE)
_EXTREME = re.compile(r"max(?:imum)?|min(?:imum)?|largest|smallest|highest|lowest|biggest|longest|shortest",
                      re.IGNORECASE)
_NOT_NUMERIC_HEAD = re.compile(r"(?:default|value|version|level|price|cost)s?$", re.IGNORECASE)
_FOCUS = re.compile(r"^\s*(?:in [^,]{1,80},\s*)?(?:what|which)(?:\s+(?:is|are|was|were)|'s)?(?:\s+the)?\s+(.*)$",
                    re.IGNORECASE)
_FOCUS_END = re.compile(r"\s(?:for|of|in|on|per|to|with|that|which|can|could|does|do|did|is|are|was|were|used|"
                        r"when|by|at|from|supported|allowed|available|i|you|we)\b|[?,]", re.IGNORECASE)
_WHAT_IS_A = re.compile(r"^\s*what\s+is\s+(?!the\b)", re.IGNORECASE)  # "What is a trail?", "What is Amazon Kendra?"
_COPULA = re.compile(r"^\s*(?:an?\s+|the\s+)?((?:[\w\-/.()]+\s+){0,5}?[\w\-/.()]+?)(?:\s+(?:is|are|refers to|means)\s|"
                     r",\s+which\s|\s+[–—]\s)", re.IGNORECASE)
_PREPOSITION = re.compile(r"\s+(?:in|of|for|on|at|from|with|within|to|by)\s+", re.IGNORECASE)
_QUESTION_FILLER = frozenset({"can", "could", "does", "do", "did", "is", "are", "was", "will", "should", "may",
                              "has", "have", "what", "which", "how", "why", "when", "where", "who", "i", "my",
                              "use", "get", "amazon", "aws"})


class QuestionType:
    """What kind of answer a question asks for (a plain string tag)."""

    QUANTITY = "quantity"
    YES_NO = "yes_no"
    LIST = "list"
    OTHER = "other"


def question_type(question: str) -> str:
    """:class:`QuestionType` tag of a question, from its wording (first rule that matches: yes/no, list — "what
    are …", "… types", "which <plural noun> support …" unless it asks how many —, quantity, other)."""
    if _YES_NO.match(question):
        return QuestionType.YES_NO
    if _LIST.search(question) and not re.search(r"\bhow (?:many|much)\b|\bnumber of\b", question, re.IGNORECASE):
        return QuestionType.LIST
    if _QUANTITY.search(question):
        return QuestionType.QUANTITY
    return QuestionType.OTHER


def asks_value(question: str, *, strict: bool = False) -> bool:
    """Whether a quantity question (:func:`~citedesk.retrieval.answerability.question_type`) asks for one value:
    "how many/much/long …", or "what/which is the …" whose asked noun phrase ends in a value word ("maximum
    storage", "function timeout", "TLS version" — not "storage engine"). Other wordings count as asking, unless
    ``strict`` ("Why use Provisioned IOPS storage?", "How does on-demand capacity work?" ask for none; nor does a
    statement that says "… to understand how long the process takes"), which also asks the value to be a number: a
    default, a value, a version, a level, a price or a cost may be a word ("Default: —", "FALSE", "the On-Demand
    price")."""
    how = re.search(r"\bhow (?:many|much|long|large|big|often|fast)\b", question, re.IGNORECASE)
    if how and (not strict or re.fullmatch(r"\s*(?:[^,?]{1,80},\s*)?", question[:how.start()], re.IGNORECASE)):
        return True  # "How many …?", "In Amazon EC2, how many …?", "By default, how many …?"
    focus = _FOCUS.match(question)
    if focus is None:
        return not strict
    end = _FOCUS_END.search(focus.group(1))
    words = (focus.group(1)[: end.start()] if end is not None else focus.group(1)).split()
    if not words:
        return False
    head = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", words[-1]) or [words[-1]]  # HealthCheckTimeoutSeconds
    if not _VALUE_HEAD.match(head[-1]):
        return False
    # "the default value" may be a word; "the largest value" is a number ("the default maximum price" need not be)
    extreme = head[-1].lower() in ("value", "values") and any(_EXTREME.fullmatch(w) for w in words)
    return not (strict and _NOT_NUMERIC_HEAD.match(head[-1]) and not extreme)


def asks_number(question: str) -> bool:
    """Whether a question asks for a number: a quantity question (:func:`question_type`) that :func:`asks_value`
    strictly ("What is the maximum unzipped deployment package size?", "How many tables can I create?"; not "What
    is the recommended storage engine?", "What is the default value?"). What the extractive ranking's ``no_value``
    and its decline (:data:`citedesk.serving.answer.generators.NO_VALUE`) apply to."""
    return question_type(question) == QuestionType.QUANTITY and asks_value(question, strict=True)


def counted(question: str) -> str | None:
    """What a question asks the number of, as its head word, lower-cased ("How many local secondary indexes can …?"
    → "indexes"), or None when it does not ask how many or asks it of a unit of measure ("How many seconds …?")."""
    m = _HOW_MANY.search(question)
    if m is None:
        return None
    words = m.group(1).split()
    if any(re.fullmatch(MEASURE_UNIT, w, re.IGNORECASE) for w in words):  # "how many minutes …", "how many KB of …"
        return None
    return words[-1].lower()


def defined_term(question: str) -> str | None:
    """X of "What is X?" / "What are the X?" (None for other questions)."""
    m = _DEFINITION.match(question)
    return m.group("term") if m else None


def asks_definition(question: str) -> str | None:
    """The term a question asks to define: X of "What is a/an X?" or "What is X?" (not "What is the X …?", which
    mostly asks for an attribute: "What is the instance store type for d2.xlarge?"), for a question of no other type
    (:func:`question_type` ``other``); None otherwise."""
    if not _WHAT_IS_A.match(question) or question_type(question) != QuestionType.OTHER:
        return None
    term = defined_term(question)
    return term if term and "?" not in term and len(term.split()) <= 6 else None  # one short question only


def copula_subject(text: str) -> str | None:
    """The subject of a sentence that says what something is ("A trail is a configuration …" → "trail", "An event in
    CloudTrail is the record …" → "event in CloudTrail", "A source repository, which contains …", "Spot Instance pool
    – A set of …"): the words, after an article, before "is"/"are"/"refers to"/"means", ", which" or a dash (at most
    six); None when the sentence does not begin that way."""
    m = _COPULA.match(text)
    return m.group(1) if m else None


def subject_head(subject: str) -> str:
    """The words of a :func:`copula_subject` before its first preposition ("event in CloudTrail" → "event")."""
    return _PREPOSITION.split(subject, maxsplit=1)[0]


def defines(text: str, term: str, sparse: BM25SparseEncoder) -> bool:
    """Whether ``text`` says what ``term`` is: its :func:`copula_subject` holds the words of the term's head (its words
    before a preposition: "source repository" of "source repository in Amazon Kendra"), and the last word of the
    subject's head is one of them ("IBM Watson Assistant is …" defines Watson Assistant; "A Spot Instance request is
    …" does not define a Spot Instance)."""
    subject = copula_subject(text)
    core = frozenset(sparse.terms(subject_head(term)))
    if subject is None or not core or not core <= set(sparse.terms(subject)):
        return False
    head = sparse.terms(subject_head(subject))
    return bool(head) and head[-1] in core


_WHY = re.compile(r"^\s*(?:why\b|what\s+(?:are|is)\s+the\s+(?:benefits?|advantages?|reasons?)\b)", re.IGNORECASE)


def asks_reason(question: str) -> bool:
    """Whether a question asks why ("Why should I use …?", "What are the benefits of …?")."""
    return bool(_WHY.match(question))


_ASKS_MAX = re.compile(r"\b(?:max(?:imum)?|upper (?:limit|bound)|most|largest|highest|longest|biggest|greatest)\b",
                       re.IGNORECASE)
_ASKS_MIN = re.compile(r"\b(?:min(?:imum)?|lower (?:limit|bound)|least|smallest|lowest|shortest|fewest)\b",
                       re.IGNORECASE)
_SAYS_MAX = re.compile(r"\b(?:max(?:imum)?|upper (?:limit|bound)|largest|highest|longest|up to|at most|"
                       r"no more than|cannot exceed|can't exceed)\b", re.IGNORECASE)
_SAYS_MIN = re.compile(r"\b(?:min(?:imum)?|lower (?:limit|bound)|smallest|lowest|shortest|at least|no less than|"
                       r"no fewer than)\b", re.IGNORECASE)


class Bound:
    """Which end of a range a question asks for (a plain string tag)."""

    MAX = "max"
    MIN = "min"


def asked_bound(question: str) -> str | None:
    """:class:`Bound` a question asks for ("What is the maximum length …?" → ``"max"``), or None when it asks for
    neither or both ("What are the minimum and maximum …?")."""
    high, low = bool(_ASKS_MAX.search(question)), bool(_ASKS_MIN.search(question))
    return Bound.MAX if high and not low else Bound.MIN if low and not high else None


def stated_bound(text: str) -> str | None:
    """:class:`Bound` a text states ("maximum", "up to", "at most" → ``"max"``; "minimum", "at least" → ``"min"``),
    or None when it states neither or both."""
    high, low = bool(_SAYS_MAX.search(text)), bool(_SAYS_MIN.search(text))
    return Bound.MAX if high and not low else Bound.MIN if low and not high else None


def other_bound(text: str, bound: str) -> bool:
    """Whether ``text`` states the other end of the range than ``bound`` and not ``bound`` itself ("The minimum
    length of a partition key value is 1 byte." for :data:`Bound.MAX`): it does not answer a question that asks
    for ``bound``, however well it matches the question's other words."""
    stated = stated_bound(text)
    return stated is not None and stated != bound


def asks_count(question: str) -> bool:
    """Whether a question asks how many of something that is not a unit of measure (:func:`counted`): its answer is
    a count, which "400 KB" or "30 seconds" is not."""
    return counted(question) is not None


def counts(text: str, noun: str, sparse: BM25SparseEncoder) -> bool:
    """Whether ``text`` holds a number that can be the count of ``noun`` (:func:`counted`): a number followed by that
    noun within four words ("up to 5 local secondary indexes"; not "two types of secondary indexes"), or by nothing
    that names another thing ("Load balancers per Region: 50", "500 per account"). Words are compared as the sparse
    encoder stems them ("index" counts "indexes"). Numbers inside names ("db.t2.medium", "us-east-1") are not numbers
    here."""
    stem = sparse.terms(noun)
    for m in _COUNT.finditer(text):
        if _COUNT_END.match(text, m.end()):
            return True
        for word in _COUNT_WORDS.match(text, m.end()).group(1).split()[:4]:
            if word.lower() == "of":
                break
            if stem and sparse.terms(word) == stem:
                return True
    return False


_PROCEDURE = re.compile(r"^\s*(?:how\s+(?:do|can|should|would|could)\s+(?:i|we|you|one)\b"
                        r"(?!\s+(?:know|tell|find out)\b)|how\s+to\b|(?:what\s+(?:are|is)\s+the\s+)?(?:steps|procedure|process)\s+(?:to|for)\b)",
                        re.IGNORECASE)


def asks_procedure(question: str) -> bool:
    """Whether a question asks how to do something ("How do I stop a DB instance?", "How to …", "What are the
    steps to …"), whose answer is a procedure's steps rather than one of them. Independent of
    :func:`question_type` ("What are the steps to …" is also a list question)."""
    return bool(_PROCEDURE.match(question))


@functools.lru_cache(maxsize=65536)
def _rarity(word: str, language: str) -> float:
    from wordfreq import zipf_frequency

    return max(1.0, 7.0 - zipf_frequency(word, language))


def term_weights(question: str, sparse: BM25SparseEncoder, *, language: str = "en") -> dict[str, float]:
    """Stemmed content terms of the question → rarity weight in [1, 7] (the rarest surface word wins).

    Question words ("can", "what", "how") and the vendor prefix words are left out: they say nothing about
    which passage answers.
    """
    weights: dict[str, float] = {}
    for word in _WORD.findall(question.lower()):
        if word in STOP_WORDS or word in _QUESTION_FILLER:
            continue
        for term in sparse.terms(word.replace(".", " ").replace("-", " ").replace("/", " ")) or []:
            weights[term] = max(weights.get(term, 0.0), _rarity(word, language))
    return weights


@dataclass(frozen=True)
class UnitMatch:
    """An answer unit of a hit and how well it covers the question.

    Attributes:
        hit: index of the hit (0-based, rank order).
        unit: the unit.
        coverage: rarity-weighted share in [0, 1] of the question's terms found in the unit, its context
            (header / lead-in) and its chunk's title and heading.
        own_coverage: the same share counting the unit's own text and context only.
        has_number: the unit's text holds a digit or a number word ("one business day", "twice"); for a question
            that asks how many (:func:`counted`), a number that can be the count (:func:`counts`).
        precision: share in [0, 1] of the unit's own word terms (numbers aside) that are question terms: a row
            or sentence about something more specific than the question scores lower.
        text_coverage: the rarity-weighted share in [0, 1] found in the unit's text alone (no lead-in, header,
            title or heading): what the unit itself says of the question.
    """

    hit: int
    unit: AnswerUnit
    coverage: float
    own_coverage: float
    has_number: bool
    precision: float = 0.0
    text_coverage: float = 0.0

    @property
    def rank_score(self) -> float:
        """What units are ranked by: coverage, then precision as a tie-breaker of about a quarter of its weight."""
        return self.coverage + 0.25 * self.precision


def _covered(weights: dict[str, float], terms: set[str]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in terms) / total if total else 0.0


_NAME = re.compile(r"\b[A-Z][\w\-]*(?:\s+[A-Z][\w\-]*)+")  # two or more capitalised words in a row


@dataclass(frozen=True)
class Name:
    """A name a text uses: a multi-word name (:func:`names`) or a vendor-prefixed product (:func:`products`).

    Attributes:
        terms: its stemmed terms, without question words and the vendor prefix.
        compact: its words lower-cased and run together ("groundtruth" for "Ground Truth" and "GroundTruth").
        initials: a product's words' first letters, a run of one letter said as letter and count ("ebs" for "Elastic
            Block Store", "ec2" for "Elastic Compute Cloud", "s3" for "Simple Storage Service"); "" for a name.
    """

    terms: frozenset[str]
    compact: str
    initials: str = ""

    def same(self, other: Name) -> bool:
        """Whether the two names can be one thing: a shared term, or one is the other's initials."""
        return bool(self.terms & other.terms) or self.compact in (other.initials, other.compact) \
            or other.compact == self.initials


def _compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


def names(text: str, sparse: BM25SparseEncoder) -> list[Name]:
    """The multi-word names of a text ("Elastic Fabric Adapter", "Local Secondary Index") without question words
    and the vendor prefix ("Why use Elastic Fabric Adapter?" → terms ``{elast, fabric, adapt}``); names left with
    fewer than two terms are dropped."""
    out = []
    for m in _NAME.finditer(text):
        words = [w for w in m.group().split() if w.lower() not in _QUESTION_FILLER and w.lower() not in STOP_WORDS]
        terms = frozenset(sparse.terms(" ".join(words)))
        if len(terms) >= 2:
            out.append(Name(terms, _compact(" ".join(words))))
    return out


def sibling_name(asked: list[Name], text: str, sparse: BM25SparseEncoder, *,
                 terms: Iterable[str] | None = None) -> bool:
    """Whether ``text`` names a sibling of a name the question asks about (``asked``: :func:`names` of the question)
    and not that name: "Elastic Network Adapters (ENAs) provide …" for "Why use Elastic Fabric Adapter?" — a name
    of as many terms, sharing at least two and at least half of them but not all (one shared term is mostly the
    product: "SageMaker Neural Topic Model" is no sibling of "SageMaker NTM"; a longer or shorter name is the same
    thing named more or less fully: "IBM Cloud Container Registry", "Container Registry CLI"), in a text that lacks
    the asked name (as words or run together: "Ground Truth" is "GroundTruth"). ``terms``: ``sparse.terms(text)``
    when the caller has them."""
    if not asked:
        return False
    own, flat = set(sparse.terms(text) if terms is None else terms), _compact(text)
    for name in names(text, sparse):
        for q in asked:
            if (q.terms - own and q.compact not in flat and name.compact != q.compact
                    and len(name.terms) == len(q.terms) and len(name.terms & q.terms) >= max(2, (len(q.terms) + 1) // 2)):
                return True
    return False


_PRODUCT = re.compile(r"\b(?:Amazon|AWS)\s+((?:[A-Z][\w\-]*|\d\w*)(?:\s+(?:[A-Z][\w\-]*|\d\w*)){0,4})")
"""A vendor-prefixed product name: "Amazon EBS", "AWS Lambda", "Amazon Elastic Block Store" (the words after the
vendor, each capitalised or a number)."""


def _initials(words: list[str]) -> str:
    letters = "".join(w[0].lower() for w in words if w[0].isalpha())
    return re.sub(r"(\w)\1+", lambda m: f"{m.group(1)}{len(m.group())}", letters)


def products(text: str, sparse: BM25SparseEncoder) -> list[Name]:
    """The vendor-prefixed product names of a text, with their initials ("… performance of Amazon EBS volumes" →
    ``EBS``)."""
    out = []
    for m in _PRODUCT.finditer(text):
        words = m.group(1).split()
        terms = frozenset(sparse.terms(" ".join(words)))
        if terms:
            out.append(Name(terms, _compact(" ".join(words)), _initials(words)))
    return out


def other_product(asked: list[Name], text: str, sparse: BM25SparseEncoder, *,
                  terms: Iterable[str] | None = None) -> bool:
    """Whether ``text`` is about another product than the question asks about (``asked``: :func:`products` of
    the question): it names a vendor-prefixed product that is none of the asked ones (nor their initials: "Amazon
    Relational Database Service" is "Amazon RDS") and holds no term of any asked one ("Several factors can affect
    the performance of Amazon EBS volumes …" for "What are the factors that affect storage performance in Amazon
    RDS?"). A text that names no product, or also the asked one, is not. ``terms``: ``sparse.terms(text)`` when the
    caller has them."""
    if not asked:
        return False
    named = products(text, sparse)
    if not named:
        return False
    own, flat = set(sparse.terms(text) if terms is None else terms), _compact(text)
    if any(q.terms & own or q.compact in flat for q in asked):
        return False
    return not any(n.same(q) for n in named for q in asked)


_NO_LIMIT = re.compile(r"\b(?:no(?: \w+)? (?:limit|maximum|minimum|quota|upper bound)|unlimited|not limited|"
                       r"any number)\b", re.IGNORECASE)


def given_numbers(question: str) -> frozenset[str]:
    """The numbers a question states itself, lower-cased ("How much data does one write capacity unit cover?" →
    ``{"one"}``): a text that holds only these does not give the value asked. Numbers inside names
    ("ml.eia2.large", "F32") are not numbers here."""
    return frozenset(m.group().lower() for m in _COUNT.finditer(question))


def _unsaid(text: str, given: frozenset[str]) -> str:
    """``text`` without the numbers of ``given``."""
    return _COUNT.sub(lambda m: " " if m.group().lower() in given else m.group(), text) if given else text


def states_value(text: str, question: str) -> bool:
    """Whether ``text`` states a value for a question that asks for one (:func:`asks_value`): a number (a digit or a
    number word) other than those the question states (:func:`given_numbers`), or that there is no limit
    ("There is no practical limit on a table's size", "unlimited")."""
    return _has_value(text, given_numbers(question)) or bool(_NO_LIMIT.search(text))


def _has_value(text: str, given: frozenset[str] = frozenset()) -> bool:
    """Whether ``text`` holds a number as a value (:data:`_NUMBER`) other than those of ``given``: not inside a
    name, not a vague count ("one or more"), not an argument of a command line (:func:`_is_command`)."""
    return not _is_command(text) and _says_number(_unsaid(text, given))


def _is_command(text: str) -> bool:
    """A line of code or a command line (:data:`~citedesk.core.text.CODE_LINE`, :data:`_COMMAND`)."""
    return bool(CODE_LINE.match(text) or _COMMAND.search(text))


def _says_number(text: str) -> bool:
    """A number (:data:`_NUMBER`) that is no vague count (:data:`_VAGUE_COUNT`)."""
    return bool(_NUMBER.search(_VAGUE_COUNT.sub(" ", text)))


def match_units(question: str, hits: list[Hit], sparse: BM25SparseEncoder, *, max_hits: int = 5,
                weights: dict[str, float] | None = None) -> list[UnitMatch]:
    """Answer units of the top ``max_hits`` hits with their coverage of the question, best first.

    Ties keep rank order (earlier hit, earlier unit). A number the question states itself does not count for
    ``has_number`` ("For a new item, DynamoDB consumes one write capacity unit." for "How much data does one write
    capacity unit cover?").
    """
    weights = term_weights(question, sparse) if weights is None else weights
    noun = counted(question)  # "how many indexes": a count of indexes, not "400 KB" or "two types"
    given = given_numbers(question)
    test = functools.partial(counts, noun=noun, sparse=sparse) if noun else _says_number

    def number(text: str) -> bool:
        return not _is_command(text) and bool(test(_unsaid(text, given)))

    out = []
    for i, h in enumerate(hits[:max_hits]):
        head = set(sparse.terms(f"{h.title} {h.heading}"))
        for u in answer_units(h.text, table_header=h.table_header):
            # a URL's words are not what the unit says (the answer does not say URLs): "…/sagemaker/groundtruth"
            own = set(sparse.terms(URL.sub(" ", f"{u.context} {u.text}")))
            raw = h.text[u.start:u.end] if u.kind == "table_row" else u.text  # a row: its own cells, not the header
            words = {t for t in sparse.terms(URL.sub(" ", raw)) if not t.isdigit()}
            precision = len(words & weights.keys()) / len(words) if words else 0.0
            out.append(UnitMatch(i, u, _covered(weights, own | head), _covered(weights, own),
                                 bool(number(u.text)), precision,
                                 _covered(weights, set(sparse.terms(URL.sub(" ", u.text))))))
    out.sort(key=lambda m: (-m.rank_score, -m.own_coverage, m.hit, m.unit.start))
    return out


@dataclass(frozen=True)
class AnswerabilitySignals:
    """Inputs of the confidence model (all in [0, 1] unless noted; see the module docstring).

    Attributes:
        top_cosine: dense cosine of the best hit, in [-1, 1] (0 when unknown).
        coverage: share of the question's distinct BM25 terms found in the top 3 hits (the 0.1 feature).
        unit_coverage: rarity-weighted coverage of the best answer unit (with its chunk's title/heading).
        unit_own_coverage: the same unit's coverage without the title/heading.
        chunk_coverage: rarity-weighted coverage of the best single chunk (title, heading, text).
        title_coverage: rarity-weighted coverage of the best title + heading path.
        type_match: 1 when the best unit has what the question type asks for (a number for a quantity; for
            "What is a/an X?", any of the 12 best-covering units is a sentence that says what X is), else 0;
            1 for question types without a requirement.
        cosine_margin: top cosine minus the best cosine of another article.
        unit_margin: best unit coverage minus the best unit coverage of another article (gold pages stand out;
            neighbouring pages are alike).
        rare_coverage: share of the question's rarest terms (weight ≥ 4, at most the three rarest) in the best
            unit's own text.
        agreement: 1 when the best-cosine hit is the top fused hit, else 0.
        unit_cosine: dense cosine in [-1, 1] of the question to the closest of the best-covering answer units
            (0 when no embedder was given).
        top_rerank: best rerank probability, or None when no reranker ran.
        reader_agrees: 1 when the reader check's best unit is the extractive ranking's best, 0 when it is another or
            there is no unit to read (:class:`~citedesk.serving.answer.reader.ReaderAgreementCheck`); None when no
            reader ran.
    """

    top_cosine: float
    coverage: float
    unit_coverage: float = 0.0
    unit_own_coverage: float = 0.0
    chunk_coverage: float = 0.0
    title_coverage: float = 0.0
    type_match: float = 1.0
    cosine_margin: float = 0.0
    agreement: float = 0.0
    unit_cosine: float = 0.0
    unit_margin: float = 0.0
    rare_coverage: float = 0.0
    top_rerank: float | None = None
    reader_agrees: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        """Name → value (what the audit record keeps)."""
        return asdict(self)


_DEFINITION_UNITS = 12
"""Units (by coverage) looked at for a sentence that defines what a "What is X?" question asks."""


def signals(question: str, hits: list[Hit], sparse: BM25SparseEncoder, *, coverage_hits: int = 3,
            max_hits: int = 5, embedder=None, embed_units: int = 12) -> AnswerabilitySignals:
    """Compute :class:`AnswerabilitySignals` for ``question`` over ``hits`` (best first).

    Args:
        question: what is searched.
        hits: retrieved hits, best first.
        sparse: the BM25 encoder (its terms).
        coverage_hits: hits whose text counts for ``coverage``.
        max_hits: hits whose answer units are considered.
        embedder: ``embed(list[str]) -> float32 (n, dim)`` and ``embed_query(str) -> (dim,)``, L2-normalised;
            when given, the ``embed_units`` best-covering units are embedded for ``unit_cosine``.
        embed_units: units embedded (cost: one batch of that many short texts).
    """
    if not hits:
        return AnswerabilitySignals(0.0, 0.0, type_match=0.0)
    cosines = [h.cosine for h in hits if h.cosine is not None]
    q_terms = set(sparse.terms(question))
    found: set[str] = set()
    for h in hits[:coverage_hits]:
        found |= q_terms & set(sparse.terms(f"{h.title} {h.heading} {h.text}"))
    coverage = len(found) / len(q_terms) if q_terms else 0.0
    weights = term_weights(question, sparse)
    units = match_units(question, hits, sparse, max_hits=max_hits, weights=weights)
    chunk_cov = max((_covered(weights, set(sparse.terms(f"{h.title} {h.heading} {h.text}")))
                     for h in hits[:max_hits]), default=0.0)
    title_cov = max((_covered(weights, set(sparse.terms(f"{h.title} {h.heading}"))) for h in hits[:max_hits]),
                    default=0.0)
    qtype = question_type(question)
    best = units[0] if units else None
    if best is None:
        type_match = 0.0
    elif qtype == QuestionType.QUANTITY:
        type_match = 1.0 if any(m.has_number for m in units[:1]) else 0.0
    elif qtype == QuestionType.LIST:
        type_match = 1.0 if best.unit.kind in ("list", "list_item", "table_row") or "," in best.unit.text else 0.0
    elif (term := asks_definition(question)) is not None:  # "What is a trail?": does a unit say what one is?
        type_match = float(any(m.unit.kind in ("sentence", "list_item") and defines(m.unit.text, term, sparse)
                               for m in units[:_DEFINITION_UNITS]))
    else:
        type_match = 1.0
    by_article: dict[str, float] = {}
    for h in hits:
        if h.cosine is not None:
            by_article[h.article_id] = max(by_article.get(h.article_id, -1.0), h.cosine)
    ranked = sorted(by_article.values(), reverse=True)
    margin = ranked[0] - ranked[1] if len(ranked) > 1 else (ranked[0] if ranked else 0.0)
    unit_margin = 0.0
    rare = 0.0
    if best is not None:
        best_article = hits[best.hit].article_id
        other = next((m.coverage for m in units if hits[m.hit].article_id != best_article), 0.0)
        unit_margin = best.coverage - other
        rare_terms = sorted((w, term) for term, w in weights.items() if w >= 4.0)[-3:]
        if rare_terms:
            own = set(sparse.terms(f"{best.unit.context} {best.unit.text}"))
            rare = sum(1 for _, term in rare_terms if term in own) / len(rare_terms)
        else:
            rare = 1.0
    best_cos = max(range(len(hits)), key=lambda i: hits[i].cosine if hits[i].cosine is not None else -2.0)
    reranks = [h.rerank for h in hits if h.rerank is not None]
    unit_cos = 0.0
    if embedder is not None and units:
        texts = [f"{m.unit.context} {m.unit.text}".strip() for m in units[:embed_units]]
        unit_cos = float((embedder.embed(texts) @ embedder.embed_query(question)).max())
    return AnswerabilitySignals(
        top_cosine=max(cosines) if cosines else 0.0, coverage=coverage,
        unit_coverage=best.coverage if best else 0.0, unit_own_coverage=best.own_coverage if best else 0.0,
        chunk_coverage=chunk_cov, title_coverage=title_cov, type_match=type_match, cosine_margin=margin,
        agreement=1.0 if best_cos == 0 else 0.0, unit_cosine=unit_cos, unit_margin=unit_margin,
        rare_coverage=rare, top_rerank=max(reranks) if reranks else None)
