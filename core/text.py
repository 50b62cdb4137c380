"""Small text utilities shared by retrieval and serving: sentence spans, citation markers, and the URL,
markdown-link and marker patterns (defined here once)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_COMPLETE = re.compile(r"[.!?](?:\s*\[\d{1,3}\])*[\"')\]]*\s+(?=\S)(?!\[\d)|\n")
MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
"""A markdown image ``![alt](target)``."""
HTML_TAG = re.compile(r"<[^>]{0,200}>")
"""One HTML tag (bounded, so a stray ``<`` cannot swallow a whole text)."""
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
"""A bare URL (``http://``, ``https://`` or ``www.``) up to whitespace, a quote or an angle bracket."""
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


def sentence_spans(text: str) -> list[Span]:
    """Split text into sentences (and lines), with exact character offsets; blank pieces dropped."""
    spans, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    out = []
    for s, e in spans:
        seg = text[s:e]
        lead = len(seg) - len(seg.lstrip())
        seg = seg.strip()
        if seg:
            out.append(Span(seg, s + lead, s + lead + len(seg)))
    return out


def split_complete_sentences(buffer: str) -> tuple[list[str], str]:
    """Cut complete sentences off a streaming buffer.

    A sentence is complete when its end punctuation (and any citation markers right after it) is
    followed by whitespace and more text, or by a newline.

    Returns:
        (complete sentences, remainder to keep buffering).
    """
    out = []
    while True:
        m = _COMPLETE.search(buffer)
        if not m:
            return out, buffer
        piece = buffer[: m.end()].strip()
        if piece:
            out.append(piece)
        buffer = buffer[m.end():]


def markers(text: str) -> list[int]:
    """Citation markers ``[n]`` in order of appearance (duplicates kept)."""
    return [int(n) for n in _MARKER.findall(text)]


def strip_markers(text: str) -> str:
    """Text without ``[n]`` markers (and the space before them)."""
    return _MARKER_GROUP.sub("", text).strip()


LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def speakable_line(text: str) -> str:
    """One line from a (possibly multi-line list) span: bullets dropped, items joined with '; '."""
    lines = [LIST_MARK.sub("", line).strip().replace("`", "") for line in text.splitlines() if line.strip()]
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
