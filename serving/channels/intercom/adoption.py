"""Draft adoption: what a teammate did with a chat draft — sent it as is, edited it, or did not use it.

The only module that imports ``rapidfuzz``. When a teammate replies in a conversation that got a draft note
(``conversation.admin.replied``), :func:`replies_to_drafts` pairs each posted draft with the first teammate reply
that answers the customer message it drafted for, and :func:`compare` scores the reply against the draft:

* ``similarity`` (kind ``word_indel_similarity``): rapidfuzz's normalised Indel similarity of the two word
  sequences, ``1 - (insertions + deletions) / (words in draft + words in reply)``; 1.0 for the same words.
* ``retained`` (kind ``draft_words_retained``): the share of the draft's words found in the reply in order
  (rapidfuzz's longest common subsequence ÷ draft words); 1.0 when the reply contains the whole draft.

Both ignore case, punctuation, ``[n]`` citation markers and URLs (the note's sources are links the agent may
keep or drop). ``sent_as_is`` needs ``similarity ≥ as_is_min`` (0.9 by default: a changed word or two in a
short answer), ``edited`` needs ``retained ≥ edited_min`` (0.5: at least half of the draft kept), anything
else is ``not_used``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

from rapidfuzz.distance import Indel, LCSseq

from citedesk.core.text import URL, strip_markers
from citedesk.serving.audit.models import RETAINED_KIND, SIMILARITY_KIND, AdoptionOutcome
from citedesk.serving.channels.intercom.notes import allowed_link
from citedesk.serving.channels.intercom.webhooks import Conversation, ConversationMessage

__all__ = ["RETAINED_KIND", "SIMILARITY_KIND", "Comparison", "ReplyMatch", "compare", "help_center_links",
           "replies_to_drafts", "words"]


_WORD = re.compile(r"\w+", re.UNICODE)

_REPLY_PART_TYPES = frozenset({"comment", "quick_reply", "close", "open", "assign_and_reopen"})
"""``part_type`` of teammate parts the customer sees and that can carry a reply's text."""


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` without ``[n]`` markers and URLs."""
    return _WORD.findall(URL.sub(" ", strip_markers(text)).lower())


@dataclass(frozen=True)
class Comparison:
    """A teammate's reply against the draft.

    Attributes:
        outcome: ``sent_as_is``, ``edited`` or ``not_used``.
        similarity: kind :data:`SIMILARITY_KIND`, in [0, 1].
        retained: kind :data:`RETAINED_KIND`, in [0, 1].
    """

    outcome: AdoptionOutcome
    similarity: float
    retained: float


def compare(draft: str, reply: str, *, as_is_min: float = 0.9, edited_min: float = 0.5) -> Comparison:
    """Score a reply (plain text) against a draft answer (with its ``[n]`` markers).

    Args:
        draft: the drafted answer.
        reply: the teammate's reply as plain text.
        as_is_min: minimum ``similarity`` for ``sent_as_is``.
        edited_min: minimum ``retained`` for ``edited``.

    Returns:
        The :class:`Comparison`. An empty draft or reply is ``not_used`` with both scores 0.
    """
    d, r = words(draft), words(reply)
    if not d or not r:
        return Comparison(AdoptionOutcome.NOT_USED, 0.0, 0.0)
    similarity = float(Indel.normalized_similarity(d, r))
    retained = LCSseq.similarity(d, r) / len(d)
    if similarity >= as_is_min:
        outcome = AdoptionOutcome.SENT_AS_IS
    elif retained >= edited_min:
        outcome = AdoptionOutcome.EDITED
    else:
        outcome = AdoptionOutcome.NOT_USED
    return Comparison(outcome, round(similarity, 4), round(retained, 4))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]

    def handle_data(self, data):
        self.text.append(data)


def help_center_links(body: str, domains: Sequence[str]) -> list[str]:
    """Links to the help center in a reply: ``<a href>`` targets and bare URLs of the text (webhook payloads of
    API 2.15+ carry plain text), only those on ``domains``; in order, without duplicates."""
    parser = _Links()
    parser.feed(body)
    found = parser.hrefs + [m.group(0).rstrip(".,;:!?)") for m in URL.finditer("".join(parser.text))]
    return list(dict.fromkeys(u for u in found if allowed_link(u, domains)))


@dataclass(frozen=True)
class ReplyMatch:
    """A posted draft and the teammate reply that followed it."""

    draft_key: str
    reply: ConversationMessage


def replies_to_drafts(conversation: Conversation, draft_targets: dict[str, str],
                      is_teammate: Callable[[ConversationMessage], bool]) -> list[ReplyMatch]:
    """Pair drafts with the teammate replies that answered them.

    Walks the thread oldest first: a customer message that got a draft makes that draft the pending one (a
    newer customer message with a draft supersedes an unanswered older one); the next teammate reply (a visible
    part by a teammate, not an internal note) answers the pending draft.

    Args:
        conversation: the thread, fetched fresh.
        draft_targets: customer message part id → draft key, for the posted drafts.
        is_teammate: whether a message was written by a human teammate (not the bot admin, not an AI agent).

    Returns:
        One :class:`ReplyMatch` per answered draft, in thread order.
    """
    out: list[ReplyMatch] = []
    pending: str | None = None
    for m in conversation.messages:
        if m.part_id in draft_targets:
            pending = draft_targets[m.part_id]
        elif (pending is not None and m.author_type == "admin" and m.part_type in _REPLY_PART_TYPES
              and m.body.strip() and is_teammate(m)):
            out.append(ReplyMatch(pending, m))
            pending = None
    return out
