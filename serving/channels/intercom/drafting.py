"""Intercom chat-draft worker: webhook notifications in, internal notes (or replies) and re-syncs out.

Flow (``POST /v1/webhooks/intercom`` → :meth:`WebhookWorker.accept` → queue → workers):

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
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from sqlalchemy.exc import SQLAlchemyError

from citedesk.config.settings import IntercomSettings
from citedesk.core.errors import CitedeskError, ConfigError
from citedesk.core.types import Decision
from citedesk.serving.audit.models import AdoptionOutcome, DraftAdoption
from citedesk.serving.channels.intercom.adoption import (
    RETAINED_KIND,
    SIMILARITY_KIND,
    compare,
    help_center_links,
    replies_to_drafts,
)
from citedesk.serving.channels.intercom.conversations import IntercomConversations
from citedesk.serving.channels.intercom.notes import draft_ref, format_customer_reply, format_note
from citedesk.serving.channels.intercom.qualify import build_request, qualification_failure
from citedesk.serving.channels.intercom.remote import AnswerService
from citedesk.serving.channels.intercom.store import (
    DeliveryStatus,
    DeliveryStore,
)
from citedesk.serving.channels.intercom.webhooks import (
    ADMIN_REPLY_TOPICS,
    ARTICLE_TOPICS,
    CONVERSATION_TOPICS,
    Conversation,
    ConversationMessage,
    Notification,
    parse_notification,
)
from citedesk.serving.db.engine import Database

__all__ = ["WebhookStoreError", "WebhookWorker"]

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_S = 300.0
"""Cap of the wait between two tries of a notification, seconds."""


class WebhookStoreError(CitedeskError):
    """The delivery could not be recorded (database unreachable or failing)."""


class _Retry(Exception):
    """Internal: try this notification again later (another worker holds the draft)."""


ConnectorFactory = Callable[[], Any]
"""Returns a new Intercom connector (``citedesk.connectors.intercom.IntercomConnector``)."""


class WebhookWorker:
    """Queue + workers turning Intercom notifications into notes and article syncs (see module docstring).

    Args:
        db: relational store (tables of revision 0002).
        connector_factory: builds one Intercom connector per worker (connectors are not thread-safe); its
            ``api`` session also carries the worker's conversation calls.
        answerer: local ``AnswerPipeline`` or :class:`~citedesk.serving.channels.intercom.remote.RemoteAnswerClient`.
        intercom: ``settings.intercom``: ``admin_id`` authors notes, tags and assignments; ``drafts`` holds
            the mode, qualification rules, escalation tag/team, history, workers and retry policy.
        html_to_text: turns a conversation part's HTML body into plain text.
        sync_engine: ``ingest.sync.SyncEngine`` for article topics; ``None`` skips them (split deployments
            where the index is elsewhere).
        workspace: tenant id (part of every draft's ref).
        metrics: a :class:`~citedesk.serving.observability.metrics.Metrics` (queue depth, deliveries, retries),
            or ``None``.
        on_article_synced: called after an article topic added or updated an article (the server's unit vector
            cache warm-up, :class:`~citedesk.serving.answer.unit_warm.UnitCacheWarmer`), or ``None``.

    Raises:
        ConfigError: ``intercom.admin_id`` is not set.
    """

    def __init__(self, db: Database, connector_factory: ConnectorFactory, answerer: AnswerService,
                 intercom: IntercomSettings, *, html_to_text: Callable[[str], str], sync_engine: Any = None,
                 workspace: str = "default", metrics=None,
                 on_article_synced: Callable[[], None] | None = None) -> None:
        if not intercom.admin_id:
            raise ConfigError("the Intercom webhook worker needs intercom.admin_id (the admin authoring notes)")
        self.db = db
        self.store = DeliveryStore(db)
        self.connector_factory = connector_factory
        self.answerer = answerer
        self.admin_id = intercom.admin_id
        self.config = intercom.drafts
        self.html_to_text = html_to_text
        self.sync_engine = sync_engine
        self.workspace = workspace
        self.metrics = metrics
        self.on_article_synced = on_article_synced
        if metrics is not None:
            metrics.queue_depth_from(self.unfinished)
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
        for ident in await anyio.to_thread.run_sync(self.store.unfinished_ids):
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
            status = await anyio.to_thread.run_sync(self.store.record, notification, raw)
        except SQLAlchemyError as exc:
            raise WebhookStoreError(f"could not record notification {notification.id}: {exc}") from exc
        if status == "queued" and self._queue is not None:
            self._queue.put_nowait(notification.id)
        return status

    # -- introspection ---------------------------------------------------------------------------
    def unfinished(self) -> int:
        """Notifications received but not finished (pending, processing or waiting for a retry)."""
        return self.store.unfinished()

    def delivery(self, notification_id: str) -> dict[str, Any] | None:
        """The delivery row as a dict (status, attempts, deliveries, outcome, error), or ``None``."""
        return self.store.delivery(notification_id)

    def drafts(self, conversation_id: str) -> list[dict[str, Any]]:
        """Draft rows of a conversation (key, status, decision, reason, note_part_id), oldest first."""
        return self.store.drafts(conversation_id)
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
        row = await anyio.to_thread.run_sync(self.store.begin, ident)
        if row is None:
            return
        payload, attempts = row
        try:
            notification = parse_notification(payload.encode("utf-8"))
            if notification.topic in CONVERSATION_TOPICS:
                status, outcome = await self._conversation(notification, connector)
            elif notification.topic in ADMIN_REPLY_TOPICS:
                status, outcome = await self._admin_reply(notification, connector)
            elif notification.topic in ARTICLE_TOPICS:
                status, outcome = await self._article(notification, connector)
            else:
                status, outcome = DeliveryStatus.SKIPPED, "unsupported_topic"
        except Exception as exc:  # noqa: BLE001 - recorded, retried, then failed
            error = f"{type(exc).__name__}: {exc}"
            final = attempts >= self.config.max_attempts and not isinstance(exc, _Retry)
            status = DeliveryStatus.FAILED if final else DeliveryStatus.PENDING
            await anyio.to_thread.run_sync(self.store.finish, ident, status, None, error)
            if self.metrics is not None:
                self.metrics.observe_delivery(str(status), retry=not final)
            if final:
                log.error("webhook %s failed after %d attempts: %s", ident, attempts, error)
            else:
                delay = min(self.config.retry_backoff * 2 ** max(attempts - 1, 0), MAX_RETRY_DELAY_S)
                log.warning("webhook %s attempt %d failed (retry in %.1f s): %s", ident, attempts, delay, error)
                self._schedule(ident, delay)
            return
        await anyio.to_thread.run_sync(self.store.finish, ident, status, outcome, None)
        if self.metrics is not None:
            self.metrics.observe_delivery(str(status))
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
            return DeliveryStatus.SKIPPED, "no_conversation_id"
        async with self._hold(f"conversation:{conversation_id}"):
            talk = IntercomConversations(connector.api)
            conversation = await anyio.to_thread.run_sync(talk.fetch_conversation, conversation_id)
            why = qualification_failure(conversation, self.config)
            if why:
                return DeliveryStatus.SKIPPED, why
            target = conversation.latest_customer_message()
            if target is None:
                return DeliveryStatus.SKIPPED, "no_customer_message"
            key = f"{conversation.id}:{target.part_id}"
            ref = draft_ref(self.workspace, key)
            claim = await anyio.to_thread.run_sync(self.store.claim, key, conversation.id, target.part_id, ref, n.id)
            if claim == "posted":
                return DeliveryStatus.DONE, f"duplicate: draft for part {target.part_id} already posted"
            if claim == "busy":
                raise _Retry(f"draft for part {target.part_id} is being written by another notification")
            found = self._find_posted(conversation, target, ref)
            if found is not None:  # an earlier try posted it but could not record it
                await anyio.to_thread.run_sync(self.store.posted, key, found.part_id, found.part_type, None, None)
                return DeliveryStatus.DONE, f"reconciled: part {found.part_id} already posted"
            try:
                request = build_request(conversation, target, self.config.history_turns, self.html_to_text)
            except ValueError as exc:
                await anyio.to_thread.run_sync(self.store.release, key)
                return DeliveryStatus.SKIPPED, str(exc)
            response = await self.answerer.answer(request)
            escalate = response.decision == Decision.ESCALATE
            if self.config.mode == "reply" and not escalate:
                body, message_type = format_customer_reply(response, self.config.help_center_domains), "comment"
            else:
                body, message_type = format_note(response, self.config.help_center_domains, ref), "note"
            part_id = await anyio.to_thread.run_sync(
                lambda: talk.reply(conversation.id, admin_id=self.admin_id, body=body,
                                        message_type=message_type))
            cited = list({c.article_id: {"article_id": c.article_id, "title": c.title, "url": c.url}
                          for c in response.citations}.values())
            await anyio.to_thread.run_sync(lambda: self.store.posted(
                key, part_id, message_type, response.decision.value, response.reason, answer=response.answer,
                citations=cited, answer_id=response.audit_id))
            if escalate:
                await self._escalate(talk, conversation)
            return DeliveryStatus.DONE, f"{message_type}: {response.decision.value} ({response.reason}) for part {target.part_id}"

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
                    and m.author_id == self.admin_id:
                return m
        return None

    async def _escalate(self, talk: IntercomConversations, conversation: Conversation) -> None:
        """Best effort: tag and assign (the note is already posted; failures are logged, not retried)."""
        c = self.config
        try:
            if c.escalation_tag_id and c.escalation_tag_id not in conversation.tag_ids:
                await anyio.to_thread.run_sync(lambda: talk.tag_conversation(
                    conversation.id, tag_id=c.escalation_tag_id, admin_id=self.admin_id))
            if c.escalation_team_id and conversation.team_assignee_id != c.escalation_team_id:
                await anyio.to_thread.run_sync(lambda: talk.assign_conversation(
                    conversation.id, admin_id=self.admin_id, team_id=c.escalation_team_id))
        except CitedeskError as exc:
            log.warning("conversation %s: escalation tag/assign failed: %s", conversation.id, exc)

    # -- draft adoption --------------------------------------------------------------------------
    def _is_teammate(self, m: ConversationMessage) -> bool:
        """A human teammate wrote it: an admin other than the one authoring citedesk's notes, not an AI agent."""
        return m.author_type == "admin" and m.author_id != self.admin_id and not m.from_ai_agent

    async def _admin_reply(self, n: Notification, connector: Any) -> tuple[str, str]:
        """``conversation.admin.replied``: record what the teammate did with each draft the reply answers.

        The thread is fetched fresh (HTML bodies with their links; every reply so far), so a redelivered or
        out-of-order notification finds the same pairs; a draft's outcome is written once (keyed by the draft).
        """
        conversation_id = n.item_id
        if conversation_id is None:
            return DeliveryStatus.SKIPPED, "no_conversation_id"
        drafts = [d for d in await anyio.to_thread.run_sync(self.store.posted_drafts, conversation_id)
                  if d.message_type == "note" and d.decision]  # reply-mode answers went to the customer directly
        if not drafts:
            return DeliveryStatus.SKIPPED, "no_draft"
        async with self._hold(f"conversation:{conversation_id}"):
            talk = IntercomConversations(connector.api)
            conversation = await anyio.to_thread.run_sync(talk.fetch_conversation, conversation_id)
            matches = replies_to_drafts(conversation, {d.part_id: d.key for d in drafts}, self._is_teammate)
            done = await anyio.to_thread.run_sync(self.store.adopted_keys, [m.draft_key for m in matches])
            by_key = {d.key: d for d in drafts}
            team = _id(n.item.get("team_assignee_id")) or conversation.team_assignee_id
            topics = sorted(name for tid, name in conversation.tags.items()
                            if name and tid != self.config.escalation_tag_id)
            outcomes = []
            for m in matches:
                if m.draft_key in done:
                    continue
                row = self._adoption(by_key[m.draft_key], m.reply, team, topics)
                if await anyio.to_thread.run_sync(self.store.record_adoption, row):
                    outcomes.append(f"{row.outcome} (part {m.reply.part_id})")
            if not outcomes:
                return DeliveryStatus.DONE, "adoption: no new reply to a draft"
            return DeliveryStatus.DONE, "adoption: " + ", ".join(outcomes)

    def _adoption(self, draft: Any, reply: ConversationMessage, team: str, topics: list[str]) -> DraftAdoption:
        text = self.html_to_text(reply.body)
        links = help_center_links(reply.body, self.config.help_center_domains)
        scores: dict[str, Any] = {}
        if draft.decision == Decision.ESCALATE.value:
            outcome = AdoptionOutcome.ESCALATION_ANSWERED
        else:
            c = compare(draft.answer or "", text, as_is_min=self.config.adoption_as_is_min,
                        edited_min=self.config.adoption_edited_min)
            outcome = c.outcome
            scores = {"similarity": c.similarity, "similarity_kind": SIMILARITY_KIND, "retained": c.retained,
                      "retained_kind": RETAINED_KIND}
        return DraftAdoption(
            key=draft.key, workspace=self.workspace, conversation_id=draft.conversation_id, answer_id=draft.answer_id,
            decision=draft.decision, reason=draft.reason or "", outcome=outcome.value, articles=draft.citations or [],
            topics=topics, team_id=team, admin_id=reply.author_id, admin_name=reply.author_name[:200],
            reply_links=links, note_part_id=draft.note_part_id, reply_part_id=reply.part_id,
            replied_at=float(reply.created_at or time.time()), recorded_at=time.time(), **scores)

    # -- articles --------------------------------------------------------------------------------
    async def _article(self, n: Notification, connector: Any) -> tuple[str, str]:
        article_id = n.item_id
        if article_id is None:
            return DeliveryStatus.SKIPPED, "no_article_id"
        if self.sync_engine is None:
            return DeliveryStatus.SKIPPED, "no_index (article topics need a local sync engine)"
        engine = self.sync_engine
        async with self._hold(f"article:{article_id}"):
            if n.topic == "article.deleted":
                removed = await anyio.to_thread.run_sync(
                    lambda: engine.delete_article(connector.workspace, connector.name, article_id))
                return DeliveryStatus.DONE, f"deleted article {article_id}: {removed} docs removed"
            report = await anyio.to_thread.run_sync(lambda: engine.sync_article(connector, article_id))
            if report.failed:
                raise RuntimeError("; ".join(f"{f.article_id}/{f.locale}: {f.error}" for f in report.failed))
            if (report.added or report.updated) and self.on_article_synced is not None:
                self.on_article_synced()
            return DeliveryStatus.DONE, (f"synced article {article_id}: added={report.added} updated={report.updated} "
                            f"deleted={report.deleted} unchanged={report.unchanged}")


def _id(value: Any) -> str:
    return "" if value in (None, "", 0) else str(value)
