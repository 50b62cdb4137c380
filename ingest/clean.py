"""Article bodies (HTML, markdown, plain text) → clean canonical text.

The clean text is what citedesk chunks, embeds, shows and quotes (citations carry character
offsets into it), so it has to be deterministic and free of anything a reader of the page would
not see. It is a light, markdown-like plain text:

* headings ``h1``–``h6`` → ``#``..``######`` + text, alone on their line, a blank line around;
* list items → ``- item`` / ``1. item`` lines, nested lists indented two spaces per level;
* table rows → one line each, cells joined by ``" | "``; nested tables are flattened into the
  enclosing cell;
* ``<pre>`` blocks → their lines verbatim between fence lines of three (or more) backticks, so a
  ``# comment`` line of a shell snippet is never taken for a heading by
  :class:`citedesk.ingest.chunk.Chunker`;
* paragraphs/blockquotes are separated by one blank line, ``div``/``br``/``dt``/``dd`` by a line
  break; at most one blank line anywhere;
* a non-heading line that would read as a heading or a fence (``# of seats``, three backticks)
  gets a leading backslash (``\\# of seats``);
* links keep their text (URLs are dropped); images are dropped entirely, alt text included
  (alt text is not visible on the page, and AWS-style alt texts duplicate the caption);
* a table of contents — a list nesting another list, every item of which is one link and nothing else — is
  navigation, not content, and is dropped (a flat list of links is kept: "Related actions", the API calls a
  service logs);
* whitespace is collapsed, entities are unescaped, zero-width/bidi/control characters are
  removed, the result is NFC-normalised.

Invisible content is dropped with its whole subtree: ``script``/``style``/``noscript``/
``template``/``iframe``/``object``/``embed``/``svg``/``canvas``/``head``/media/form controls,
closed ``dialog``, comments, and elements hidden by the ``hidden`` attribute, ``aria-hidden="true"``, an inline
style (``display:none``, ``visibility:hidden``, ``opacity:0``, ``font-size:0``, white text with no
background on the same element, off-screen ``left``/``top``/``right``/``text-indent`` ≤ -900,
1px/0px clipped boxes), a hiding class (``hidden``, ``sr-only``, ``visually-hidden``, ``d-none``,
...; not when a responsive class such as ``md:block`` / ``d-md-block`` shows it again) or a simple
``.class`` / ``#id`` rule of an embedded ``<style>`` sheet that hides it (rules inside ``@media``
blocks are ignored).

This is the only module that imports ``bs4`` and ``markdown_it``.
"""

from __future__ import annotations

import html as _html
import logging
import re
import unicodedata
import warnings
from typing import Literal

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning
from bs4.element import NavigableString, PreformattedString, Tag
from markdown_it import MarkdownIt

from citedesk.core.errors import ContentError
from citedesk.ingest.visibility import Visibility, hidden_selectors

# Content is parsed as HTML on purpose, whatever it looks like; these bs4 hints are noise here.
warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)

_log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_CHARS", "html_to_text", "markdown_to_text", "text_to_text", "to_clean_text"]

DEFAULT_MAX_CHARS = 2_000_000
"""Default bound of the clean text, characters (same as ``ChunkSettings.max_article_chars``)."""

_INPUT_FACTOR = 10
"""Raw input beyond ``max_chars * _INPUT_FACTOR`` characters is cut before parsing (time bound)."""

# --------------------------------------------------------------------------------------------
# character hygiene

