"""Speakable text: answers written for the ear (no markdown, URLs, markers or tables; numbers said as words)."""

from __future__ import annotations

import re

from citedesk.core.text import HTML_TAG, MARKER_LIST, MD_IMAGE, MD_LINK, URL

__all__ = ["speakable"]


_URL = re.compile(r"\(?" + URL.pattern + r"\)?", re.IGNORECASE)  # with the parentheses around it
_EMAIL = re.compile(r"\b([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)\b")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$|^\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$")
_EMPHASIS = re.compile(r"[*_`#>~]+")

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b")
_AMPM = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s?m\b\.?", re.IGNORECASE)
_CLOCK = re.compile(r"(?<![\d:.])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")
_VERSION = re.compile(r"(?<![\w.])[vV](\d+(?:\.\d+)*)\b")
_PERCENT = re.compile(r"(\d+(?:[.,]\d+)?)\s*%")
_CURRENCY = re.compile(r"([$€£])\s?(\d+(?:,\d{3})*(?:\.\d+)?)(\s?(?:[kKmM]|million|billion)\b)?")
_RANGE = re.compile(r"(\d)\s*[-–—]\s*(?=\d)")
_TIMES = re.compile(r"\b(\d+(?:\.\d+)?)x\b")

_CURRENCY_WORDS = {"$": "dollar", "€": "euro", "£": "pound"}
_UNITS: dict[str, str] = {
    "B": "byte", "KB": "kilobyte", "MB": "megabyte", "GB": "gigabyte", "TB": "terabyte", "PB": "petabyte",
    "KiB": "kibibyte", "MiB": "mebibyte", "GiB": "gibibyte", "TiB": "tebibyte", "PiB": "pebibyte",
    "kbps": "kilobit per second", "Kbps": "kilobit per second", "Mbps": "megabit per second",
    "Gbps": "gigabit per second", "KB/s": "kilobyte per second", "MB/s": "megabyte per second",
    "GB/s": "gigabyte per second", "ms": "millisecond", "µs": "microsecond", "us": "microsecond",
    "ns": "nanosecond", "s": "second", "sec": "second", "secs": "second", "min": "minute", "mins": "minute",
    "h": "hour", "hr": "hour", "hrs": "hour", "GHz": "gigahertz", "MHz": "megahertz", "kHz": "kilohertz",
    "vCPU": "virtual CPU", "vCPUs": "virtual CPU", "RCU": "read capacity unit", "RCUs": "read capacity unit",
    "WCU": "write capacity unit", "WCUs": "write capacity unit", "TPS": "transaction per second",
    "RPS": "request per second", "km": "kilometer", "kg": "kilogram",
}
# longest first so "KB/s" wins over "KB" and "ms" over "s"
_UNIT_RE = re.compile(
    r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?)\s?("
    + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r")(?![\w/])")
_ABBREVIATIONS = [
    (re.compile(r"\be\.g\.,?", re.IGNORECASE), "for example,"),
    (re.compile(r"\bi\.e\.,?", re.IGNORECASE), "that is,"),
    (re.compile(r"\betc\.(?=\s+[a-z])"), "and so on"),
    (re.compile(r"\betc\."), "and so on."),
    (re.compile(r"\bvs\.?(?=\s)"), "versus"),
    (re.compile(r"\bapprox\.(?=\s)"), "approximately"),
    (re.compile(r"\s&\s"), " and "),
    (re.compile(r"\b24/7\b"), "around the clock"),
    (re.compile(r"\band/or\b"), "and or"),
]


def _plural(unit: str, number: str) -> str:
    if number == "1":
        return unit
    head, sep, tail = unit.partition(" per ")
    return (head + "s" + sep + tail) if sep else unit + "s"


