"""Heading-aware chunking of clean text into offset-exact :class:`citedesk.core.types.Chunk` records.

The clean text (see :mod:`ingest.clean`) is cut into sections at its markdown heading lines
(``#`` .. ``######`` + text, outside ````` / ``~~~`` fenced blocks); each section runs from its
heading line to the next heading line and carries its heading path (``"A > B > C"``). Sections
longer than ``chunk_size`` tokens are split with llama-index's ``SentenceSplitter`` (paragraphs,
then lines, then sentences, then phrases/words, with ``chunk_overlap`` tokens of overlap: a table row is cut
between chunks only when it alone is longer than a chunk, other lines at sentence ends); tiny sections are
merged forward with the following section when that one is a sibling or a descendant, so a
heading with one short line does not become a useless chunk of its own.

Every chunk is a contiguous slice of the input: ``clean_text[c.start:c.end] == c.text`` always.

This is the only module that imports ``llama_index`` (lazily, on the first :meth:`Chunker.split`,
since importing it takes a second or two).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from citedesk.core.errors import ContentError
from citedesk.core.text import is_table_row, table_header_before
from citedesk.core.types import Chunk

__all__ = ["HEADING_SEPARATOR", "Chunker"]

HEADING_SEPARATOR = " > "
"""Joins heading texts into a chunk's heading path."""

_HEADING_RE = re.compile(r"(#{1,6})[ \t]+(\S.*?)(?:[ \t]+#+)?[ \t]*")
_FENCE_RE = re.compile(r"[ \t]*(`{3,}|~{3,})")


@dataclass(frozen=True)
class _Section:
    start: int
    end: int
    path: tuple[str, ...]
    heading_only: bool  # nothing but its heading line


def _under(path: tuple[str, ...], parent: tuple[str, ...]) -> bool:
    """True when ``path`` is ``parent`` or lies below it."""
    return path[: len(parent)] == parent


