"""Intercom chat-draft middleware: webhook notifications in, internal notes (or replies) and re-syncs out.

Flow (``POST /v1/webhooks/intercom`` → :meth:`WebhookMiddleware.accept` → queue → workers):

1. **Receive** (request path, a few ms): the signature-checked notification is written to
   ``webhook_deliveries`` keyed by its notification id, *then* queued in memory, then the endpoint answers
   200. A redelivery of a known id (Intercom retries after a timeout, or delivers twice) only bumps the
   row's ``deliveries`` counter: the same id delivered 5 times in parallel is processed once. Rows still
   ``pending`` / ``processing`` when the process stops are re-queued by the next :meth:`start`.
2. **Conversation topics** (``conversation.user.created|replied``): the conversation is fetched fresh
   (``GET /conversations/{id}``), so out-of-order deliveries all see the same, current thread. The target
   is the *latest* customer message; a note for it is keyed ``<conversation id>:<part id>`` in
   ``conversation_drafts`` (claimed before posting, marked posted after). A late notification for an older
   message resolves to the same target and finds it posted. Every note carries a ``ref`` token derived
   from that key: when a post's outcome is unknown (a timeout after Intercom created the note), the next
   try finds the note by its ref in the re-fetched conversation and records it instead of posting again.
   The draft comes from the answer pipeline (local) or a remote citedesk API (``RemoteAnswerClient``):
   an answer becomes a note with its citations; an escalation a note with the reason and the handoff
   summary, optionally tagging the conversation and assigning it to a team.
3. **Article topics** (``article.*``): the article is re-synced through :meth:`SyncEngine.sync_article`
   (what ``citedesk sync`` runs per article: fetch the current revision, re-embed only if its content
   changed, delete locales no longer published); ``article.deleted`` removes its points
   (:meth:`SyncEngine.delete_article`). Fetching the current state makes the order of deliveries irrelevant.
4. **Failures**: a notification whose handling raised is retried ``max_attempts`` times with exponential
   backoff (``retry_backoff`` seconds, doubled per try), then marked ``failed``. Intercom's 429 / 5xx are
   retried inside the connector (``X-RateLimit-Reset`` / ``Retry-After`` honoured).

Notes never contain images, and links only to ``help_center_domains`` (other citation URLs are shown as
plain titles, and URLs in quoted customer text are defanged: ``hxxps://example[.]com``).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import httpx
from sqlalchemy import Float, Integer, String, Text, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from connectors.webhooks import (
    ARTICLE_TOPICS,
    CONVERSATION_TOPICS,
    Conversation,
    ConversationMessage,
    Notification,
    parse_notification,
)
from core.errors import CitedeskError, ConfigError
from core.text import strip_markers
from core.types import Channel, Decision, Turn
from ingest.clean import to_clean_text
from serving.db import Base, Database
from serving.pipeline import REASON_TEXT
from serving.schemas import AnswerRequest, AnswerResponse

__all__ = [
    "AnswerService",
    "AnswerUnavailableError",
    "ConversationDraft",
    "MiddlewareConfig",
    "RemoteAnswerClient",
    "WebhookDelivery",
    "WebhookMiddleware",
    "WebhookStoreError",
    "allowed_link",
    "format_customer_reply",
    "format_note",
    "qualification_failure",
]

log = logging.getLogger(__name__)

CLAIM_LEASE_S = 300.0
"""Seconds a claimed, unposted draft belongs to the notification that claimed it (then others take over)."""

MAX_RETRY_DELAY_S = 300.0
"""Cap of the wait between two tries of a notification, seconds."""

MAX_QUESTION_CHARS = 2000
MAX_TURN_CHARS = 8000

# ---------------------------------------------------------------------- tables (revision 0002)


class WebhookDelivery(Base):
    """One notification id as received (``status``: pending | processing | done | skipped | failed)."""

    __tablename__ = "webhook_deliveries"

    notification_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(100))
    item_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    received_at: Mapped[float] = mapped_column(Float)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[float | None] = mapped_column(Float)


class ConversationDraft(Base):
    """The note (or reply) for one customer message: ``key`` = ``<conversation id>:<part id>``.

    ``status`` is ``claimed`` (a worker is drafting it, or its post's outcome is unknown) or ``posted``.
    """

    __tablename__ = "conversation_drafts"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(100), index=True)
    part_id: Mapped[str] = mapped_column(String(200))
    ref: Mapped[str] = mapped_column(String(40))
    notification_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    message_type: Mapped[str | None] = mapped_column(String(16))
    note_part_id: Mapped[str | None] = mapped_column(String(200))
    decision: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(40))
    claimed_at: Mapped[float] = mapped_column(Float)
    posted_at: Mapped[float | None] = mapped_column(Float)


# ---------------------------------------------------------------------- configuration and answerers


@dataclass(frozen=True)
class MiddlewareConfig:
    """What the middleware does (built from ``settings.intercom`` at the composition root).

    Attributes:
        admin_id: Intercom admin that authors notes, replies, tags and assignments.
        mode: ``"note"`` (internal drafts) or ``"reply"`` (answers sent to the customer; escalations
            stay notes).
        help_center_domains: hosts links may point to (a host matches itself and its subdomains).
        qualify_tags / exclude_tags: tag names or ids (see :func:`qualification_failure`).
        qualify_team_ids / qualify_channels: team (inbox) ids, channels (``messenger``, ``email``).
        escalation_tag_id / escalation_team_id: applied on escalation when set.
        history_turns: earlier visible messages passed as history.
        workers: notifications processed concurrently.
        max_attempts: tries per notification; ``retry_backoff``: seconds before the 2nd, doubled after.
    """

    admin_id: str
    mode: str = "note"
    help_center_domains: tuple[str, ...] = ()
    qualify_tags: frozenset[str] = frozenset()
    exclude_tags: frozenset[str] = frozenset()
    qualify_team_ids: frozenset[str] = frozenset()
    qualify_channels: frozenset[str] = frozenset()
    escalation_tag_id: str | None = None
    escalation_team_id: str | None = None
    history_turns: int = 6
    workers: int = 2
    max_attempts: int = 5
    retry_backoff: float = 2.0

    def __post_init__(self) -> None:
        if not self.admin_id:
            raise ConfigError("the Intercom middleware needs intercom.admin_id (the admin authoring notes)")
        if self.mode not in {"note", "reply"}:
            raise ConfigError(f"intercom.middleware.mode must be note or reply, got {self.mode!r}")

    @classmethod
    def from_settings(cls, intercom: Any) -> MiddlewareConfig:
        """Build from ``Settings.intercom`` (an ``IntercomSettings``).

        Raises:
            ConfigError: ``intercom.admin_id`` is not set.
        """
        m = intercom.middleware
        return cls(
            admin_id=intercom.admin_id or "", mode=m.mode,
            help_center_domains=tuple(d.strip().lower().lstrip(".") for d in m.help_center_domains if d.strip()),
            qualify_tags=frozenset(m.qualify_tags), exclude_tags=frozenset(m.exclude_tags),
            qualify_team_ids=frozenset(m.qualify_team_ids), qualify_channels=frozenset(m.qualify_channels),
            escalation_tag_id=m.escalation_tag_id, escalation_team_id=m.escalation_team_id,
            history_turns=m.history_turns, workers=m.workers, max_attempts=m.max_attempts,
            retry_backoff=m.retry_backoff)


class AnswerService(Protocol):
    """Anything that answers an :class:`AnswerRequest`: the local ``AnswerPipeline`` or a remote API."""

    async def answer(self, request: AnswerRequest) -> AnswerResponse: ...


class AnswerUnavailableError(CitedeskError):
    """The remote citedesk answer API could not be reached or answered an error (retried, then escalated)."""


class WebhookStoreError(CitedeskError):
    """The delivery could not be recorded (database unreachable or failing)."""


class RemoteAnswerClient:
    """``POST <base_url>/v1/answer`` over HTTP (the standalone ``citedesk middleware``).

    Args:
        base_url: citedesk API root, e.g. ``http://citedesk:8000``.
        timeout: seconds per request (an LLM-backed answer can take several).
        api_key: sent as ``Authorization: Bearer`` when the API requires keys.
    """

    def __init__(self, base_url: str, *, timeout: float = 60.0, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.AsyncClient | None = None

    async def answer(self, request: AnswerRequest) -> AnswerResponse:
        """Answer remotely.

        Raises:
            AnswerUnavailableError: connection error, timeout, a non-200 status or an unreadable body.
        """
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, headers=self._headers)
        try:
            r = await self._client.post("/v1/answer", json=request.model_dump(mode="json", exclude_none=True))
        except httpx.HTTPError as exc:
            raise AnswerUnavailableError(f"answer API at {self.base_url} unreachable: "
                                         f"{type(exc).__name__}: {exc}") from exc
        if r.status_code != 200:
            raise AnswerUnavailableError(f"answer API at {self.base_url} answered HTTP {r.status_code}: "
                                         f"{r.text[:300]}")
        try:
            return AnswerResponse.model_validate(r.json())
        except ValueError as exc:
            raise AnswerUnavailableError(f"answer API at {self.base_url} sent an unreadable body: {exc}") from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


# ---------------------------------------------------------------------- pure helpers


def qualification_failure(conversation: Conversation, config: MiddlewareConfig) -> str | None:
    """Why a conversation is not drafted, or ``None`` when it qualifies.

    Returns:
        ``"not_tagged"`` (no tag of ``qualify_tags``), ``"excluded_tag"``, ``"other_inbox"`` (team not in
        ``qualify_team_ids``), ``"other_channel"``, or ``None``.
    """
    tags = conversation.tag_ids | conversation.tag_names
    if config.qualify_tags and not tags & config.qualify_tags:
        return "not_tagged"
    if config.exclude_tags and tags & config.exclude_tags:
        return "excluded_tag"
    if config.qualify_team_ids and conversation.team_assignee_id not in config.qualify_team_ids:
        return "other_inbox"
    if config.qualify_channels and conversation.channel not in config.qualify_channels:
        return "other_channel"
    return None


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


_URL_RE = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"']+")


def _defang(text: str, domains: Sequence[str]) -> str:
    """Make URLs outside ``domains`` non-clickable: ``hxxps://evil[.]com/x``."""
    def repl(m: re.Match[str]) -> str:
        url = m.group(0)
        probe = url if "://" in url else "http://" + url
        if allowed_link(probe, domains):
            return url
        return re.sub(r"(?i)^http", "hxxp", url).replace(".", "[.]")
    return _URL_RE.sub(repl, text)


def _text(value: str, domains: Sequence[str]) -> str:
    """Escaped, defanged text for an HTML note."""
    return html.escape(_defang(value, domains), quote=True)


def _source_line(title: str, url: str | None, domains: Sequence[str]) -> str:
    if allowed_link(url, domains):
        return f'<a href="{html.escape(url or "", quote=True)}">{_text(title, domains)}</a>'
    return _text(title, domains)


def draft_ref(workspace: str, key: str) -> str:
    """Token written into a note to find it again (``cd-`` + 12 hex of sha256 of workspace and key)."""
    return "cd-" + hashlib.sha256(f"{workspace}|{key}".encode()).hexdigest()[:12]


def format_note(response: AnswerResponse, config: MiddlewareConfig, ref: str) -> str:
    """The internal note for an answer or an escalation (Intercom note HTML: ``p``, ``b``, ``a`` only).

    Args:
        response: the answer pipeline's response.
        config: gives ``help_center_domains`` (only their links are kept).
        ref: the draft's ref token (last line; used to reconcile retried posts).

    Returns:
        HTML. Never an ``img``; ``a`` only to help-center domains; all text escaped.
    """
    domains = config.help_center_domains
    if response.decision == Decision.ESCALATE:
        why = REASON_TEXT.get(response.reason, response.reason)
        lines = [f"<p><b>citedesk: needs a human</b> — {_text(response.reason, domains)}: {_text(why, domains)}.</p>"]
        if response.handoff_summary:
            lines.append(f"<p><b>Handoff:</b> {_text(response.handoff_summary, domains)}</p>")
        titles = list(dict.fromkeys((h.title, h.url) for h in response.hits[:3]))
        if titles:
            lines.append("<p><b>Closest articles:</b> "
                         + "; ".join(_source_line(t, u, domains) for t, u in titles) + "</p>")
    else:
        lines = [(f"<p><b>citedesk draft</b> — confidence {response.confidence:.2f} "
                  f"({_text(response.confidence_kind, domains)})</p>"),
                 f"<p>{_text(response.answer, domains)}</p>"]
        if response.citations:
            lines.append("<p><b>Sources</b></p>")
            for c in response.citations:
                quote = c.quote if len(c.quote) <= 240 else c.quote[:239] + "…"
                lines.append(f"<p>[{c.marker}] {_source_line(c.title, c.url, domains)} — "
                             f"“{_text(quote, domains)}” (revision {_text(c.content_hash[:12], domains)})</p>")
    lines.append(f"<p>ref {ref}</p>")
    return "".join(lines)


def format_customer_reply(response: AnswerResponse, config: MiddlewareConfig) -> str:
    """A customer-facing reply for an answer: the text without ``[n]`` markers, then its sources.

    Raises:
        ValueError: ``response`` is an escalation (escalations are never sent to the customer).
    """
    if response.decision != Decision.ANSWER:
        raise ValueError("only answers are sent to customers")
    domains = config.help_center_domains
    body = f"<p>{_text(strip_markers(response.answer).strip(), domains)}</p>"
    sources = list(dict.fromkeys((c.title, c.url) for c in response.citations))
    if sources:
        body += "<p>Sources: " + "; ".join(_source_line(t, u, domains) for t, u in sources) + "</p>"
    return body


def build_request(conversation: Conversation, target: ConversationMessage, history_turns: int) -> AnswerRequest:
    """The :class:`AnswerRequest` for the latest customer message: HTML stripped, earlier turns as history.

    Raises:
        ValueError: the message has no text once cleaned (e.g. only an image).
    """
    question = to_clean_text(target.body, "html")[:MAX_QUESTION_CHARS].strip()
    if not question:
        raise ValueError("empty_message")
    history: list[Turn] = []
    if history_turns:
        earlier = [m for m in conversation.messages if m.seen_by_customer]
        idx = next((i for i, m in enumerate(earlier) if m.part_id == target.part_id), len(earlier))
        for m in earlier[:idx][-history_turns:]:
            text = to_clean_text(m.body, "html")[:MAX_TURN_CHARS].strip()
            if text:
                history.append(Turn(role="user" if m.from_customer else "agent", text=text))
    return AnswerRequest(question=question, history=history, channel=Channel.CHAT,
                         conversation_id=conversation.id[:200])


# ---------------------------------------------------------------------- the worker


class _Retry(Exception):
    """Internal: try this notification again later (another worker holds the draft)."""


ConnectorFactory = Callable[[], Any]
"""Returns a new Intercom connector (``connectors.intercom.IntercomConnector`` or a compatible object)."""


class WebhookMiddleware:
    """Queue + workers turning Intercom notifications into notes and article syncs (see module docstring).

    Args:
        db: relational store (tables of revision 0002).
        connector_factory: builds one Intercom connector per worker (connectors are not thread-safe).
        answerer: local ``AnswerPipeline`` or :class:`RemoteAnswerClient`.
        config: :class:`MiddlewareConfig`.
        sync_engine: ``ingest.sync.SyncEngine`` for article topics; ``None`` skips them (split deployments
            where the index is elsewhere).
        workspace: tenant id (part of every draft's ref).
    """

    def __init__(self, db: Database, connector_factory: ConnectorFactory, answerer: AnswerService,
                 config: MiddlewareConfig, *, sync_engine: Any = None, workspace: str = "default") -> None:
        self.db = db
        self.connector_factory = connector_factory
        self.answerer = answerer
        self.config = config
        self.sync_engine = sync_engine
        self.workspace = workspace
        self._queue: asyncio.Queue[str] | None = None
        self._tasks: list[asyncio.Task] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._connectors: list[Any] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return bool(self._tasks)

    async def start(self) -> None:
        """Migrate the DB, start ``config.workers`` workers and re-queue unfinished notifications."""
        if self._tasks:
            return
        await anyio.to_thread.run_sync(self.db.migrate)
        self._queue = asyncio.Queue()
        for ident in await anyio.to_thread.run_sync(self._unfinished_ids):
            self._queue.put_nowait(ident)
        for n in range(self.config.workers):
            connector = self.connector_factory()
            self._connectors.append(connector)
            self._tasks.append(asyncio.create_task(self._worker(connector), name=f"intercom-webhook-{n}"))

    async def stop(self) -> None:
        """Cancel the workers (a notification in process is re-queued by the next start) and close connectors."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # shutting down: report, never raise
                log.exception("webhook worker ended with an error")
        self._tasks.clear()
        for connector in self._connectors:
            close = getattr(connector, "close", None)
            if close is not None:
                close()
        self._connectors.clear()
        self._queue = None

    # -- receiving -------------------------------------------------------------------------------
    async def accept(self, notification: Notification, raw: bytes) -> str:
        """Record a verified notification durably and queue it (the request path; a few ms).

        Args:
            notification: parsed envelope.
            raw: the raw body (stored; re-parsed by the worker).

        Returns:
            ``"queued"``, or ``"duplicate"`` for an id already received (nothing more is done).

        Raises:
            WebhookStoreError: the database is unreachable (the receiver answers 503; Intercom retries).
        """
        try:
            status = await anyio.to_thread.run_sync(self._record, notification, raw)
        except SQLAlchemyError as exc:
            raise WebhookStoreError(f"could not record notification {notification.id}: {exc}") from exc
        if status == "queued" and self._queue is not None:
            self._queue.put_nowait(notification.id)
        return status

    def _record(self, n: Notification, raw: bytes) -> str:
        try:
            with self.db.session() as s:
                s.add(WebhookDelivery(notification_id=n.id, topic=n.topic, item_id=n.item_id,
                                      payload=raw.decode("utf-8", errors="replace"), status="pending",
                                      received_at=time.time(), deliveries=1, attempts=0))
            return "queued"
        except IntegrityError:
            with self.db.session() as s:  # atomic increment: parallel redeliveries all count
                s.execute(update(WebhookDelivery).where(WebhookDelivery.notification_id == n.id)
                          .values(deliveries=WebhookDelivery.deliveries + 1))
            return "duplicate"

    # -- introspection ---------------------------------------------------------------------------
    def _unfinished_ids(self) -> list[str]:
        with self.db.session() as s:
            return list(s.scalars(select(WebhookDelivery.notification_id)
                                  .where(WebhookDelivery.status.in_(("pending", "processing")))
                                  .order_by(WebhookDelivery.received_at)))

    def unfinished(self) -> int:
        """Notifications received but not finished (pending, processing or waiting for a retry)."""
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(WebhookDelivery)
                            .where(WebhookDelivery.status.in_(("pending", "processing")))) or 0

    def delivery(self, notification_id: str) -> dict[str, Any] | None:
        """The delivery row as a dict (status, attempts, deliveries, outcome, error), or ``None``."""
        with self.db.session() as s:
            row = s.get(WebhookDelivery, notification_id)
            if row is None:
                return None
            return {c: getattr(row, c) for c in ("notification_id", "topic", "item_id", "status", "deliveries",
                                                 "attempts", "outcome", "error")}

    def drafts(self, conversation_id: str) -> list[dict[str, Any]]:
        """Draft rows of a conversation (key, status, decision, reason, note_part_id), oldest first."""
        with self.db.session() as s:
            rows = s.scalars(select(ConversationDraft).where(ConversationDraft.conversation_id == conversation_id)
                             .order_by(ConversationDraft.claimed_at))
            return [{c: getattr(r, c) for c in ("key", "part_id", "status", "message_type", "decision", "reason",
                                                "note_part_id", "notification_id")} for r in rows]

    # -- processing ------------------------------------------------------------------------------
    async def _worker(self, connector: Any) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            ident = await queue.get()
            try:
                await self._process(ident, connector)
            except asyncio.CancelledError:
                raise
            except Exception:  # a worker must survive anything (logged with its traceback)
                log.exception("webhook %s: unexpected failure", ident)
            finally:
                queue.task_done()

    async def _process(self, ident: str, connector: Any) -> None:
        row = await anyio.to_thread.run_sync(self._begin, ident)
        if row is None:
            return
        payload, attempts = row
        try:
            notification = parse_notification(payload.encode("utf-8"))
            if notification.topic in CONVERSATION_TOPICS:
                status, outcome = await self._conversation(notification, connector)
            elif notification.topic in ARTICLE_TOPICS:
                status, outcome = await self._article(notification, connector)
            else:
                status, outcome = "skipped", "unsupported_topic"
        except Exception as exc:  # noqa: BLE001 - recorded, retried, then failed
            error = f"{type(exc).__name__}: {exc}"
            final = attempts >= self.config.max_attempts and not isinstance(exc, _Retry)
            await anyio.to_thread.run_sync(self._finish, ident, "failed" if final else "pending", None, error)
            if final:
                log.error("webhook %s failed after %d attempts: %s", ident, attempts, error)
            else:
                delay = min(self.config.retry_backoff * 2 ** max(attempts - 1, 0), MAX_RETRY_DELAY_S)
                log.warning("webhook %s attempt %d failed (retry in %.1f s): %s", ident, attempts, delay, error)
                self._schedule(ident, delay)
            return
        await anyio.to_thread.run_sync(self._finish, ident, status, outcome, None)
        log.info("webhook %s %s: %s", ident, status, outcome)

    def _schedule(self, ident: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue

        def fire() -> None:
            self._timers.discard(handle)
            if queue is not None and self._queue is queue:
                queue.put_nowait(ident)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _begin(self, ident: str) -> tuple[str, int] | None:
        with self.db.session() as s:
            row = s.get(WebhookDelivery, ident)
            if row is None or row.status not in ("pending", "processing"):
                return None
            row.status = "processing"
            row.attempts += 1
            return row.payload, row.attempts

    def _finish(self, ident: str, status: str, outcome: str | None, error: str | None) -> None:
        with self.db.session() as s:
            row = s.get(WebhookDelivery, ident)
            if row is None:
                return
            row.status = status
            row.outcome = outcome[:200] if outcome else outcome
            row.error = error
            row.finished_at = time.time() if status not in ("pending", "processing") else None

    @asynccontextmanager
    async def _hold(self, key: str) -> AsyncIterator[None]:
        """Serialise work on one conversation / article within this process (locks are dropped when idle)."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._lock_users[key] = self._lock_users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[key] -= 1
            if not self._lock_users[key]:
                del self._lock_users[key], self._locks[key]

    # -- conversations ---------------------------------------------------------------------------
    async def _conversation(self, n: Notification, connector: Any) -> tuple[str, str]:
        conversation_id = n.item_id
        if conversation_id is None:
            return "skipped", "no_conversation_id"
        async with self._hold(f"conversation:{conversation_id}"):
            conversation = await anyio.to_thread.run_sync(connector.fetch_conversation, conversation_id)
            why = qualification_failure(conversation, self.config)
            if why:
                return "skipped", why
            target = conversation.latest_customer_message()
            if target is None:
                return "skipped", "no_customer_message"
            key = f"{conversation.id}:{target.part_id}"
            ref = draft_ref(self.workspace, key)
            claim = await anyio.to_thread.run_sync(self._claim, key, conversation.id, target.part_id, ref, n.id)
            if claim == "posted":
                return "done", f"duplicate: draft for part {target.part_id} already posted"
            if claim == "busy":
                raise _Retry(f"draft for part {target.part_id} is being written by another notification")
            found = self._find_posted(conversation, target, ref)
            if found is not None:  # an earlier try posted it but could not record it
                await anyio.to_thread.run_sync(self._posted, key, found.part_id, found.part_type, None, None)
                return "done", f"reconciled: part {found.part_id} already posted"
            try:
                request = build_request(conversation, target, self.config.history_turns)
            except ValueError as exc:
                await anyio.to_thread.run_sync(self._release, key)
                return "skipped", str(exc)
            response = await self.answerer.answer(request)
            escalate = response.decision == Decision.ESCALATE
            if self.config.mode == "reply" and not escalate:
                body, message_type = format_customer_reply(response, self.config), "comment"
            else:
                body, message_type = format_note(response, self.config, ref), "note"
            part_id = await anyio.to_thread.run_sync(
                lambda: connector.reply(conversation.id, admin_id=self.config.admin_id, body=body,
                                        message_type=message_type))
            await anyio.to_thread.run_sync(self._posted, key, part_id, message_type, response.decision.value,
                                           response.reason)
            if escalate:
                await self._escalate(connector, conversation)
            return "done", f"{message_type}: {response.decision.value} ({response.reason}) for part {target.part_id}"

    def _find_posted(self, conversation: Conversation, target: ConversationMessage,
                     ref: str) -> ConversationMessage | None:
        """A note carrying ``ref``; in reply mode also our admin's comment after the target message."""
        note = conversation.has_note_containing(ref)
        if note is not None or self.config.mode != "reply":
            return note
        after = False
        for m in conversation.messages:
            if m.part_id == target.part_id:
                after = True
            elif after and m.part_type == "comment" and m.author_type == "admin" \
                    and m.author_id == self.config.admin_id:
                return m
        return None

    async def _escalate(self, connector: Any, conversation: Conversation) -> None:
        """Best effort: tag and assign (the note is already posted; failures are logged, not retried)."""
        c = self.config
        try:
            if c.escalation_tag_id and c.escalation_tag_id not in conversation.tag_ids:
                await anyio.to_thread.run_sync(lambda: connector.tag_conversation(
                    conversation.id, tag_id=c.escalation_tag_id, admin_id=c.admin_id))
            if c.escalation_team_id and conversation.team_assignee_id != c.escalation_team_id:
                await anyio.to_thread.run_sync(lambda: connector.assign_conversation(
                    conversation.id, admin_id=c.admin_id, team_id=c.escalation_team_id))
        except CitedeskError as exc:
            log.warning("conversation %s: escalation tag/assign failed: %s", conversation.id, exc)

    def _claim(self, key: str, conversation_id: str, part_id: str, ref: str, notification_id: str) -> str:
        """Claim the draft for ``key``: ``new`` / ``takeover`` (ours to write), ``posted`` or ``busy``."""
        now = time.time()
        try:
            with self.db.session() as s:
                row = s.get(ConversationDraft, key)
                if row is None:
                    s.add(ConversationDraft(key=key, conversation_id=conversation_id, part_id=part_id, ref=ref,
                                            notification_id=notification_id, status="claimed", claimed_at=now))
                    return "new"
                if row.status == "posted":
                    return "posted"
                if row.notification_id == notification_id or now - row.claimed_at > CLAIM_LEASE_S:
                    row.notification_id, row.claimed_at = notification_id, now
                    return "takeover"
                return "busy"
        except IntegrityError:  # another process inserted it between our read and write
            return "busy"

    def _posted(self, key: str, note_part_id: str, message_type: str, decision: str | None,
                reason: str | None) -> None:
        with self.db.session() as s:
            row = s.get(ConversationDraft, key)
            if row is not None:
                row.status, row.note_part_id, row.message_type = "posted", note_part_id, message_type
                row.decision, row.reason, row.posted_at = decision, reason, time.time()

    def _release(self, key: str) -> None:
        with self.db.session() as s:
            row = s.get(ConversationDraft, key)
            if row is not None and row.status == "claimed":
                s.delete(row)

    # -- articles --------------------------------------------------------------------------------
    async def _article(self, n: Notification, connector: Any) -> tuple[str, str]:
        article_id = n.item_id
        if article_id is None:
            return "skipped", "no_article_id"
        if self.sync_engine is None:
            return "skipped", "no_index (article topics need a local sync engine)"
        engine = self.sync_engine
        async with self._hold(f"article:{article_id}"):
            if n.topic == "article.deleted":
                removed = await anyio.to_thread.run_sync(
                    lambda: engine.delete_article(connector.workspace, connector.name, article_id))
                return "done", f"deleted article {article_id}: {removed} docs removed"
            report = await anyio.to_thread.run_sync(lambda: engine.sync_article(connector, article_id))
            if report.failed:
                raise RuntimeError("; ".join(f"{f.article_id}/{f.locale}: {f.error}" for f in report.failed))
            return "done", (f"synced article {article_id}: added={report.added} updated={report.updated} "
                            f"deleted={report.deleted} unchanged={report.unchanged}")
