"""Small text utilities shared by retrieval and serving: sentence spans, citation markers, and the URL,
markdown-link and marker patterns (defined here once)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
"""A markdown image ``![alt](target)``."""
HTML_TAG = re.compile(r"<[^>]{0,200}>")
"""One HTML tag (bounded, so a stray ``<`` cannot swallow a whole text)."""
URL = re.compile(r"\b(?:https?://|www\.)(?:[^\s<>\"'()]|\([^\s<>\"'()]*\))+", re.IGNORECASE)
"""A bare URL (``http://``, ``https://`` or ``www.``) up to whitespace, a quote, an angle bracket or a parenthesis
it did not open ("the console (https://…/rds/) and" leaves "()" behind; "…/wiki/Foo_(bar)" is whole)."""
URL_AT = re.compile(r"(?:\s+at\s+|\s+)?" + URL.pattern, re.IGNORECASE)
"""A URL with the space and the "at" before it ("open the console at https://…"): what an answer drops of it."""
MEASURE_UNIT = (r"(?:%|percent|bytes?|[KMGTPE]i?B|[KMGT]bit|[KMGT]b(?:ps|/s)|[KMG]Hz|ms|milliseconds?|"
                r"microseconds?|seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|"
                r"vCPUs?|TFLOPS|IOPS|characters?|(?:MB|GB|KB)/s)")
"""A unit a number is measured in ("400 KB", "900 seconds", "50%"; a regex source, no groups): what a quantity
says after its number."""
MD_LINK = re.compile(r"\[([^\]]+)\]\(([^)]*)\)")
"""A markdown link ``[text](target)``: group 1 is the text, group 2 the target."""
MARKER_LIST = re.compile(r"\s*\[\s*\d{1,3}(?:\s*[,;-]\s*\d{1,3})*\s*\]")
"""Citation markers as models write them, lists and ranges included (``[1]``, ``[1, 2]``, ``[1-3]``), with the
space before them; :func:`markers` / :func:`strip_markers` read the ``[n]`` markers the pipeline checks."""
_MARKER = re.compile(r"\[(\d{1,3})\]")
_MARKER_GROUP = re.compile(r"\s*(\[\d{1,3}\](?:\s*,?\s*\[\d{1,3}\])*)")


@dataclass(frozen=True)
class Span:
    """A sentence of a text: ``text == source[start:end]``."""

    text: str
    start: int
    end: int


ABBREVIATION_END = re.compile(r"(?:^|[\s(\[/])(?:max|min|approx|avg|incl|excl|est|fig|vol|ver|qty|dept)\.$",
                              re.IGNORECASE)
"""Abbreviations the segmenter cuts after when a capital follows ("Max. Bandwidth (Mbps)", a table header): not a
sentence end."""


def sentence_spans(text: str, language: str = "en") -> list[Span]:
    """Split text into sentences and lines, with exact character offsets; blank pieces dropped.

    Sentence boundaries come from ``sentencex`` (Wikimedia's rule-based segmenter): abbreviations such as
    "N. Virginia" or "e.g." and numbers such as "1.11" do not end a sentence; nor do the few it misses before a
    capital (:data:`ABBREVIATION_END`: "Max. Bandwidth"), nor a "?" or "!" before a lower-case word (a UI
    label's: "choose Yes for Create Snapshot? and enter …"); a line break always does.
    """
    out: list[Span] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.strip():
            cuts, pos = [], 0
            marker = LIST_MARK.match(line)
            keep_until = marker.end() if marker else 0  # "1. Open the page." is one item, not "1." + "Open …"
            for piece in _segment(language, line):
                i = line.find(piece, pos)
                pos = (i if i >= 0 else pos) + len(piece)  # i < 0: the segmenter normalised something
                if pos < len(line) and not line[pos - 1].isspace() and not line[pos].isspace():
                    continue  # no space after the boundary ("evil.example", "index.html"): not a sentence end
                if pos <= keep_until or ABBREVIATION_END.search(line[:pos].rstrip()):
                    continue
                if line[:pos].rstrip().endswith(("?", "!")) and line[pos:].lstrip()[:1].islower():
                    continue  # "choose Yes for Create Snapshot? and enter …": a label's mark, not a sentence end
                cuts.append(pos)
            start_of = 0
            for end in cuts + ([len(line)] if not cuts or cuts[-1] < len(line) else []):
                seg = line[start_of:end]
                start_of = end
                lead = len(seg) - len(seg.lstrip())
                body = seg.strip()
                if body:
                    start = offset + (end - len(seg)) + lead
                    out.append(Span(body, start, start + len(body)))
        offset += len(line)
    return out


def _segment(language: str, text: str):
    from sentencex import segment

    return segment(language, text)


_LEADING_MARKERS = re.compile(r"^(?:\s*\[\d{1,3}\])+")


def split_complete_sentences(buffer: str) -> tuple[list[str], str]:
    """Cut complete sentences off a streaming buffer.

    A sentence is complete when more text follows it (or a newline ends it); citation markers written after
    its full stop (``Sentence. [1] Next``) stay with it. Boundaries as :func:`sentence_spans`.

    Returns:
        (complete sentences, remainder to keep buffering).
    """
    spans = sentence_spans(buffer)
    if not spans:
        return [], buffer
    pieces = [[s.start, s.end] for s in spans]
    for k in range(1, len(pieces)):  # "[1] Next ..." → the marker belongs to the sentence before
        m = _LEADING_MARKERS.match(buffer, pieces[k][0])
        if m and m.end() > pieces[k][0]:
            pieces[k - 1][1] = m.end()
            pieces[k][0] = m.end()
    pieces = [p for p in pieces if buffer[p[0]:p[1]].strip()]
    if not pieces:
        return [], buffer
    if buffer.endswith("\n"):
        complete, rest_from = pieces, len(buffer)
    else:
        complete, rest_from = pieces[:-1], pieces[-1][0]
    return [buffer[a:b].strip() for a, b in complete], buffer[rest_from:].lstrip() if complete else buffer


def markers(text: str) -> list[int]:
    """Citation markers ``[n]`` in order of appearance (duplicates kept)."""
    return [int(n) for n in _MARKER.findall(text)]


def renumber_markers(text: str, shown: dict[int, int]) -> str:
    """Rewrite ``[n]`` markers to the order sources are first cited in an answer (1, 2, 3 … with no gaps).

    Args:
        text: one checked sentence whose markers number the evidence given to the generator.
        shown: evidence marker → displayed marker, filled in place as new sources are cited (keep one per
            answer, across its sentences).

    Returns:
        The sentence with displayed markers.
    """
    return _MARKER.sub(lambda m: f"[{shown.setdefault(int(m.group(1)), len(shown) + 1)}]", text)


def strip_markers(text: str) -> str:
    """Text without ``[n]`` markers (and the space before them)."""
    return _MARKER_GROUP.sub("", text).strip()


LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


_ADMONITION = re.compile(r"^(?:Note|Important|Tip|Warning|Caution)\s+(?=[A-Z])")
"""A documentation callout's label glued to its sentence by the cleaning ("Note Stream manager is not supported on
OpenWrt distributions."): not said."""


def speakable_line(text: str) -> str:
    """One line from a (possibly multi-line list) span: bullets dropped, items joined with '; ', a callout's label
    ("Note", "Important" before a capitalised word) dropped."""
    lines = [_ADMONITION.sub("", LIST_MARK.sub("", line).strip().replace("`", ""))
             for line in text.splitlines() if line.strip()]
    if len(lines) == 1:
        return lines[0]
    return lines[0] + " " + "; ".join(line.rstrip(".") for line in lines[1:]) + "."


def with_list_items(text: str, spans: list[Span], max_items: int = 12, max_chars: int = 800) -> list[Span]:
    """Merge a sentence ending in ':' with the list items (or short lines) right after it.

    The merged span stays one contiguous, quotable slice of ``text``.
    """
    out, i = [], 0
    while i < len(spans):
        span = spans[i]
        j = i + 1
        if span.text.endswith(":"):
            while (j < len(spans) and j - i <= max_items and not spans[j].text.startswith("#")
                   and (LIST_MARK.match(spans[j].text) or len(spans[j].text.split()) <= 25)
                   and spans[j].end - span.start <= max_chars):
                j += 1
        if j > i + 1:
            out.append(Span(text[span.start:spans[j - 1].end], span.start, spans[j - 1].end))
        else:
            out.append(span)
        i = j
    return out


_NOT_ANSWER = re.compile(r"^\s*(?:topics\b|next steps?\b|\*\*topics\*\*|tutorial:|example:|sample:)", re.IGNORECASE)
_SEE_MORE = re.compile(r"^\s*(?:for more information\b|see also\b|see\s|to learn more\b|"
                       r"related (?:topics|information)\b)", re.IGNORECASE)
_POINTER = re.compile(r"^\s*(?:to|for|if)\b[^.;:!?]{0,200},\s*(?:see|refer to)\s", re.IGNORECASE)  # To view X, see Y.
SEE_ALSO_LIST = re.compile(r"^\W*(?:topics|contents|related (?:topics|resources|information)|see also)\W*$|"
                           r"^\s*for more information\b.*(?:\bthe following\W*|:\s*)$", re.IGNORECASE)
"""The line right before a list of links: "Topics", "See also", "For more information, see the following:"."""
_DANGLING = re.compile(r"\b(?:at|to|in|on|the|a|an|of|for|with|from|see|and|or)\s*[.:]?\s*$", re.IGNORECASE)


PROCEDURE_TITLE = re.compile(r"To [a-z]+\b[^.!?:;]{3,200}")
"""A procedure's title as AWS and most help centers write it: "To stop a DB instance" (no sentence end), a line
of its own above the steps; :func:`is_title_line` tests the whole-line part."""


PROCEDURE_LEAD = re.compile(r"\bsteps?\b|\bdo the following\b|\bfollow(?:ing)? these\b|^\s*to \w+|\bhow to\b",
                            re.IGNORECASE)
"""A lead-in that announces steps ("To create a table", "… follow these steps", "do the following")."""


def procedure_steps(sentence: str) -> tuple[str, list[str]] | None:
    """A procedure said on one line, as the extractive generator says a lead-in with its list ("To stop a DB
    instance: Sign in to the console; Choose Stop. [1]"): ``(lead, steps)``, markers left where they are (after
    the last step); None for any other sentence (fewer than two steps, or a lead that announces no steps)."""
    lead, colon, rest = sentence.partition(": ")
    steps = [s.strip() for s in rest.split("; ") if s.strip()] if colon else []
    return (lead, steps) if len(steps) >= 2 and PROCEDURE_LEAD.search(lead) else None


_VERBISH = re.compile(r"\b(?:is|are|was|were|be|been|has|have|had|can|cannot|must|will|may|should|does|do|"
                      r"\w+(?:s|ed|es))\b", re.IGNORECASE)
_ENTRY_LABEL = re.compile(r"^([^.:;!?]{2,80}?)\.\s+(?=[A-Z(])")
NUMBERED_ITEM = re.compile(r"\s*\d+[.)]\s")
"""A numbered list item's mark ("1. ", "2) "): a procedure's step."""
_INSTRUCTION = re.compile(r"(?:choose|select|open|enter|click|sign|go|run|type|add|create|delete|use|set|specify|"
                          r"review|wait|copy|save|navigate|install|download|update|edit|verify|check|confirm|attach|"
                          r"launch|stop|start|modify|configure|enable|disable|remove|find|view|see|note|make|ensure|"
                          r"provide|replace|define|do|don't|keep|log|upload|restart|reboot|test|call|return)\b",
                          re.IGNORECASE)  # "Choose Save. Then …" is a step, not a label


def after_lead_in(lead: str, item: str) -> str:
    """A list item said after its lead-in: ``"Lead-in: item"`` (the lead-in's closing colon or full stop dropped)."""
    return f"{lead.rstrip(' .:')}: {item}"


def is_fragment(text: str) -> bool:
    """A piece of text that says nothing on its own: under five words, or no verb-like word ("SQL Server 2014
    Enterprise Edition", "Multi-AZ standby creation")."""
    return len(text.split()) < 5 or not _VERBISH.search(text)


def labelled_entries(entries: list[str]) -> list[str]:
    """List entries that each begin with a label sentence ("Data in transit over the internet. Communication … is
    encrypted.") said "Label: what follows", so that the label is not a sentence of its own; unchanged unless every
    entry (two or more) is a label of at most eight words with no verb-like word and no instruction verb first
    ("Choose Save. Then …" is a step), then a sentence."""
    labels = [_ENTRY_LABEL.match(e) for e in entries]
    if len(entries) < 2 or not all(m is not None and len(m.group(1).split()) <= 8 and not _VERBISH.search(m.group(1))
                                   and not _INSTRUCTION.match(m.group(1)) for m in labels):
        return entries
    return [f"{m.group(1)}: {e[m.end():]}" for m, e in zip(labels, entries)]


def is_title_line(text: str, span: Span) -> bool:
    """Whether ``span`` of ``text`` is a procedure title line (:data:`PROCEDURE_TITLE`, alone on its line)."""
    if not PROCEDURE_TITLE.fullmatch(span.text.strip()):
        return False
    line_start = text.rfind("\n", 0, span.start) + 1
    line_end = text.find("\n", span.end)
    return not text[line_start:span.start].strip() and not text[span.end:line_end if line_end >= 0 else None].strip()


def is_pointer(text: str) -> bool:
    """A line that points elsewhere instead of saying something: "For more information, see …", "See also …", "To
    view X, see Y." (never an answer, nor an entry of one)."""
    return bool(_SEE_MORE.match(text) or _POINTER.match(text))


def is_answer_text(text: str) -> bool:
    """False for pieces that are never an answer: see-also lines ("For more information, see …", "To view …, see
    …"), "Topics" and "Tutorial:" lines, questions, fragments
    ending in a preposition or article (a link was cut out), and title-like lines (under eight words with no full
    stop, colon, digit or table cell)."""
    s = text.strip()
    if not s or _NOT_ANSWER.match(s) or is_pointer(s) or s.endswith("?") or _DANGLING.search(s):
        return False
    if len(s.split()) < 8 and not re.search(r"[.:;!\d|]", s):
        return False
    return True


_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
"""A markdown heading line (``#`` to ``######`` and a space, up to three spaces in)."""
FENCE = re.compile(r"^\s*(?:```|~~~)")
"""A line opening or closing a fenced code block."""
CODE_LINE = re.compile(r"^\s*(?:from\s+[\w.]+\s+import\b|import\s+[\w.]+\s*$|[\w.\[\]'\"]+\s*=\s*[\w.\[\]('\"{]|"
                       r"\$\s|>>>|#!|def\s+\w+\(|class\s+\w+[(:]|\w+\([^)]*\)\s*;?\s*$)")
"""A line of code, not prose: an import, an assignment, a shell or REPL prompt, a definition, a bare call
("from sagemaker.sparkml.model import SparkMLModel", "mapper = new DynamoDBMapper(client);", "$ aws s3 ls")."""


@dataclass(frozen=True)
class AnswerUnit:
    """A piece of a chunk that can answer a question on its own.

    Attributes:
        kind: ``sentence``, ``list_item``, ``list`` (a lead-in sentence and its items) or ``table_row``.
        text: what an answer says: the span verbatim, except a table row, rendered with its header as
            ``"Header 1: cell 1; Header 2: cell 2"``, and list markers dropped.
        start / end: character offsets of the verbatim span in the chunk (what a citation quotes).
        context: the header row of a table row, the lead-in sentence of a list item, or the sentence before a
            sentence that leaves what it bounds to it (:data:`ELLIPTIC_BOUND`); "" otherwise.
    """

    kind: str
    text: str
    start: int
    end: int
    context: str = ""


def table_cells(line: str) -> list[str]:
    """The ``|``-separated cells of a table row line, stripped (outer pipes dropped; empty cells kept)."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def is_table_row(line: str) -> bool:
    """A line with two or more ``|``-separated cells (a separator line ``|---|---|`` included)."""
    return line.count("|") >= 1 and len(table_cells(line)) >= 2


def row_cells(header_line: str, row_line: str) -> list[tuple[str, str]]:
    """``(column name, cell)`` of a table row read with its header row, empty cells left out (a cell beyond the
    header has the name ""). A header one cell short of the row names the row's last cells: its empty corner cell
    (over the rows' labels) was dropped ("On-Demand | Provisioned" over "Per table | 40,000 … | 40,000 …")."""
    header, cells = table_cells(header_line), table_cells(row_line)
    if header and len(header) == len(cells) - 1 and cells[0] and header[0]:
        header = ["", *header]
    return [(header[k] if k < len(header) else "", c) for k, c in enumerate(cells) if c]


def say_cells(cells: list[tuple[str, str]]) -> str:
    """A row's cells as said: ``"Header 1: cell 1; Header 2: cell 2"`` (a cell without a name alone)."""
    return "; ".join(f"{h}: {c}" if h else c for h, c in cells)


def _is_data_row(cells: list[str]) -> bool:
    """A row whose cells start with digits is data, not a header ("db.t2.small | 16 | 16")."""
    return any(c[:1].isdigit() for c in cells)


_HEADER_LABEL = re.compile(r"[A-Z][A-Za-z]*(?: [A-Za-z][A-Za-z]*){0,3}")


def _is_header_row(cells: list[str]) -> bool:
    """Whether a table's first row names its columns: no cell starts with a digit ("Resource | Quota"), or a
    capitalised label comes first over three or more distinct column names that may be numbers ("Extension | 10.1 |
    10.3", "Instance Size | 100% Random Read IOPS | Write IOPS"), which a data row ("cube | 1.0 | 1.0",
    "db.t2.small | 16 | 16") rarely is. Checked on the bundled pages: 17 of the 25 markdown header rows with a
    digit-led cell are read as headers this way, and none of the first data rows of the 42 tables whose header row
    is empty."""
    if not _is_data_row(cells):
        return True
    rest = cells[1:]
    return (len(cells) >= 3 and bool(_HEADER_LABEL.fullmatch(cells[0])) and all(rest)
            and len(set(rest)) == len(rest))


_VALUE_CELLS = frozenset({"yes", "no", "true", "false", "n/a", "-", "–", "none", "supported", "not supported",
                          "deprecated", "required", "optional"})


def _looks_like_data(cells: list[str]) -> bool:
    """A row after a group label that goes on with the table above rather than heading a new one: numbers, yes/no
    style values, or a value repeated across its columns ("db.m5.24xlarge | Yes | Yes | Yes")."""
    rest = [c.lower() for c in cells[1:] if c]
    return _is_data_row(cells) or any(c in _VALUE_CELLS for c in rest) or len(set(rest)) < len(rest)


def is_group_label(line: str) -> bool:
    """A short line without cells or a sentence end, as tables with spanning group rows render them ("db.t2 –
    Burstable classes")."""
    s = line.strip()
    return bool(s) and not is_table_row(s) and not HEADING.match(s) and len(s.split()) <= 12 \
        and not s.endswith((".", ":", "!", "?"))


def table_header_before(text: str, offset: int) -> str:
    """The header row of the table that ``offset`` falls inside, when that header lies before ``offset``.

    Used for a chunk that starts in the middle of a table (its rows would otherwise be read without their
    column names). The walk back goes over the table's rows and over group labels between them (a line without
    cells between two rows, as tables with spanning group rows render: "db.t2 – Burstable classes"). Returns ""
    when the line at ``offset`` is neither a table row nor a group label between two rows, or the table's first
    row is data (no header to carry).
    """
    line_end = text.find("\n", offset)
    line_end = line_end if line_end >= 0 else len(text)
    if not is_table_row(text[offset:line_end]):
        next_end = text.find("\n", line_end + 1)
        below = text[line_end + 1: next_end if next_end >= 0 else len(text)]
        above_end = text.rfind("\n", 0, offset)
        above = text[text.rfind("\n", 0, max(above_end, 0)) + 1: max(above_end, 0)]
        if not (is_group_label(text[offset:line_end]) and is_table_row(below) and is_table_row(above)):
            return ""  # not a row, nor a group label between two rows
    first = ""
    pos = text.rfind("\n", 0, offset)
    while pos > 0:
        prev_start = text.rfind("\n", 0, pos) + 1
        line = text[prev_start:pos]
        if is_table_row(line):
            if not _TABLE_SEP.match(line):
                first = line.strip()
        elif not line.strip() or HEADING.match(line):
            break
        else:  # a group label: part of the table only when a row sits right above it
            above = text[text.rfind("\n", 0, max(prev_start - 1, 0)) + 1: max(prev_start - 1, 0)]
            if not is_table_row(above):
                break
        pos = prev_start - 1
    return "" if not first or not _is_header_row(table_cells(first)) else first


ELLIPTIC_BOUND = re.compile(r"^\s*the\s+(?:maximum|minimum|max|min|default)\s+(\w+)\s+(?:is|are)\b", re.IGNORECASE)
"""A sentence that names its bound but leaves what it bounds to the sentence before ("The maximum length is 2048
bytes." after "The minimum length of a partition key value is 1 byte."); group 1 is the noun they share."""


def answer_units(text: str, *, table_header: str = "", max_list_chars: int = 800) -> list[AnswerUnit]:
    """Split a chunk into answer units (see :func:`_answer_units`); cached by text, since the confidence signals
    and the extractive generator both read the same evidence chunks for every answer.

    Args:
        text: a chunk's text.
        table_header: the header row of a table the chunk starts inside (the chunk's ``table_header``
            payload); its rows are read with it.
        max_list_chars: a longer list is not a unit as a whole (its items still are).
    """
    return list(_answer_units(text, table_header, max_list_chars))


@functools.lru_cache(maxsize=2048)
def _answer_units(text: str, table_header: str, max_list_chars: int) -> tuple[AnswerUnit, ...]:
    """Split a chunk into answer units: sentences, list items (with their lead-in), whole lists, table rows
    (with their header). Headings, table separators and blank lines are not units.

    Lines with two or more ``|``-separated cells form a table; its first line is taken as the header, except
    for a table at the start of a chunk that starts inside a table (``table_header`` given): all its rows are
    data, read with ``table_header``. A run of list lines (``-``, ``*``, ``+``, ``1.``) is a list; the sentence
    right before it is its lead-in, a procedure's title line ("To stop a DB instance", :func:`is_title_line`)
    included, which is a unit although it is title-like. A sentence that leaves what it bounds to the sentence
    before (:data:`ELLIPTIC_BOUND`) has that sentence as its context.
    """
    spans = sentence_spans(text)
    units: list[AnswerUnit] = []
    i = 0
    prev_sentence: Span | None = None
    last_table: tuple[int, list[str], str] | None = None  # (span index after it, its header cells, header line)
    while i < len(spans):
        s = spans[i]
        if HEADING.match(s.text) or _TABLE_SEP.match(s.text):
            prev_sentence = None
            i += 1
            continue
        if is_table_row(s.text):
            j = i
            rows = []
            while j < len(spans) and is_table_row(spans[j].text):
                if not _TABLE_SEP.match(spans[j].text):
                    rows.append(spans[j])
                j += 1
            header_line = rows[0].text
            before = text[: spans[i].start].strip()
            carried = bool(table_header) and (not before or is_group_label(before))  # the chunk starts inside it
            if (not carried and last_table is not None and i - last_table[0] <= 1
                    and (_is_data_row(table_cells(header_line)) or len(table_cells(header_line)) == len(last_table[1])
                         and _looks_like_data(table_cells(header_line)))):
                carried, header_line = True, last_table[2]  # the same table after a group label line
            elif carried:
                header_line = table_header
            header = table_cells(header_line)
            if carried:
                body = rows
            elif not _is_header_row(header):  # a data row (the header is in another chunk): no header
                header, body = [], rows
            else:
                body = rows[1:]
            last_table = (j, header, header_line) if header else None
            for row in body:
                if header:
                    said = say_cells(row_cells(header_line, row.text))
                else:
                    said = " | ".join(c for c in table_cells(row.text) if c)
                context = header_line if header else ""
                units.append(AnswerUnit("table_row", said, row.start, row.end, context=context))
            if len(rows) == 1 and header and not carried:
                units.append(AnswerUnit("sentence", rows[0].text, rows[0].start, rows[0].end))
            prev_sentence = None
            i = j
            continue
        if LIST_MARK.match(s.text):
            j = i
            items, more = [], []  # an item is its whole line ("- Label. What it does."); `more`: its later sentences
            while j < len(spans) and LIST_MARK.match(spans[j].text):
                first = last = spans[j]
                line_end = text.find("\n", first.start)
                j += 1
                while j < len(spans) and (line_end < 0 or spans[j].start < line_end):
                    last = spans[j]
                    more.append(last)
                    j += 1
                items.append(Span(text[first.start:last.end], first.start, last.end))
            lead = prev_sentence.text if prev_sentence is not None else ""
            if i and SEE_ALSO_LIST.match(spans[i - 1].text):  # "Topics", "For more information, see the following:"
                items = []
            entries = [LIST_MARK.sub("", it.text).strip() for it in items]
            if not NUMBERED_ITEM.match(items[0].text if items else ""):  # steps are no definition list
                entries = labelled_entries(entries)
            for it, said in zip(items, entries):
                if is_answer_text(said):
                    units.append(AnswerUnit("list_item", said, it.start, it.end, context=lead))
                elif lead and len(said.split()) <= 6:  # "ALIAS" of "… reserves the following names." → say both
                    units.append(AnswerUnit("list_item", after_lead_in(lead, said), it.start, it.end,
                                            context=lead))
            begin = prev_sentence.start if prev_sentence is not None else items[0].start if items else 0
            titled = prev_sentence is not None and is_title_line(text, prev_sentence)
            if len(items) > 1 and items[-1].end - begin <= max_list_chars and (not lead or titled
                                                                                or is_answer_text(lead)):
                said = [lead + ":" if titled else lead] if lead else []
                said.append("; ".join(e.rstrip(".;") for e in entries) + ".")
                units.append(AnswerUnit("list", " ".join(said), begin, items[-1].end, context=lead))
            units += [AnswerUnit("sentence", m.text, m.start, m.end) for m in more if is_answer_text(m.text)]
            prev_sentence = None
            i = j
            continue
        if is_answer_text(s.text) or is_title_line(text, s):  # "To stop a DB instance": the steps' lead-in
            elliptic = ELLIPTIC_BOUND.match(s.text)
            context = (prev_sentence.text if elliptic is not None and prev_sentence is not None
                       and re.search(rf"\b{elliptic.group(1)}\b", prev_sentence.text, re.IGNORECASE) else "")
            units.append(AnswerUnit("sentence", s.text, s.start, s.end, context=context))
            prev_sentence = s  # a title-like line ("A" over a group of names) does not replace the lead-in
        i += 1
    return tuple(units)