def _common_prefix(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    first = paths[0]
    n = len(first)
    for p in paths[1:]:
        n = min(n, len(p))
        for i in range(n):
            if p[i] != first[i]:
                n = i
                break
    return first[:n]


def _sections(text: str) -> list[_Section]:
    """Scan heading lines (outside fenced blocks) and return the non-blank sections in order."""
    heads: list[tuple[int, int, int, str]] = []  # (line start, line end, level, title)
    fence: str | None = None
    pos = 0
    n = len(text)
    while pos < n:
        nl = text.find("\n", pos)
        end = n if nl < 0 else nl
        c = text[pos] if pos < end else ""
        if c in "`~ \t" and c:
            m = _FENCE_RE.match(text, pos, end)
            if m:
                run = m.group(1)
                if fence is None:
                    fence = run
                elif run[0] == fence[0] and len(run) >= len(fence) and not text[m.end() : end].strip():
                    fence = None
        elif c == "#" and fence is None:
            m = _HEADING_RE.fullmatch(text, pos, end)
            if m:
                heads.append((pos, end, len(m.group(1)), m.group(2)))
        pos = end + 1

    spans: list[tuple[int, int, tuple[str, ...], int]] = []  # (start, end, path, heading line end)
    stack: list[tuple[int, str]] = []
    prev_start, prev_path, prev_hend = 0, (), 0
    for start, hend, level, title in heads:
        spans.append((prev_start, start, prev_path, prev_hend))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        prev_start, prev_path, prev_hend = start, tuple(t for _, t in stack), hend
    spans.append((prev_start, n, prev_path, prev_hend))

    out: list[_Section] = []
    for start, end, path, hend in spans:
        while end > start and text[end - 1].isspace():
            end -= 1
        while start < end and text[start].isspace():
            start += 1
        if start < end:
            heading_only = bool(path) and not text[hend:end].strip()
            out.append(_Section(start, end, path, heading_only))
    return out


class Chunker:
    """Split clean text into heading-aware, offset-exact chunks.

    Args:
        chunk_size: maximum tokens per chunk (llama-index's default tokenizer, tiktoken
            ``cl100k_base``); sections up to this size stay whole.
        chunk_overlap: tokens shared by consecutive chunks of one long section.
        min_section_tokens: a section smaller than this (tokens) is merged with the next
            section when that one is a sibling or a descendant and the result still fits in
            ``chunk_size``. ``None`` → ``chunk_size // 8``; ``0`` disables this merging. A
            section that is only a heading line is always merged into the next section when
            that one is a sibling or a descendant, whatever its size.

    Raises:
        ValueError: if ``chunk_size < 1``, ``chunk_overlap < 0`` or
            ``chunk_overlap >= chunk_size``.

    The constructor is cheap: the tokenizer and the splitter are built on the first
    :meth:`split`. Output is deterministic.
    """

    def __init__(self, chunk_size: int = 256, chunk_overlap: int = 32, *, min_section_tokens: int | None = None):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if chunk_overlap < 0 or chunk_overlap >= chunk_size:
            raise ValueError(f"chunk_overlap must be in [0, chunk_size), got {chunk_overlap}")
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.min_section_tokens = chunk_size // 8 if min_section_tokens is None else max(0, min_section_tokens)
        self._splitter: Any = None
        self._tokenize: Callable[[str], list[int]] | None = None

    def warm_up(self) -> None:
        """Load the splitter, its tokenizer and its sentence model (llama-index, tiktoken and NLTK's punkt: about
        5 s of imports and file loads on a cold process), so the first :meth:`split` is as fast as the rest.

        Splits one section longer than ``chunk_size``: the path that loads punkt lazily."""
        self.split(" ".join(["One sentence."] * self.chunk_size))

    def _ensure(self) -> None:
        if self._splitter is not None:
            return
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer
        from llama_index.core.utils import get_tokenizer

        self._tokenize = get_tokenizer()
        sentences = split_by_sentence_tokenizer()

        def lines_then_sentences(text: str) -> list[str]:
            # lines first: a table row is one piece (cut further only when it alone is too long), other lines are
            # cut into sentences; the pieces join back to ``text`` exactly (a blank line stays with the piece before)
            out: list[str] = []
            for line in text.splitlines(keepends=True):
                if not line.strip() and out:
                    out[-1] += line
                elif is_table_row(line):  # a row whole, even of several sentences (too long: cut further)
                    out.append(line)
                else:
                    out.extend(sentences(line) or [line])
            return out

        # Clean text separates blocks by one blank line, so paragraphs are "\n\n"-separated.
        self._splitter = SentenceSplitter(
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            paragraph_separator="\n\n",
            chunking_tokenizer_fn=lines_then_sentences,
            tokenizer=self._tokenize,
            include_metadata=False,
            include_prev_next_rel=False,
        )

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` by the tokenizer chunk sizes are measured with.

        Args:
            text: any text.

        Returns:
            Token count (``>= 0``).
        """
        self._ensure()
        assert self._tokenize is not None
        return len(self._tokenize(text))

    def split(self, clean_text: str) -> list[Chunk]:
        """Split clean text into chunks.

        Args:
            clean_text: output of :func:`citedesk.ingest.clean.to_clean_text` (any str works; lines
                ``# title`` .. ``###### title`` outside fenced blocks are taken as headings).

        Returns:
            Chunks in text order with ``ordinal`` 0..n-1, ``heading`` the section's heading
            path (``" > "``-joined, ``""`` before the first heading) and
            ``clean_text[start:end] == text`` exactly. Chunks of one long section overlap by
            about ``chunk_overlap`` tokens; every chunk holds at most ``chunk_size`` tokens
            (counted on the chunk text itself) and starts/ends on a non-blank character; no
            non-blank character is left out of every chunk. ``[]`` for empty/whitespace-only
            text.

        Raises:
            ContentError: if ``clean_text`` is not a ``str``.
        """
        if not isinstance(clean_text, str):
            raise ContentError(f"clean_text must be a str, got {type(clean_text).__name__}")
        if not clean_text.strip():
            return []
        self._ensure()
        sections = _sections(clean_text)
        if not sections:
            return []
        tokens = [self._count(clean_text[s.start : s.end]) for s in sections]

        spans: list[tuple[int, int, str]] = []
        i = 0
        while i < len(sections):
            group = [sections[i]]
            size = tokens[i]
            i += 1
            while i < len(sections) and _under(sections[i].path, group[-1].path[:-1]):
                bare = all(s.heading_only for s in group)  # headings only: always join the body
                if not bare and (size >= self.min_section_tokens or size + tokens[i] > self.chunk_size):
                    break
                group.append(sections[i])
                size += tokens[i]
                i += 1
            start, end = group[0].start, group[-1].end
            if len(group) == 1:
                heading = HEADING_SEPARATOR.join(group[0].path)
            else:
                with_body = [s.path for s in group if not s.heading_only] or [s.path for s in group]
                heading = HEADING_SEPARATOR.join(_common_prefix(with_body))
                size = self._count(clean_text[start:end])
            if size <= self.chunk_size:
                spans.append((start, end, heading))
            else:
                spans.extend((s, e, heading) for s, e in self._split_long(clean_text, start, end))

        return [Chunk(ordinal=k, text=clean_text[s:e], heading=h, start=s, end=e,
                      table_header=table_header_before(clean_text, s)) for k, (s, e, h) in enumerate(spans)]

    # ---------------------------------------------------------------------------------------
    def _count(self, text: str) -> int:
        assert self._tokenize is not None
        return len(self._tokenize(text))

    def _split_long(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Split ``text[start:end]`` with SentenceSplitter and map its pieces back to offsets.

        SentenceSplitter's pieces are stripped concatenations of consecutive splits, i.e. slices
        of the section; each is located between the previous piece's start and end (pieces
        overlap or abut, and always advance). Should a piece not be found, or some text be left
        uncovered, the section is cut into plain token windows instead; a piece whose joined
        tokens exceed ``chunk_size`` is re-cut the same way.
        """
        section = text[start:end]
        try:
            pieces: list[str] = self._splitter.split_text(section)
        except Exception:  # noqa: BLE001 - e.g. "Single token exceeded chunk size"
            return self._windows(text, start, end)
        out: list[tuple[int, int]] = []
        prev_start, prev_end = -1, 0
        for piece in pieces:
            if not piece:
                continue
            # A piece starts after the previous piece's start and no later than the previous
            # piece's end plus the whitespace after it (pieces overlap or abut). Taking the last
            # match in that window keeps repeated text (identical paragraphs) from being matched
            # too early, which would leave the section's tail uncovered.
            hi = prev_end
            while hi < len(section) and section[hi].isspace():
                hi += 1
            pos = section.rfind(piece, prev_start + 1, hi + len(piece))
            if pos < 0:
                pos = section.find(piece, prev_start + 1)
            if pos < 0:
                return self._windows(text, start, end)
            if self._count(piece) > self.chunk_size:
                out.extend(self._windows(text, start + pos, start + pos + len(piece)))
            else:
                out.append((start + pos, start + pos + len(piece)))
            prev_start, prev_end = pos, pos + len(piece)
        # the windows of an over-long piece can reach past the next piece's start: keep reading order
        out = sorted(set(out))
        if not out or not self._covers(section, out, start):
            return self._windows(text, start, end)
        return out

    @staticmethod
    def _covers(section: str, spans: list[tuple[int, int]], base: int) -> bool:
        """True when every non-blank character of the section is in some span."""
        reach = 0
        for s, e in spans:
            s -= base
            e -= base
            if s > reach and section[reach:s].strip():
                return False
            reach = max(reach, e)
        return not section[reach:].strip()

    def _windows(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Fallback: consecutive windows cut at whitespace, each within ``chunk_size`` tokens."""
        out: list[tuple[int, int]] = []
        pos = start
        while pos < end:
            while pos < end and text[pos].isspace():
                pos += 1
            if pos >= end:
                break
            lo, hi = pos + 1, min(end, pos + self.chunk_size * 32)
            # largest window end (binary search on characters) whose token count fits
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._count(text[pos:mid]) <= self.chunk_size:
                    lo = mid
                else:
                    hi = mid - 1
            cut = lo
            if cut < end:
                ws = max(text.rfind(" ", pos, cut), text.rfind("\n", pos, cut))
                if ws > pos:
                    cut = ws
            stop = cut
            while stop > pos and text[stop - 1].isspace():
                stop -= 1
            out.append((pos, max(stop, pos + 1)))
            pos = cut
        return out