# Removed everywhere: C0/C1 controls except tab/newline/CR/FF/VT (those become whitespace),
# zero-width and bidi formatting characters, soft hyphen, BOM, noncharacters, lone surrogates.
_JUNK_RE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\ufffd-\uffff\ud800-\udfff]"
)
# Line breaks other than "\n" that str.splitlines() would honour.
_LINEBREAK_RE = re.compile("\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_WS_RE = re.compile(r"\s+")
_EDGE_PIPES_RE = re.compile(r"^(?:\|\s*)+|(?:\s*\|)+$")
_NEEDS_ESCAPE_RE = re.compile(r"^(?:#{1,6}(?:\s|$)|```|~~~)")
_FRONT_MATTER_RE = re.compile(r"\A\ufeff?---[ \t]*\r?\n(?:.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)


def _collapse(text: str) -> str:
    """One inline line: junk removed, whitespace runs → one space, stripped."""
    return _WS_RE.sub(" ", _JUNK_RE.sub("", text)).strip()


def _finish(lines: list[str], max_chars: int) -> str:
    """Join output lines, squeeze blank lines, NFC-normalise and truncate at a line boundary."""
    out: list[str] = []
    for line in lines:
        if line == "":
            if out and out[-1] != "":
                out.append("")
        else:
            out.append(line)
    while out and out[-1] == "":
        out.pop()
    text = unicodedata.normalize("NFC", "\n".join(out))
    return _truncate(text, max_chars)


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    nl = cut.rfind("\n")
    if nl > 0:
        return cut[:nl].rstrip()
    sp = cut.rfind(" ")
    return (cut[:sp] if sp > 0 else cut[:max_chars]).rstrip()


def _check(value: object, what: str, max_chars: int) -> None:
    if not isinstance(value, str):
        raise ContentError(f"{what} must be a str, got {type(value).__name__}")
    if not isinstance(max_chars, int) or max_chars < 1:
        raise ContentError(f"max_chars must be a positive int, got {max_chars!r}")


# --------------------------------------------------------------------------------------------
# HTML → text renderer

_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
     "track", "wbr", "keygen"}
)  # fmt: skip
_PARA_TAGS = frozenset(
    {"p", "blockquote", "figure", "figcaption", "address", "hr", "fieldset", "details", "dl",
     "center", "legend", "article", "section", "main", "aside", "header", "footer", "nav"}
)  # fmt: skip
_LINE_TAGS = frozenset(
    {"div", "dt", "dd", "summary", "caption", "form", "hgroup", "menu", "tr", "li",
     "thead", "tbody", "tfoot", "body", "html", "search", "colgroup", "col"}
)  # fmt: skip
_BACKTICK_FENCE_RE = re.compile(r"\s*(`{3,})")
_MAX_INDENT = 8  # list levels indented; deeper levels share the last indentation
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


