"""What a reader of a page does not see: the visibility rules of HTML cleaning (tags, attributes, inline and
embedded CSS, hiding utility classes).

Project-specific on purpose (help-center pages hide text for screen readers, A/B variants and collapsed
widgets); :mod:`citedesk.ingest.clean` asks :class:`Visibility` about each element before rendering it. Elements
are parsed HTML elements with ``name`` and ``attrs`` (bs4 ``Tag`` objects; this module needs no bs4 import).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

__all__ = ["Element", "Visibility", "hidden_selectors"]


class Element(Protocol):
    """A parsed HTML element: its tag name and its attributes (``class`` may be a list)."""

    name: str
    attrs: dict[str, Any]


_DROP_TAGS = frozenset(
    {
        "script", "style", "noscript", "template", "iframe", "frame", "frameset", "object",
        "embed", "applet", "svg", "canvas", "head", "title", "meta", "link", "base",
        "input", "button", "select", "option", "optgroup", "textarea", "datalist", "output",
        "progress", "meter", "keygen", "img", "picture", "source", "track", "audio", "video",
        "map", "area", "param",
    }
)  # fmt: skip
_HIDING_CLASSES = frozenset(
    {
        "hidden", "hide", "is-hidden", "u-hidden", "sr-only", "visually-hidden", "visuallyhidden",
        "screen-reader-text", "screen-reader-only", "d-none", "invisible", "display-none",
    }
)  # fmt: skip
# Responsive utility classes that make a "hidden"/"d-none" element visible again on some screens.
_SHOWING_CLASS_RE = re.compile(
    r"^(?:[a-z0-9-]+:(?:block|inline|inline-block|flex|inline-flex|grid|inline-grid|table|contents)"
    r"|d-(?:sm|md|lg|xl|xxl)-(?:block|inline|inline-block|flex|inline-flex|grid|table))$"
)
_WHITE_RE = re.compile(
    r"^(?:#fff(?:f|fff(?:ff)?)?|white|rgba?\(255,255,255(?:,(?:1|1\.0*|0?\.\d+|100%))?\)"
    r"|hsla?\(0,0%,100%(?:,[\d.%]+)?\))(?:!important)?$"
)
_ZERO_RE = re.compile(r"^[-+]?(?:0+\.?0*|\.0+)(?:px|em|rem|pt|%|vw|vh|ex|ch)?(?:!important)?$")
_OFFSCREEN_RE = re.compile(r"^-(?:9\d\d|[1-9]\d{3,})(?:\.\d*)?(?:px|em|rem|pt|%|vw|vh)?(?:!important)?$")
_TINY_RE = re.compile(r"^(?:0|1)(?:\.0*)?(?:px)?(?:!important)?$")
_CLIP_RE = re.compile(r"^(?:rect\((?:0|1)(?:px)?,?(?:0|1)(?:px)?,?(?:0|1)(?:px)?,?(?:0|1)(?:px)?\)|inset\(50%\))")


def _style_hides(style: str) -> bool:
    """True when an inline style (or one CSS declaration block) makes its element invisible."""
    decls: dict[str, str] = {}
    for part in style.lower().split(";"):
        name, sep, value = part.partition(":")
        if sep:
            decls[name.strip()] = value.replace(" ", "").replace("\t", "").replace("\n", "").strip()
    if not decls:
        return False
    if decls.get("display", "").startswith("none"):
        return True
    if decls.get("visibility", "").startswith(("hidden", "collapse")):
        return True
    for prop in ("opacity", "font-size", "max-height", "max-width", "line-height"):
        if prop in decls and _ZERO_RE.match(decls[prop]):
            if prop in ("opacity", "font-size") or decls.get("overflow", "").startswith("hidden"):
                return True
    color = decls.get("color")
    if color and _WHITE_RE.match(color) and "background" not in decls and "background-color" not in decls:
        return True
    for prop in ("left", "top", "right", "text-indent", "margin-left", "margin-top"):
        if prop in decls and _OFFSCREEN_RE.match(decls[prop]):
            return True
    if decls.get("overflow", "").startswith("hidden") and (
        _TINY_RE.match(decls.get("width", "x")) or _TINY_RE.match(decls.get("height", "x"))
    ):
        return True
    if _CLIP_RE.match(decls.get("clip", "")) or _CLIP_RE.match(decls.get("clip-path", "")):
        return True
    if decls.get("transform", "").startswith("scale(0)"):
        return True
    return False


_CSS_COMMENT_RE = re.compile(r"/\*.*?\*/", re.S)
_CSS_RULE_RE = re.compile(r"([^{}@]+)\{([^{}]*)\}")
_SIMPLE_SELECTOR_RE = re.compile(r"^(?:[a-z][a-z0-9]*)?([.#])([A-Za-z_][\w-]*)$")


def hidden_selectors(css: str) -> tuple[set[str], set[str]]:
    """Classes and ids that simple top-level rules of a style sheet hide.

    Only selectors of the form ``.cls``, ``#id``, ``tag.cls`` are understood; rules nested in
    at-rules (``@media``, ``@supports``...) are skipped since they may only apply to some screens.
    """
    classes: set[str] = set()
    ids: set[str] = set()
    css = _CSS_COMMENT_RE.sub("", css[:200_000])
    top: list[str] = []  # top-level text, at-rules (and their blocks) cut out
    depth = 0
    start = 0
    in_at = False
    for m in re.finditer(r"[{};@]", css):
        ch = m.group()
        if ch == "@":
            if depth == 0 and not in_at:
                top.append(css[start : m.start()])
                in_at = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
            if depth == 0 and in_at:
                in_at = False
                start = m.end()
        elif depth == 0 and in_at:  # ";" ends a block-less at-rule (@import ...;)
            in_at = False
            start = m.end()
    if not in_at:
        top.append(css[start:])
    for m in _CSS_RULE_RE.finditer("".join(top)):
        if not _style_hides(m.group(2)):
            continue
        for sel in m.group(1).split(","):
            sm = _SIMPLE_SELECTOR_RE.match(sel.strip())
            if sm:
                (classes if sm.group(1) == "." else ids).add(sm.group(2))
    return classes, ids


def _class_list(tag: Element) -> list[str]:
    cls = tag.attrs.get("class")
    if not cls:
        return []
    if isinstance(cls, str):
        return cls.split()
    return [c for c in cls if isinstance(c, str)]


class Visibility:
    """Decides whether an element is hidden, given the classes and ids an embedded style sheet hides.

    Args:
        hidden_classes / hidden_ids: from :func:`hidden_selectors` of the page's ``<style>`` blocks.
    """

    def __init__(self, hidden_classes: set[str], hidden_ids: set[str]) -> None:
        self.hidden_classes = hidden_classes
        self.hidden_ids = hidden_ids

    def hidden(self, tag: Element) -> bool:
        """True when a reader of the page would not see ``tag`` (nor anything inside it)."""
        name = tag.name
        if name in _DROP_TAGS:
            return True
        attrs = tag.attrs
        if name == "dialog" and "open" not in attrs:
            return True
        if not attrs:
            return False
        if "hidden" in attrs:
            return True
        aria = attrs.get("aria-hidden")
        if isinstance(aria, str) and aria.strip().lower() == "true":
            return True
        typ = attrs.get("type")
        if isinstance(typ, str) and typ.strip().lower() == "hidden":
            return True
        style = attrs.get("style")
        if isinstance(style, str) and style and _style_hides(style):
            return True
        classes = _class_list(tag)
        if classes:
            lowered = [c.lower() for c in classes]
            if (not _HIDING_CLASSES.isdisjoint(lowered) or not self.hidden_classes.isdisjoint(classes)) and not any(
                _SHOWING_CLASS_RE.match(c) for c in lowered
            ):
                return True
        tid = attrs.get("id")
        if self.hidden_ids and isinstance(tid, str) and tid in self.hidden_ids:
            return True
        return False
