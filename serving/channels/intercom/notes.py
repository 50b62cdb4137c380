"""What the channel posts in Intercom: internal draft notes and customer replies (escaped HTML, safe links)."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from citedesk.core.text import (
    URL,
    procedure_steps,
    split_complete_sentences,
    strip_markers,
)
from citedesk.core.types import Decision, reason_text
from citedesk.serving.answer.schemas import AnswerResponse

__all__ = ["allowed_link", "draft_ref", "format_customer_reply", "format_note"]


def allowed_link(url: str | None, domains: Sequence[str]) -> bool:
    """True when ``url`` is http(s) on one of ``domains`` (or a subdomain of one)."""
    if not url or not domains:
        return False
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme not in {"http", "https"} or not host or parts.username or parts.password:
        return False
    return any(host == d or host.endswith("." + d) for d in domains)




def _defang(text: str, domains: Sequence[str]) -> str:
    """Make URLs outside ``domains`` non-clickable: ``hxxps://evil[.]com/x``."""
    def repl(m: re.Match[str]) -> str:
        url = m.group(0)
        probe = url if "://" in url else "http://" + url
        if allowed_link(probe, domains):
            return url
        return re.sub(r"(?i)^http", "hxxp", url).replace(".", "[.]")
    return URL.sub(repl, text)


def _text(value: str, domains: Sequence[str]) -> str:
    """Escaped, defanged text for an HTML note."""
    return html.escape(_defang(value, domains), quote=True)


def _source_line(title: str, url: str | None, domains: Sequence[str]) -> str:
    if allowed_link(url, domains):
        return f'<a href="{html.escape(url or "", quote=True)}">{_text(title, domains)}</a>'
    return _text(title, domains)


def _answer_html(answer: str, domains: Sequence[str]) -> str:
    """The answer's sentences as paragraphs, a procedure said on one line ("To stop a DB instance: Sign in …; Choose
    Stop. [1]", :func:`~citedesk.core.text.procedure_steps`) as its lead and an ordered list of its steps."""
    sentences, _ = split_complete_sentences(answer.strip() + "\n")
    out: list[str] = []
    para: list[str] = []
    for sentence in sentences:
        steps = procedure_steps(sentence)
        if steps is None:
            para.append(_text(sentence, domains))
            continue
        if para:
            out.append(f"<p>{' '.join(para)}</p>")
            para = []
        lead, items = steps
        out.append(f"<p>{_text(lead, domains)}:</p><ol>" + "".join(f"<li>{_text(i, domains)}</li>" for i in items)
                   + "</ol>")
    if para:
        out.append(f"<p>{' '.join(para)}</p>")
    return "".join(out)


def draft_ref(workspace: str, key: str) -> str:
    """Token written into a note to find it again (``cd-`` + 12 hex of sha256 of workspace and key)."""
    return "cd-" + hashlib.sha256(f"{workspace}|{key}".encode()).hexdigest()[:12]


def format_note(response: AnswerResponse, domains: Sequence[str], ref: str) -> str:
    """The internal note for an answer or an escalation (Intercom note HTML: ``p``, ``b``, ``a``, ``ol``/``li`` only).

    Args:
        response: the answer pipeline's response.
        domains: help-center hosts (``intercom.drafts.help_center_domains``): only their links are kept.
        ref: the draft's ref token (last line; used to reconcile retried posts).

    Returns:
        HTML: for an answer, the confidence, the short answer when there is one, the answer (a procedure's steps as
        an ordered list) and its sources. Never an ``img``; ``a`` only to help-center domains; all text escaped.
    """
    if response.decision == Decision.ESCALATE:
        why = reason_text(response.reason)
        lines = [f"<p><b>citedesk: needs a human</b> — {_text(response.reason, domains)}: {_text(why, domains)}.</p>"]
        if response.handoff_summary:
            lines.append(f"<p><b>Handoff:</b> {_text(response.handoff_summary, domains)}</p>")
        titles = list(dict.fromkeys((h.title, h.url) for h in response.hits[:3]))
        if titles:
            lines.append("<p><b>Closest articles:</b> "
                         + "; ".join(_source_line(t, u, domains) for t, u in titles) + "</p>")
    else:
        lines = [(f"<p><b>citedesk draft</b> — confidence {response.confidence:.2f} "
                  f"({_text(response.confidence_kind, domains)})</p>")]
        if response.short_answer:  # the asked value at a glance (serving/answer/short_answer.py)
            lines.append(f"<p><b>Short answer:</b> {_text(response.short_answer, domains)}</p>")
        lines.append(_answer_html(response.answer, domains))
        if response.citations:
            lines.append("<p><b>Sources</b></p>")
            for c in response.citations:
                quote = c.quote if len(c.quote) <= 240 else c.quote[:239] + "…"
                lines.append(f"<p>[{c.marker}] {_source_line(c.title, c.url, domains)} — "
                             f"“{_text(quote, domains)}” (revision {_text(c.content_hash[:12], domains)})</p>")
    lines.append(f"<p>ref {ref}</p>")
    return "".join(lines)


def format_customer_reply(response: AnswerResponse, domains: Sequence[str]) -> str:
    """A customer-facing reply for an answer: the text without ``[n]`` markers, then its sources.

    Raises:
        ValueError: ``response`` is an escalation (escalations are never sent to the customer).
    """
    if response.decision != Decision.ANSWER:
        raise ValueError("only answers are sent to customers")
    body = _answer_html(strip_markers(response.answer), domains)
    sources = list(dict.fromkeys((c.title, c.url) for c in response.citations))
    if sources:
        body += "<p>Sources: " + "; ".join(_source_line(t, u, domains) for t, u in sources) + "</p>"
    return body