class _Renderer:
    """Streams a parsed tree into canonical lines (iterative walk, no recursion)."""

    def __init__(self, max_chars: int, hidden_classes: set[str], hidden_ids: set[str]) -> None:
        self.lines: list[str] = []
        self.size = 0
        self.limit = max_chars + 1024
        self.cur: list[str] = []
        self.cur_prefix = ""
        self.pending = 0  # 0 none, 1 line break, 2 blank line, before the next content
        self.lists: list[list] = []  # [ordered, next_number]
        self.bullet: str | None = None  # marker for the next line of the current <li>
        self.cell_depth = 0
        self.rows: list[int] = []  # cells seen in each open <tr>
        self.heading: list[str] | None = None
        self.heading_level = 0
        self.pre: list[str] | None = None
        self.pre_depth = 0
        self.row_line = False  # the current line holds table cells
        self.visibility = Visibility(hidden_classes, hidden_ids)

    # -- output primitives ----------------------------------------------------------------
    def brk(self, n: int) -> None:
        if self.cell_depth or self.heading is not None:
            self._inline(" ")
            return
        if self.lists:
            n = min(n, 1)
        if n > self.pending:
            self.pending = n

    def _inline(self, s: str) -> None:
        if self.heading is not None:
            self.heading.append(s)
        else:
            self.cur.append(s)

    def _apply_pending(self) -> None:
        if self.pending:
            self.flush()
            if self.pending == 2 and self.lines and self.lines[-1] != "":
                self.lines.append("")
            self.pending = 0

    def _prefix(self) -> str:
        depth = min(len(self.lists), _MAX_INDENT)
        if self.bullet is not None:
            p = "  " * max(depth - 1, 0) + self.bullet
            self.bullet = None
            return p
        return "  " * depth

    def write(self, s: str) -> None:
        if self.heading is not None:
            self.heading.append(s)
            return
        if not self.cur:
            if s.isspace():
                return
            self._apply_pending()
            self.cur_prefix = self._prefix()
        elif self.pending:
            if s.isspace():
                return
            self._apply_pending()
            self.cur_prefix = self._prefix()
        self.cur.append(s)

    def emit_line(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line) + 1

    def flush(self) -> None:
        if not self.cur:
            return
        line = _collapse("".join(self.cur))
        self.cur = []
        if self.row_line:
            self.row_line = False
            line = _EDGE_PIPES_RE.sub("", line)
        if not line:
            return
        prefix = self.cur_prefix
        if not prefix.strip():  # "- # x" cannot be read as a heading or fence; "# x" / "  ```" can
            m = _NEEDS_ESCAPE_RE.match(line)
            if m and (not prefix or not m.group().startswith("#")):
                line = "\\" + line
        self.emit_line(prefix + line)

    # -- element handlers -----------------------------------------------------------------
    def enter(self, tag: Tag) -> None:
        name = tag.name
        if self.pre is not None:
            if name == "br":
                self.pre.append("\n")
            elif name in ("p", "div", "li", "tr") and self.pre and not self.pre[-1].endswith("\n"):
                self.pre.append("\n")
            return
        level = _HEADINGS.get(name)
        if level is not None:
            if self.heading is None and not self.cell_depth and not self.lists:
                self.brk(2)
                self.heading = []
                self.heading_level = level
            else:
                self.brk(1)
            return
        if name in ("ul", "ol"):
            self.brk(2)
            start = 1
            if name == "ol":
                try:
                    start = int(str(tag.attrs.get("start", "1")).strip())
                except ValueError:
                    start = 1
            self.lists.append([name == "ol", start])
            return
        if name == "li":
            self.brk(1)
            if self.cell_depth or self.heading is not None:
                return
            if self.lists:
                ordered, number = self.lists[-1]
                if ordered:
                    try:
                        number = int(str(tag.attrs.get("value", number)).strip())
                    except ValueError:
                        pass
                    self.bullet = f"{number}. "
                    self.lists[-1][1] = number + 1
                else:
                    self.bullet = "- "
            else:
                self.bullet = "- "
            return
        if name == "pre":
            if self.cell_depth or self.heading is not None:
                self.brk(1)
                return
            self.brk(2)
            self.pre = []
            self.pre_depth = 1
            return
        if name == "table":
            self.brk(2)
            return
        if name == "tr":
            if self.cell_depth:
                self._inline(" ")
            else:
                self.brk(1)
            self.rows.append(0)
            return
        if name in ("td", "th"):
            if self.rows:
                if self.rows[-1]:
                    self.write(" | ")
                    self.row_line = True
                elif self.cell_depth:
                    self._inline(" ")
                self.rows[-1] += 1
            else:
                self.write(" ")
            self.cell_depth += 1
            return
        if name == "br":
            self.brk(1)
            return
        if name in _PARA_TAGS:
            self.brk(2)
        elif name in _LINE_TAGS:
            self.brk(1)

    def exit(self, tag: Tag) -> None:
        name = tag.name
        if self.pre is not None:
            if name == "pre":
                self.pre_depth -= 1
                if self.pre_depth <= 0:
                    self._end_pre()
            return
        level = _HEADINGS.get(name)
        if level is not None:
            if self.heading is not None and level == self.heading_level:
                text = _collapse("".join(self.heading))
                self.heading = None
                if text:
                    self.pending = 2
                    self._apply_pending()
                    self.emit_line("#" * level + " " + text)
                    self.pending = 2
                else:
                    self.brk(2)
            else:
                self.brk(1)
            return
        if name in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self.bullet = None
            self.brk(2)
            return
        if name == "li":
            self.bullet = None
            self.brk(1)
            return
        if name == "tr":
            if self.rows:
                self.rows.pop()
            if not self.cell_depth:
                self.brk(1)
            return
        if name in ("td", "th"):
            if self.cell_depth:
                self.cell_depth -= 1
            return
        if name == "table":
            self.brk(2)
            return
        if name in _PARA_TAGS:
            self.brk(2)
        elif name in _LINE_TAGS:
            self.brk(1)

    def _end_pre(self) -> None:
        raw = "".join(self.pre or [])
        self.pre = None
        raw = _JUNK_RE.sub("", _LINEBREAK_RE.sub("\n", raw))
        code = [ln.rstrip() for ln in raw.split("\n")]
        while code and not code[0]:
            code.pop(0)
        while code and not code[-1]:
            code.pop()
        if code:
            longest = max((len(m.group(1)) for m in map(_BACKTICK_FENCE_RE.match, code) if m), default=0)
            fence = "`" * max(3, longest + 1)
            self.pending = max(self.pending, 1 if self.lists else 2)
            self._apply_pending()
            indent = "  " * min(len(self.lists), _MAX_INDENT)
            self.emit_line(indent + fence)
            for ln in code:
                self.emit_line(indent + ln if ln else "")
            self.emit_line(indent + fence)
        self.brk(2)

    def text(self, s: str) -> None:
        if self.pre is not None:
            self.pre.append(s)
        else:
            self.write(s)

    # -- walk -----------------------------------------------------------------------------
    def walk(self, root: Tag) -> None:
        stack: list[tuple[object, bool]] = [(root, True)]
        pop = stack.pop
        push = stack.append
        while stack:
            node, entering = pop()
            if not entering:
                self.exit(node)  # type: ignore[arg-type]
                continue
            if isinstance(node, Tag):
                if node is not root and self.visibility.hidden(node):
                    if node.name in _VOID_TAGS and node.contents:
                        # A void element has no content of its own; children here are what a
                        # parser that does not know it is void (lxml: <embed>) nested under it.
                        for child in reversed(node.contents):
                            push((child, True))
                    continue
                if node.name == "pre" and self.pre is not None:
                    self.pre_depth += 1
                else:
                    self.enter(node)
                push((node, False))
                children = node.contents
                for child in reversed(children):
                    push((child, True))
            elif isinstance(node, NavigableString):
                if isinstance(node, PreformattedString):
                    continue  # comments, CDATA, doctype, processing instructions
                self.text(str(node))
                if self.size > self.limit:
                    break
        if self.pre is not None:
            self._end_pre()
        if self.heading is not None:
            text = _collapse("".join(self.heading))
            self.heading = None
            if text:
                self.pending = 2
                self._apply_pending()
                self.emit_line("#" * self.heading_level + " " + text)
        self.flush()