def _spoken_time(hour: int, minute: int, meridiem: str | None) -> str:
    if meridiem is None:  # 24-hour clock
        if hour == 0 and minute == 0:
            return "midnight"
        if hour == 12 and minute == 0:
            return "noon"
        meridiem = "a" if hour < 12 else "p"
        hour = hour % 12 or 12
    clock = f"{hour}" if minute == 0 else f"{hour}:{minute:02d}"
    return f"{clock} {meridiem.lower()}.m."


def _spoken_date(m: re.Match) -> str:
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return f"{_MONTHS[month - 1]} {day}, {year}"


def _spoken_currency(m: re.Match) -> str:
    word = _CURRENCY_WORDS[m.group(1)]
    amount, scale = m.group(2), (m.group(3) or "").strip()
    scale = {"k": "thousand", "m": "million"}.get(scale.lower(), scale)
    if scale:
        return f"{amount} {scale} {word}s"
    return f"{amount} {word if amount == '1' else word + 's'}"


def speakable(text: str) -> str:
    """Text as a TTS engine should read it.

    Removes markdown (emphasis, headings, code ticks, images; links keep their text), URLs, HTML tags,
    table rows and bracket citation markers (``[1]``, ``[1, 2]``); says units, times, dates, versions,
    percentages, currencies and ranges: ``"400 KB"`` → ``"400 kilobytes"``, ``"9am-5pm"`` →
    ``"9 a.m. to 5 p.m."``, ``"17:30"`` → ``"5:30 p.m."``, ``"2024-03-05"`` → ``"March 5, 2024"``,
    ``"v2.1"`` → ``"version 2 point 1"``, ``"50%"`` → ``"50 percent"``, ``"$5"`` → ``"5 dollars"``.

    Args:
        text: one written sentence (or a few), markers allowed.

    Returns:
        One line of plain text ending in punctuation, or ``""`` when nothing speakable is left.
    """
    lines = [line for line in text.splitlines() if not _TABLE_ROW.match(line)]
    s = " ".join(lines)
    s = MD_IMAGE.sub("", s)
    s = MD_LINK.sub(r"\1", s)
    s = _URL.sub("", s)
    s = _EMAIL.sub(lambda m: f"{m.group(1)} at {m.group(2).replace('.', ' dot ')}", s)
    s = HTML_TAG.sub("", s)
    s = MARKER_LIST.sub("", s)
    s = _EMPHASIS.sub("", s)
    s = s.replace("|", ", ")
    for pattern, words in _ABBREVIATIONS:
        s = pattern.sub(words, s)
    s = _ISO_DATE.sub(_spoken_date, s)
    s = _AMPM.sub(lambda m: _spoken_time(int(m.group(1)), int(m.group(2) or 0), m.group(3)), s)
    s = _CLOCK.sub(lambda m: _spoken_time(int(m.group(1)), int(m.group(2)), None), s)
    s = _VERSION.sub(lambda m: "version " + m.group(1).replace(".", " point "), s)
    s = _PERCENT.sub(r"\1 percent", s)
    s = _CURRENCY.sub(_spoken_currency, s)
    s = _UNIT_RE.sub(lambda m: f"{m.group(1)} {_plural(_UNITS[m.group(2)], m.group(1))}", s)
    s = _TIMES.sub(r"\1 times", s)
    s = re.sub(r"(\.m\.)\s*[-–—]\s*(?=\d)", r"\1 to ", s)  # "9 a.m.-5 p.m."
    s = _RANGE.sub(r"\1 to ", s)
    s = re.sub(r"\(\s*\)", "", s)
    s = re.sub(r"(?:,?\s+(?:or|and|at|see|visit|in))+\s*(?=[.,;!?)]|$)", "", s)  # left by a removed URL
    s = re.sub(r"\s+([,.;:!?])", r"\1", s)
    s = re.sub(r"([,;:])(?=[^\s\d])", r"\1 ", s)
    s = re.sub(r"\s+", " ", s).strip(" ,;")
    s = re.sub(r"\.(\s*\.)+$", ".", s)
    if not re.search(r"\w", s):
        return ""
    if s[-1] not in ".!?":
        s = s.rstrip(":") + "."
    return s
