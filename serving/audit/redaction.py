"""The personal-data rule applied before anything is stored: named regexes whose matches become ``[name]``."""

from __future__ import annotations

import re


class Redactor:
    """Personal-data rule: every match of a named regex becomes ``[name]``.

    Args:
        patterns: name → regex, applied in order (put broader patterns last). Empty disables redaction.

    Raises:
        ValueError: a pattern does not compile (message names it).
    """

    def __init__(self, patterns: dict[str, str]) -> None:
        self.rules: list[tuple[str, re.Pattern]] = []
        for name, pattern in patterns.items():
            try:
                self.rules.append((name, re.compile(pattern)))
            except re.error as exc:
                raise ValueError(f"audit.redact[{name!r}] is not a valid regex: {exc}") from exc

    def __call__(self, text: str | None) -> tuple[str | None, int]:
        """Returns ``(redacted text, number of spans replaced)``."""
        if not text:
            return text, 0
        total = 0
        for name, rx in self.rules:
            text, n = rx.subn(f"[{name}]", text)
            total += n
        return text, total