_XML_DECL_RE = re.compile(r"\A\s*<\?xml[^>]*>")


def _link_only(item: Tag) -> bool:
    """Whether a list item says one link and nothing else (its nested lists aside; a ``<p>`` around it allowed)."""
    links = 0

    def only(node: Tag) -> bool:
        nonlocal links
        for child in node.children:
            if isinstance(child, NavigableString):
                if isinstance(child, PreformattedString) or not child.strip():
                    continue
                return False
            if not isinstance(child, Tag) or child.name in ("ul", "ol"):
                continue
            if child.name == "a" and child.get("href") and child.get_text(strip=True):
                links += 1
            elif child.name != "p" or not only(child):
                return False
        return True

    return only(item) and links == 1


def _drop_tables_of_contents(soup: BeautifulSoup) -> None:
    """Remove every outermost list that nests another list and whose items are each one link and nothing else (a
    guide's table of contents)."""
    for lst in soup.find_all(["ul", "ol"]):
        if lst.decomposed or lst.find_parent(["ul", "ol"]) is not None or lst.find(["ul", "ol"]) is None:
            continue
        items = lst.find_all("li")
        if len(items) >= 2 and all(_link_only(li) for li in items):
            lst.decompose()


def _render(markup: str, parser: str, max_chars: int) -> str:
    """Parse with ``parser`` and render the visible text."""
    soup = BeautifulSoup(markup, parser)
    _drop_tables_of_contents(soup)
    classes: set[str] = set()
    ids: set[str] = set()
    for style in soup.find_all("style", limit=50):
        c, i = hidden_selectors(style.get_text())
        classes |= c
        ids |= i
    renderer = _Renderer(max_chars, classes, ids)
    renderer.walk(soup)
    return _finish(renderer.lines, max_chars)


