"""An Intercom REST API test double: a real HTTP server on 127.0.0.1 with in-memory state.

Response shapes follow Intercom's OpenAPI description, API version 2.16
(``tests/data/intercom/api.intercom.io-2.16.yaml``, copied from the shared data set):

* ``GET /articles`` → ``article_list`` (``pages`` is ``cursor_pages`` with ``page``, ``per_page``,
  ``total_pages``; items are ``article_list_item``, newest ``updated_at`` first, drafts included).
  Query parameters ``page`` (default 1) and ``per_page`` (default 15) are the ones the
  python-intercom SDK sends; a page past the end has ``data: []``.
* ``GET /articles/{article_id}`` → ``article`` (list item plus ``statistics``), or 404 ``error``.
* ``GET /help_center/collections`` → ``collection_list`` (same paging as articles).
* ``GET /conversations/{id}`` → ``conversation`` (``source``, ``tags``, ``contacts``, ``channel``,
  ``conversation_parts`` as ``conversation_part.list``), or 404 ``error`` ("Resource Not Found").
* ``POST /conversations/{id}/reply`` with an ``admin_reply_conversation_request`` (``message_type``
  ``comment`` / ``note``, ``type: admin``, ``admin_id``, ``body``) or a contact reply → the
  ``conversation`` with only the created part in ``conversation_parts`` (as the spec's examples show);
  400 ``parameter_invalid`` on a body the schema rejects.
* ``POST /conversations/{id}/tags`` (``{"id": tag_id, "admin_id": …}``) → ``tag``; 404 for an unknown
  conversation or tag.
* ``POST /conversations/{id}/parts`` with an ``assign_conversation_request`` (``message_type:
  assignment``) → ``conversation`` with the new ``team_assignee_id`` / ``admin_assignee_id``.
* Errors are ``error`` objects (``type: error.list``, ``request_id``, ``errors[{code, message}]``):
  401 ``unauthorized`` / "Access Token Invalid", 404 ``not_found`` / "Resource Not Found",
  429 ``rate_limit_exceeded`` (codes and messages as in the spec's examples).

Optional fields the spec declares with ``$ref`` (``ai_agent``, a part's ``assigned_to`` and
``email_message_metadata``) are left out rather than sent as ``null``: a ``nullable`` beside a ``$ref`` is
ignored by OpenAPI 3.0 validators, so ``null`` there would not validate.

Multilingual articles (``translations=`` in :meth:`IntercomDouble.add_article`) carry
``default_locale`` and ``translated_content`` (``article_translated_content`` of
``article_content``); their root ``title`` / ``body`` / ``state`` / ``url`` are those of the default
locale, as the spec describes. Timestamps are Unix epoch seconds.

Usage::

    with IntercomDouble(token="t") as api:
        api.add_article("Reset your password", "<p>Click “Forgot password”.</p>")
        connector = IntercomConnector("t", base_url=api.base_url)
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["DelayRule", "FailureRule", "IntercomDouble", "RequestRecord"]

DEFAULT_PER_PAGE = 15
"""Page size when the request has no ``per_page`` (the SDK documents Intercom's default as 15)."""

_ERROR_MESSAGES = {
    401: ("unauthorized", "Access Token Invalid"),
    404: ("not_found", "Resource Not Found"),
    400: ("parameter_invalid", "Invalid request body"),
    429: ("rate_limit_exceeded", "You have exceeded the rate limit. Please try again later."),
}
"""``(code, message)`` of the ``error`` body per status; codes/messages from the spec's examples."""


@dataclass(frozen=True)
class RequestRecord:
    """One request the double received.

    Attributes:
        method: HTTP method (``"GET"``).
        path: URL path without the query (``"/articles"``).
        query: parsed query string (``{"page": ["2"], "per_page": ["3"]}``).
        time: ``time.monotonic()`` when the request arrived (compare records with each other).
        wall_time: ``time.time()`` when it arrived (Unix epoch seconds, float).
        status: HTTP status answered.
        headers: request headers (lower-case names).
        body: the request's JSON body (``None`` without one, the raw text if it is not JSON).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    time: float
    wall_time: float
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class DelayRule:
    """Injected hangs: the next ``remaining`` matching requests are handled, then answered late."""

    remaining: int
    seconds: float
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.remaining > 0 and (self.method is None or self.method == method)
                and (self.path is None or self.path == path))


@dataclass
class FailureRule:
    """Injected failures: the next ``remaining`` matching requests get ``status``."""

    remaining: int
    status: int
    headers: dict[str, str]
    path: str | None = None
    body: Any = None

    def matches(self, path: str) -> bool:
        return self.remaining > 0 and (self.path is None or self.path == path)


class IntercomDouble:
    """In-memory Intercom workspace served over HTTP on ``127.0.0.1`` (random free port).

    Start with :meth:`start` / stop with :meth:`stop`, or use it as a context manager. All helper
    methods are thread-safe and can be called while the server runs.

    Attributes:
        token: the access token requests must send as ``Authorization: Bearer <token>``.
        workspace_id: ``workspace_id`` of every article and collection.
    """

    def __init__(
        self,
        token: str = "test-token",
        *,
        workspace_id: str = "ws_double",
        help_center_url: str = "http://help-center.test/ws_double",
        help_center_id: int = 1,
        admin_id: str = "991267500",
        app_id: str = "app_double",
    ) -> None:
        self.token = token
        self.admin_id = admin_id
        self.app_id = app_id
        self.workspace_id = workspace_id
        self.help_center_url = help_center_url.rstrip("/")
        self.help_center_id = help_center_id
        self._lock = threading.RLock()
        self._articles: dict[str, dict[str, Any]] = {}
        self._raw_articles: set[str] = set()
        self._collections: dict[str, dict[str, Any]] = {}
        self._failures: list[FailureRule] = []
        self._log: list[RequestRecord] = []
        self._next_id = 1000
        self._conversations: dict[str, dict[str, Any]] = {}
        self._tags: dict[str, dict[str, Any]] = {}
        self._deleted_articles: dict[str, dict[str, Any]] = {}
        self._delays: list[DelayRule] = []
        self._next_part_id = 5000
        self._last_timestamp = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> IntercomDouble:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="intercom-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (returns within ~0.1 s)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=1.0)

    def __enter__(self) -> IntercomDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (only while started)."""
        if self._server is None:
            raise RuntimeError("IntercomDouble is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ state helpers

    def add_article(
        self,
        title: str = "Untitled",
        body: str = "<p></p>",
        *,
        article_id: str | int | None = None,
        state: str = "published",
        description: str = "",
        parent_ids: list[str | int] | None = None,
        translations: Mapping[str, Mapping[str, Any]] | None = None,
        default_locale: str | None = None,
        author_id: int = 991267492,
        created_at: int | None = None,
        updated_at: int | None = None,
        url: str | None = None,
    ) -> str:
        """Add an article and return its id (a string of digits, as Intercom gives).

        Args:
            title / body / state / description: root content of a single-language article
                (``state`` is ``"published"`` or ``"draft"``).
            article_id: force an id (digits); default: the next free id.
            parent_ids: ids of the parent collections / sections.
            translations: makes the article multilingual: ``{locale: {"title", "body",
                "state", "description", "url", "updated_at"}}`` (missing keys default as for the
                root). The root content then mirrors ``default_locale``'s.
            default_locale: default locale of a multilingual article (default: first translation).
            created_at / updated_at: epoch seconds; default: a strictly increasing clock.
            url: public URL; default ``<help_center_url>/<locale>/articles/<id>-<slug>``.
        """
        with self._lock:
            new_id = self._allocate_id(article_id, self._articles)
            now = updated_at if updated_at is not None else self._tick()
            article: dict[str, Any] = {
                "id": new_id,
                "type": "article",
                "workspace_id": self.workspace_id,
                "parent_ids": [int(pid) for pid in (parent_ids or [])],
                "tags": {"type": "tag.list", "tags": []},
                "title": title,
                "description": description,
                "body": body,
                "author_id": author_id,
                "state": state,
                "created_at": created_at if created_at is not None else now,
                "updated_at": now,
                "url": url or self._article_url(new_id, title, default_locale or "en"),
            }
            if translations:
                locale0 = default_locale or next(iter(translations))
                if locale0 not in translations:
                    raise ValueError(f"default_locale {locale0!r} has no translation")
                article["default_locale"] = locale0
                article["translated_content"] = {"type": "article_translated_content"}
                for locale, values in translations.items():
                    article["translated_content"][locale] = self._content(new_id, locale, values, article)
                self._mirror_default_locale(article)
            self._articles[new_id] = article
            return new_id

    def add_raw_article(self, payload: Mapping[str, Any]) -> str:
        """Store ``payload`` verbatim as an article (for malformed-payload tests); returns its id.

        The payload is served as is in lists and by ``GET /articles/{id}``; it needs an ``id``
        (a fresh one is added when missing) and is sorted by its ``updated_at`` (0 if absent).
        """
        with self._lock:
            payload = json.loads(json.dumps(dict(payload)))
            if "id" not in payload:
                payload["id"] = self._allocate_id(None, self._articles)
            article_id = str(payload["id"])
            self._articles[article_id] = payload
            self._raw_articles.add(article_id)
            return article_id

    def edit_article(
        self,
        article_id: str | int,
        *,
        locale: str | None = None,
        title: str | None = None,
        body: str | None = None,
        description: str | None = None,
        state: str | None = None,
        parent_ids: list[str | int] | None = None,
    ) -> int:
        """Change an article (or one locale of a multilingual one) and bump ``updated_at``.

        Args:
            article_id: the article.
            locale: for multilingual articles, the locale to edit (default: the default locale);
                a locale without content is created.
            title / body / description / state: new values; ``None`` leaves a field as is.
            parent_ids: new parents (article level).

        Returns:
            The new ``updated_at`` (epoch seconds, larger than any earlier timestamp).

        Raises:
            KeyError: unknown article.
        """
        with self._lock:
            article = self._articles[str(article_id)]
            now = self._tick()
            changes = {
                key: value
                for key, value in (
                    ("title", title),
                    ("body", body),
                    ("description", description),
                    ("state", state),
                )
                if value is not None
            }
            if parent_ids is not None:
                article["parent_ids"] = [int(pid) for pid in parent_ids]
            translated = article.get("translated_content")
            if isinstance(translated, dict):
                target = locale or article["default_locale"]
                content = translated.get(target)
                if content is None:
                    content = translated[target] = self._content(str(article["id"]), target, {}, article)
                content.update(changes)
                content["updated_at"] = now
                self._mirror_default_locale(article)
            else:
                article.update(changes)
            article["updated_at"] = now
            return now

    def unpublish_article(self, article_id: str | int, *, locale: str | None = None) -> int:
        """Set an article back to ``draft`` (every locale, or only ``locale``); bumps ``updated_at``.

        Returns:
            The new ``updated_at`` (epoch seconds).

        Raises:
            KeyError: unknown article.
        """
        with self._lock:
            article = self._articles[str(article_id)]
            translated = article.get("translated_content")
            if not isinstance(translated, dict):
                return self.edit_article(article_id, state="draft")
            now = self._tick()
            locales = [locale] if locale is not None else [key for key in translated if key != "type"]
            for each in locales:
                if isinstance(translated.get(each), dict):
                    translated[each].update(state="draft", updated_at=now)
            self._mirror_default_locale(article)
            article["updated_at"] = now
            return now

    def delete_article(self, article_id: str | int) -> None:
        """Remove an article; later ``GET /articles/{id}`` answers 404. Raises KeyError if unknown."""
        with self._lock:
            self._deleted_articles[str(article_id)] = self._article_json(self._articles[str(article_id)],
                                                                         single=False)
            del self._articles[str(article_id)]
            self._raw_articles.discard(str(article_id))

    def add_collection(
        self,
        name: str,
        *,
        collection_id: str | int | None = None,
        parent_id: str | int | None = None,
        description: str | None = None,
        order: int = 1,
        translations: Mapping[str, str] | None = None,
        default_locale: str | None = None,
        icon: str = "book-bookmark",
    ) -> str:
        """Add a collection (or, with ``parent_id``, a section) and return its id.

        Args:
            name: default-locale name.
            parent_id: parent collection id; ``None`` for a top-level collection.
            translations: ``{locale: name}``; makes it multilingual (``group_translated_content``).
        """
        with self._lock:
            new_id = self._allocate_id(collection_id, self._collections)
            now = self._tick()
            collection: dict[str, Any] = {
                "id": new_id,
                "workspace_id": self.workspace_id,
                "name": name,
                "url": f"{self.help_center_url}/collections/{new_id}-{_slug(name)}",
                "order": order,
                "created_at": now,
                "updated_at": now,
                "description": description,
                "icon": icon,
                "parent_id": str(parent_id) if parent_id is not None else None,
                "help_center_id": self.help_center_id,
            }
            if translations:
                collection["default_locale"] = default_locale or next(iter(translations))
                collection["translated_content"] = {"type": "group_translated_content"}
                for locale, localized in translations.items():
                    collection["translated_content"][locale] = {
                        "type": "group_content",
                        "name": localized,
                        "description": description or "",
                    }
            self._collections[new_id] = collection
            return new_id

    # ------------------------------------------------------------------ conversations

    def add_tag(self, name: str, *, tag_id: str | int | None = None) -> str:
        """Create a workspace tag and return its id."""
        with self._lock:
            new_id = str(tag_id) if tag_id is not None else self._allocate_id(None, self._tags)
            self._tags[new_id] = {"type": "tag", "id": new_id, "name": name}
            return new_id

    def add_conversation(
        self,
        body: str,
        *,
        contact_id: str = "6762f1571bb69f9f2193bbbb",
        contact_name: str = "Joe Bloggs",
        channel: str | None = "messenger",
        tags: list[str] | None = None,
        team_assignee_id: str | int | None = None,
        admin_assignee_id: str | int | None = None,
        conversation_id: str | int | None = None,
    ) -> str:
        """Start a conversation with a customer's first message (the ``source``); returns its id.

        Args:
            body: the customer's message (HTML).
            contact_id / contact_name: the customer (a ``user`` contact).
            channel: ``channel.initial`` / ``channel.current`` (``None`` leaves ``channel`` out).
            tags: ids of tags (from :meth:`add_tag`) already on the conversation.
            team_assignee_id / admin_assignee_id: current assignees (the team is the inbox).
            conversation_id: force an id (digits).
        """
        with self._lock:
            new_id = self._allocate_id(conversation_id, self._conversations)
            now = self._tick()
            conversation: dict[str, Any] = {
                "type": "conversation",
                "id": new_id,
                "title": None,
                "created_at": now,
                "updated_at": now,
                "waiting_since": now,
                "snoozed_until": None,
                "source": {
                    "type": "conversation",
                    "id": str(400000000 + int(new_id)),
                    "delivered_as": "customer_initiated",
                    "subject": "",
                    "body": body,
                    "author": {"type": "user", "id": contact_id, "name": contact_name,
                               "email": "customer@example.com"},
                    "attachments": [],
                    "url": None,
                    "redacted": False,
                },
                "contacts": {"type": "contact.list",
                             "contacts": [{"type": "contact", "id": contact_id, "external_id": None}]},
                "first_contact_reply": {"created_at": now, "type": "conversation", "url": None},
                "open": True,
                "state": "open",
                "read": False,
                "tags": {"type": "tag.list", "tags": []},
                "priority": "none",
                "sla_applied": None,
                "statistics": None,
                "conversation_rating": None,
                "teammates": None,
                "custom_attributes": {},
                "linked_objects": {"type": "list", "data": [], "total_count": 0, "has_more": False},
                "ai_agent_participated": False,
                "conversation_parts": {"type": "conversation_part.list", "conversation_parts": [],
                                       "total_count": 0},
            }
            if channel is not None:
                conversation["channel"] = {"initial": channel, "current": channel}
            if team_assignee_id is not None:
                conversation["team_assignee_id"] = int(team_assignee_id)
            if admin_assignee_id is not None:
                conversation["admin_assignee_id"] = int(admin_assignee_id)
            self._conversations[new_id] = conversation
            for tag_id in tags or []:
                self._apply_tag(conversation, str(tag_id), self.admin_id, now)
            return new_id

    def add_customer_reply(self, conversation_id: str | int, body: str) -> str:
        """The customer writes again (a ``comment`` part by the ``user``); returns the part id."""
        with self._lock:
            conversation = self._conversations[str(conversation_id)]
            author = dict(conversation["source"]["author"])
            return self._add_part(conversation, "comment", body, author)["id"]

    def add_admin_reply(self, conversation_id: str | int, body: str, *, admin_id: str = "814860",
                        name: str = "Ciara Agent", part_type: str = "comment") -> str:
        """A teammate (not the bot admin) writes in the conversation — a ``comment`` the customer sees, or a
        ``note``; returns the part id. The author is a ``conversation_part_author`` of type ``admin``."""
        with self._lock:
            conversation = self._conversations[str(conversation_id)]
            author = {"type": "admin", "id": str(admin_id), "name": name, "email": "agent@example.com",
                      "from_ai_agent": False, "is_ai_answer": False}
            part = self._add_part(conversation, part_type, body, author)
            conversation["waiting_since"] = None
            return part["id"]

    def set_team(self, conversation_id: str | int, team_id: str | int) -> None:
        """Assign the conversation to a team (inbox), as an agent or a rule would."""
        with self._lock:
            self._conversations[str(conversation_id)]["team_assignee_id"] = int(team_id)

    def conversation_payload(self, conversation_id: str | int) -> dict[str, Any]:
        """What ``GET /conversations/{id}`` would answer (a deep copy). Raises KeyError if unknown."""
        with self._lock:
            return json.loads(json.dumps(self._conversations[str(conversation_id)]))

    def parts(self, conversation_id: str | int, part_type: str | None = None) -> list[dict[str, Any]]:
        """Copies of a conversation's parts (only ``part_type`` ones when given), oldest first."""
        with self._lock:
            parts = self._conversations[str(conversation_id)]["conversation_parts"]["conversation_parts"]
            return [json.loads(json.dumps(p)) for p in parts if part_type is None or p["part_type"] == part_type]

    def notification(
        self,
        topic: str,
        *,
        conversation_id: str | int | None = None,
        article_id: str | int | None = None,
        notification_id: str | None = None,
        delivery_attempts: int = 1,
    ) -> dict[str, Any]:
        """A webhook ``notification_event`` envelope whose ``data.item`` is the current object.

        ``item`` is the conversation (``conversation_id``) or the article (``article_id``; the last
        known payload of a deleted one), as Intercom sends them; ``ping`` needs neither.
        """
        with self._lock:
            if conversation_id is not None:
                item = self.conversation_payload(conversation_id)
            elif article_id is not None:
                key = str(article_id)
                item = (self._article_json(self._articles[key], single=False) if key in self._articles
                        else json.loads(json.dumps(self._deleted_articles[key])))
            else:
                item = {"type": "ping", "message": "something interesting happened"}
            now = int(time.time())
            return {
                "type": "notification_event",
                "app_id": self.app_id,
                "data": {"type": "notification_event_data", "item": item},
                "links": {},
                "id": notification_id or f"notif_{uuid.uuid4()}",
                "topic": topic,
                "delivery_status": "pending",
                "delivery_attempts": delivery_attempts,
                "delivered_at": 0,
                "first_sent_at": now,
                "created_at": now,
                "self": None,
            }

    def delay_next(self, n: int, seconds: float, *, method: str | None = None, path: str | None = None) -> None:
        """Handle the next ``n`` matching requests normally but answer them ``seconds`` late.

        The state change (a note posted, …) happens before the wait, like a server whose response is
        lost to a client timeout.
        """
        with self._lock:
            self._delays.append(DelayRule(remaining=n, seconds=seconds, method=method, path=path))

    def take_delay(self, method: str, path: str) -> float:
        """Seconds to hold the response of this request (consumes one matching :class:`DelayRule`)."""
        with self._lock:
            for rule in self._delays:
                if rule.matches(method, path):
                    rule.remaining -= 1
                    return rule.seconds
            return 0.0

    def fail_next(
        self,
        n: int,
        status: int = 429,
        headers: Mapping[str, str] | None = None,
        *,
        path: str | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``n`` requests (to ``path`` only, if given) with ``status``.

        Args:
            n: how many requests fail.
            status: HTTP status (429, 500, 503, ...).
            headers: response headers; default ``{"Retry-After": "1"}``. Use e.g.
                ``{"X-RateLimit-Reset": str(epoch_seconds)}`` for Intercom's own rate-limit header.
            path: only requests to this exact path (``"/articles"``) fail.
            body: JSON body; default an ``error`` object for ``status``.
        """
        with self._lock:
            self._failures.append(
                FailureRule(
                    remaining=n,
                    status=status,
                    headers=dict(headers) if headers is not None else {"Retry-After": "1"},
                    path=path,
                    body=body,
                )
            )

    @property
    def requests(self) -> list[RequestRecord]:
        """Copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            self._log.clear()

    def article_payload(self, article_id: str | int) -> dict[str, Any]:
        """What ``GET /articles/{id}`` would answer (a deep copy)."""
        with self._lock:
            return self._article_json(self._articles[str(article_id)], single=True)

    # ------------------------------------------------------------------ request handling

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], Any]:
        """Route one request; returns ``(status, extra headers, JSON body)`` and logs it."""
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        query = parse_qs(split.query)
        request_body: Any = None
        if body:
            try:
                request_body = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                request_body = body.decode("utf-8", errors="replace")
        with self._lock:
            status, extra_headers, response = self._route(method, path, query, headers, request_body)
            self._log.append(
                RequestRecord(
                    method=method,
                    path=path,
                    query=query,
                    time=time.monotonic(),
                    wall_time=time.time(),
                    status=status,
                    headers={k.lower(): v for k, v in headers.items()},
                    body=request_body,
                )
            )
        return status, extra_headers, response

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        body: Any = None,
    ) -> tuple[int, dict[str, str], Any]:
        self._failures = [rule for rule in self._failures if rule.remaining > 0]
        for rule in self._failures:
            if rule.matches(path):
                rule.remaining -= 1
                body = rule.body if rule.body is not None else _error_body(rule.status)
                return rule.status, dict(rule.headers), body

        authorization = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if authorization != f"Bearer {self.token}":
            return 401, {}, _error_body(401)
        match = re.fullmatch(r"/conversations/([^/]+)(?:/(reply|tags|parts))?", path)
        if match:
            return self._route_conversation(method, match.group(1), match.group(2), body)
        if method != "GET":
            return 404, {}, _error_body(404)
        if path == "/articles":
            items = sorted(self._articles.values(), key=_newest_first)
            return 200, {}, self._page(query, [self._article_json(a, single=False) for a in items])
        match = re.fullmatch(r"/articles/([^/]+)", path)
        if match:
            article = self._articles.get(match.group(1))
            if article is None:
                return 404, {}, _error_body(404)
            return 200, {}, self._article_json(article, single=True)
        if path == "/help_center/collections":
            items = sorted(self._collections.values(), key=_newest_first)
            return 200, {}, self._page(query, [json.loads(json.dumps(c)) for c in items])
        return 404, {}, _error_body(404)

    def _route_conversation(
        self, method: str, conversation_id: str, action: str | None, body: Any
    ) -> tuple[int, dict[str, str], Any]:
        """``GET /conversations/{id}`` and ``POST /conversations/{id}/reply|tags|parts``."""
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            return 404, {}, _error_body(404)
        if action is None:
            if method != "GET":
                return 404, {}, _error_body(404)
            return 200, {}, json.loads(json.dumps(conversation))
        if method != "POST":
            return 404, {}, _error_body(404)
        if not isinstance(body, dict):
            return 400, {}, _error_body(400)
        if action == "reply":
            return self._reply(conversation, body)
        if action == "tags":
            tag_id, admin_id = body.get("id"), body.get("admin_id")
            if not isinstance(tag_id, str) or not isinstance(admin_id, str):
                return 400, {}, _error_body(400)
            if tag_id not in self._tags:
                return 404, {}, _error_body(404)
            tag = self._apply_tag(conversation, tag_id, admin_id, self._tick())
            return 200, {}, json.loads(json.dumps(tag))
        # parts: only assignment is modelled (assign_conversation_request)
        if (body.get("message_type") != "assignment" or body.get("type") not in {"admin", "team"}
                or not isinstance(body.get("admin_id"), str) or not isinstance(body.get("assignee_id"), str)
                or not body["assignee_id"].isdigit()):
            return 400, {}, _error_body(400)
        key = "team_assignee_id" if body["type"] == "team" else "admin_assignee_id"
        conversation[key] = int(body["assignee_id"])
        author = {"type": "admin", "id": body["admin_id"], "name": "citedesk", "email": "bot@example.com"}
        part = self._add_part(conversation, "assignment", body.get("body") or "", author)
        part["assigned_to"] = {"type": "team" if body["type"] == "team" else "admin", "id": body["assignee_id"]}
        return 200, {}, self._with_parts(conversation, [part])

    def _reply(self, conversation: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """``reply_conversation_request``: admin comment / note, or a contact comment."""
        message_type = body.get("message_type")
        text = body.get("body")
        if body.get("type") == "admin":
            if message_type not in {"comment", "note"} or not isinstance(body.get("admin_id"), str):
                return 400, {}, _error_body(400)
            if not isinstance(text, str) or not text:
                return 400, {}, _error_body(400)  # "Must be present for comment and note message types"
            urls = body.get("attachment_urls")
            if urls is not None and (not isinstance(urls, list) or len(urls) > 10):
                return 400, {}, _error_body(400)
            author = {"type": "admin", "id": body["admin_id"], "name": "citedesk", "email": "bot@example.com"}
        elif body.get("type") == "user":
            if message_type != "comment" or not isinstance(text, str) or not text:
                return 400, {}, _error_body(400)
            author = dict(conversation["source"]["author"])
        else:
            return 400, {}, _error_body(400)
        part = self._add_part(conversation, message_type, text, author)
        if urls := body.get("attachment_urls"):
            part["attachments"] = [{"type": "upload", "name": u.rsplit("/", 1)[-1], "url": u,
                                    "content_type": "image/png", "filesize": 0, "width": 0, "height": 0}
                                   for u in urls]
        return 200, {}, self._with_parts(conversation, [part])

    def _add_part(self, conversation: dict[str, Any], part_type: str, body: str,
                  author: dict[str, Any]) -> dict[str, Any]:
        now = self._tick()
        self._next_part_id += 1
        part = {
            "type": "conversation_part",
            "id": str(self._next_part_id),
            "part_type": part_type,
            "body": body,
            "created_at": now,
            "updated_at": now,
            "notified_at": now,
            "author": author,
            "attachments": [],
            "external_id": None,
            "redacted": False,
            "metadata": {},
            "app_package_code": None,
        }
        parts = conversation["conversation_parts"]
        parts["conversation_parts"].append(part)
        parts["total_count"] = len(parts["conversation_parts"])
        conversation["updated_at"] = now
        return part

    def _apply_tag(self, conversation: dict[str, Any], tag_id: str, admin_id: str, now: int) -> dict[str, Any]:
        tag = dict(self._tags[tag_id], applied_at=now, applied_by={"type": "admin", "id": admin_id})
        tags = conversation["tags"]["tags"]
        if all(t["id"] != tag_id for t in tags):
            tags.append(tag)
        return tag

    @staticmethod
    def _with_parts(conversation: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
        """The conversation with only ``parts`` listed (what reply / manage answer)."""
        payload = json.loads(json.dumps(conversation))
        payload["conversation_parts"] = {"type": "conversation_part.list",
                                         "conversation_parts": json.loads(json.dumps(parts)),
                                         "total_count": len(parts)}
        return payload

    def _page(self, query: dict[str, list[str]], items: list[dict[str, Any]]) -> dict[str, Any]:
        """A list response (``article_list`` / ``collection_list``) for the requested page."""
        page = max(_int_param(query, "page", 1), 1)
        per_page = max(_int_param(query, "per_page", DEFAULT_PER_PAGE), 1)
        total_pages = -(-len(items) // per_page)
        start = (page - 1) * per_page
        return {
            "type": "list",
            "pages": {"type": "pages", "page": page, "per_page": per_page, "total_pages": total_pages},
            "total_count": len(items),
            "data": items[start : start + per_page],
        }

    def _article_json(self, article: dict[str, Any], *, single: bool) -> dict[str, Any]:
        payload = json.loads(json.dumps(article))
        if single and str(article.get("id")) not in self._raw_articles:
            payload["statistics"] = {
                "type": "article_statistics",
                "views": 0,
                "conversions": 0,
                "reactions": 0,
                "happy_reaction_percentage": 0.0,
                "neutral_reaction_percentage": 0.0,
                "sad_reaction_percentage": 0.0,
            }
        return payload

    # ------------------------------------------------------------------ internals

    def _tick(self) -> int:
        """Epoch seconds, strictly larger than every timestamp given so far."""
        self._last_timestamp = max(int(time.time()), self._last_timestamp + 1)
        return self._last_timestamp

    def _allocate_id(self, wanted: str | int | None, taken: Mapping[str, Any]) -> str:
        if wanted is not None:
            new_id = str(wanted)
            if new_id in taken:
                raise ValueError(f"id {new_id} already exists")
            return new_id
        while str(self._next_id) in self._articles or str(self._next_id) in self._collections:
            self._next_id += 1
        self._next_id += 1
        return str(self._next_id - 1)

    def _article_url(self, article_id: str, title: str, locale: str) -> str:
        return f"{self.help_center_url}/{locale}/articles/{article_id}-{_slug(title)}"

    def _content(
        self, article_id: str, locale: str, values: Mapping[str, Any], article: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An ``article_content`` object for ``locale``."""
        title = values.get("title", article["title"])
        return {
            "type": "article_content",
            "title": title,
            "description": values.get("description", ""),
            "body": values.get("body", "<p></p>"),
            "author_id": article["author_id"],
            "state": values.get("state", "published"),
            "created_at": article["created_at"],
            "updated_at": values.get("updated_at", article["updated_at"]),
            "url": values.get("url", self._article_url(article_id, title, locale)),
        }

    @staticmethod
    def _mirror_default_locale(article: dict[str, Any]) -> None:
        """Root fields of a multilingual article are its default locale's (per the spec)."""
        content = article["translated_content"].get(article["default_locale"])
        if isinstance(content, dict):
            for key in ("title", "description", "body", "state", "url"):
                article[key] = content[key]


# ---------------------------------------------------------------------- helpers


def _newest_first(item: Mapping[str, Any]) -> tuple[int, int]:
    updated = item.get("updated_at")
    item_id = str(item.get("id", ""))
    return (-(updated if isinstance(updated, int) else 0), -int(item_id) if item_id.isdigit() else 0)


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(query[name][0])
    except (KeyError, IndexError, ValueError):
        return default


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "article"


def _error_body(status: int) -> dict[str, Any]:
    """An ``error`` object (``error.list``) for ``status``."""
    code, message = _ERROR_MESSAGES.get(status, ("server_error", f"HTTP {status}"))
    return {
        "type": "error.list",
        "request_id": str(uuid.uuid4()),
        "errors": [{"code": code, "message": message}],
    }


def _make_handler(double: IntercomDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real API
        timeout = 5  # seconds an idle keep-alive connection is kept
        disable_nagle_algorithm = True  # headers and body are two writes: avoid 40 ms ACK stalls

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, headers, body = double.handle(self.command, self.path, dict(self.headers.items()), raw)
            delay = double.take_delay(self.command, urlsplit(self.path).path.rstrip("/") or "/")
            if delay:
                time.sleep(delay)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
            pass

    return Handler