def html_to_text(html: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Convert an HTML article body to clean canonical text.

    See the module docstring for the exact output format and the visibility rules. Parsing
    uses beautifulsoup4 with lxml (html.parser if lxml fails); malformed markup (unclosed tags,
    invalid nesting, stray end tags, binary junk) never raises.

    Args:
        html: the HTML body (a fragment or a full document).
        max_chars: maximum length of the result, characters. Longer text is cut at the last
            line break before the limit (at a space, or hard, when a single line is longer).
            Input beyond ``10 * max_chars`` characters is ignored before parsing.

    Returns:
        The clean text: ``"\\n"``-separated lines, no leading/trailing blank lines, at most one
        blank line in a row; ``""`` when nothing visible remains (or, logged as a warning, if
        both parsers failed unexpectedly: text is never recovered by naive tag stripping, which
        would leak hidden content).

    Raises:
        ContentError: if ``html`` is not a ``str`` (or ``max_chars`` is not a positive int).
    """
    _check(html, "html", max_chars)
    limit = max(max_chars * _INPUT_FACTOR, 100_000)
    if len(html) > limit:
        html = html[:limit]
    html = _JUNK_RE.sub("", html)
    if not html.strip():
        return ""
    if "<" not in html:  # no markup at all: one paragraph of text (as a browser shows it)
        line = _collapse(_html.unescape(html))
        return _finish(["\\" + line if _NEEDS_ESCAPE_RE.match(line) else line], max_chars)
    html = _XML_DECL_RE.sub("", html, count=1)
    for parser in ("lxml", "html.parser"):
        try:
            return _render(html, parser, max_chars)
        except Exception:  # noqa: BLE001 - must never raise on content; try the next parser
            _log.warning("html_to_text: %s parser/renderer failed", parser, exc_info=True)
    # Never fall back to a naive tag stripper: it would leak hidden text into prompts.
    return ""


_MD = MarkdownIt("commonmark", {"html": True}).enable("table")


def markdown_to_text(md: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Convert a markdown article body to clean canonical text.

    YAML front matter (``---`` ... ``---``/``...`` at the very top) is removed, the rest is
    rendered to HTML with markdown-it-py (CommonMark + GFM tables, raw HTML allowed) and passed
    to :func:`html_to_text`, so inline HTML gets the same visibility rules. Backslash escapes
    (``\\.``, ``\\(``, ``\\-``), ``+`` bullets, fenced code, ``<a name>`` anchors and image links
    of AWS-docs-style markdown come out as plain text (images are dropped).

    Args:
        md: the markdown body.
        max_chars: maximum length of the result, characters (see :func:`html_to_text`).

    Returns:
        The clean text (``""`` when nothing visible remains).

    Raises:
        ContentError: if ``md`` is not a ``str``.
    """
    _check(md, "md", max_chars)
    limit = max(max_chars * _INPUT_FACTOR, 100_000)
    if len(md) > limit:
        md = md[:limit]
    md = _JUNK_RE.sub("", md)
    md = _FRONT_MATTER_RE.sub("", md, count=1)
    if not md.strip():
        return ""
    try:
        rendered = _MD.render(md)
    except Exception:  # noqa: BLE001 - fall back to treating it as plain text
        return text_to_text(md, max_chars=max_chars)
    return html_to_text(rendered, max_chars=max_chars)


def text_to_text(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Normalise a plain-text body: same character hygiene and blank-line rules as the others.

    Lines are kept (a line starting with ``#`` stays a heading for the chunker); runs of spaces
    inside a line are collapsed, control/zero-width characters removed, the result truncated at
    a line boundary.

    Args:
        text: the plain-text body.
        max_chars: maximum length of the result, characters.

    Returns:
        The clean text.

    Raises:
        ContentError: if ``text`` is not a ``str``.
    """
    _check(text, "text", max_chars)
    limit = max(max_chars * _INPUT_FACTOR, 100_000)
    if len(text) > limit:
        text = text[:limit]
    text = _JUNK_RE.sub("", _LINEBREAK_RE.sub("\n", text))
    return _finish([_collapse(ln) for ln in text.split("\n")], max_chars)


def to_clean_text(
    body: str,
    body_format: Literal["html", "markdown", "text"],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> str:
    """Clean an article body according to its format.

    Args:
        body: raw body.
        body_format: ``"html"``, ``"markdown"`` or ``"text"`` (``core.types.BodyFormat``).
        max_chars: maximum length of the result, characters.

    Returns:
        The clean canonical text (see the module docstring).

    Raises:
        ContentError: if ``body`` is not a ``str`` or ``body_format`` is unknown.
    """
    if body_format == "html":
        return html_to_text(body, max_chars=max_chars)
    if body_format == "markdown":
        return markdown_to_text(body, max_chars=max_chars)
    if body_format == "text":
        return text_to_text(body, max_chars=max_chars)
    raise ContentError(f"unknown body_format {body_format!r}")
