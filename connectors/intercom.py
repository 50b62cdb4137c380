"""Intercom Help Center connector (the only module that imports the python-intercom SDK).

:class:`IntercomConnector` lists published help-center articles through the official
python-intercom SDK (Fern-generated, ``intercom`` package) and turns each published
locale into one :class:`core.types.Article`. For the chat-draft middleware it also reads
conversations (``fetch_conversation``), posts notes / replies (``reply``), tags and assigns them.

How the SDK is configured (python-intercom 5.0.1):

* **Base URL** — ``Intercom(base_url=...)`` wins over ``environment=`` (``intercom/client.py``,
  ``_get_base_url``), so a self-hosted proxy, the EU/AU regions or a test double all work.
* **Retries** — the SDK retries 429, 408, 409 and 5xx (``core/http_client.py``, ``_should_retry``),
  waiting ``Retry-After`` seconds, else until ``X-RateLimit-Reset`` (epoch seconds), else an
  exponential backoff; every wait is capped at 60 s (``_retry_timeout``). Retries are only
  enabled per request, through ``request_options={"max_retries": N}``; the default is none.
  Its retry counter starts at 2, not 0 (``HttpClient.request(..., retries: int = 2)`` guarded by
  ``if max_retries > retries``), so ``max_retries=N`` gives only ``N - 2`` retries — the known
  Fern bug fern-api/fern#17337. :func:`_sdk_retry_counter_start` reads that default and the
  connector adds it back, so ``IntercomConnector(max_retries=N)`` really retries ``N`` times.
* **Connection errors** — the SDK does not retry them; the connector gives the SDK its own
  ``httpx.Client`` whose transport retries failed connects ``max_retries`` times.
* **API version** — every request sends ``Intercom-Version: 2.16`` (:data:`INTERCOM_API_VERSION`),
  the version the payload handling (and the test double) are built against.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from intercom import AdminReplyConversationRequest, Intercom
from intercom.conversations import ConversationsManageRequestBody_Assignment
from intercom.core.api_error import ApiError
from intercom.core.http_client import HttpClient
from intercom.errors import UnauthorizedError
from pydantic import ValidationError

from connectors.webhooks import Conversation, WebhookPayloadError, parse_conversation
from core.errors import ConfigError, ConnectorError
from core.protocols import SourceFailure
from core.types import Article

__all__ = ["INTERCOM_API_VERSION", "IntercomConnector"]

logger = logging.getLogger(__name__)

INTERCOM_API_VERSION = "2.16"
"""Value of the ``Intercom-Version`` header sent with every request."""

DEFAULT_LOCALE = "en"
"""Locale given to articles of single-language help centers (no ``default_locale`` field)."""

_MAX_LISTING_PASSES = 3
"""How many times :meth:`IntercomConnector.list_articles` re-reads a list that changed under it."""

_SDK_RETRIED_STATUSES = frozenset({408, 409, 429})
"""4xx statuses the SDK retries (``_should_retry``), besides every 5xx."""

_TRANSLATED_CONTENT_META_KEYS = frozenset({"type"})
"""Keys of ``translated_content`` that are not locales."""


@functools.cache
def _sdk_retry_counter_start() -> int:
    """Return the value the SDK's retry counter starts from (2 in python-intercom 5.0.1).

    ``HttpClient.request`` retries while ``max_retries > retries`` and ``retries`` defaults to this
    value, so the number of retries actually made is ``max_retries - start``. Reading the default
    keeps the connector right if a later SDK release fixes the counter to start at 0.
    """
    try:
        default = inspect.signature(HttpClient.request).parameters["retries"].default
    except (KeyError, TypeError, ValueError):  # pragma: no cover - SDK internals changed shape
        return 0
    return default if isinstance(default, int) and default >= 0 else 0


@dataclass(frozen=True)
class _Collection:
    """A help-center collection or section (a section is a collection with a ``parent_id``)."""

    name: str
    parent_id: str | None
    names_by_locale: dict[str, str] = field(default_factory=dict)

    def localized_name(self, locale: str) -> str:
        """Name in ``locale`` when the collection is translated, else its default name."""
        return self.names_by_locale.get(locale) or self.name


class IntercomConnector:
    """Published Intercom Help Center articles, one :class:`Article` per published locale.

    The constructor does no I/O; the SDK client is built on first use. Use as a context manager,
    or call :meth:`close`, to release the HTTP connection pool. Not thread-safe: use one
    connector per thread.

    Attributes:
        name: always ``"intercom"``.
    """

    name = "intercom"

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://api.intercom.io",
        workspace: str | None = None,
        per_page: int = 50,
        max_retries: int = 5,
        timeout: float = 30.0,
        locales: list[str] | None = None,
    ) -> None:
        """Configure the connector (no network access).

        Args:
            token: Intercom access token (sent as ``Authorization: Bearer``).
            base_url: API root, e.g. ``https://api.eu.intercom.io`` or a test double's URL.
            workspace: tenant id stored on every article; ``None`` uses each article's
                ``workspace_id``.
            per_page: articles / collections requested per page (Intercom allows 1-250).
            max_retries: retries per request on 429 / 408 / 409 / 5xx (and on failed connects)
                before giving up; 0 disables retries. Waits honour ``Retry-After`` (seconds) and
                ``X-RateLimit-Reset`` (epoch seconds), capped at 60 s per wait by the SDK.
            timeout: seconds per HTTP request.
            locales: yield only these locales (e.g. ``["en", "fr"]``); ``None`` yields all
                published locales.

        Raises:
            ConfigError: on an empty token or out-of-range numbers.
        """
        if not token:
            raise ConfigError("Intercom access token is empty (set CITEDESK_INTERCOM__TOKEN)")
        if not 1 <= per_page <= 250:
            raise ConfigError(f"intercom per_page must be within 1..250, got {per_page}")
        if max_retries < 0:
            raise ConfigError(f"intercom max_retries must be >= 0, got {max_retries}")
        if timeout <= 0:
            raise ConfigError(f"intercom timeout must be > 0 seconds, got {timeout}")
        self._token = token
        self._base_url = base_url.rstrip("/")
        self._configured_workspace = workspace
        self._seen_workspace: str | None = None
        self._per_page = per_page
        self._max_retries = max_retries
        self._timeout = timeout
        self._locales = frozenset(locales) if locales is not None else None
        self._client: Intercom | None = None
        self._httpx_client: httpx.Client | None = None
        self._collections: dict[str, _Collection] | None = None
        self._collections_fresh = False  # listed during the current listing / fetch

    # ------------------------------------------------------------------ public API

    @property
    def workspace(self) -> str:
        """Tenant id: the configured ``workspace``, else the last article's ``workspace_id``.

        Empty string until a listing has seen an article when no workspace was configured.
        """
        return self._configured_workspace or self._seen_workspace or ""

    def list_articles(self) -> Iterator[Article | SourceFailure]:
        """Yield every published article locale, in Intercom's order (``updated_at`` desc).

        Drafts and draft locales are skipped. Multilingual articles yield one :class:`Article` per
        published locale of ``translated_content``; others yield their root content with locale
        ``default_locale`` (or ``"en"``). ``updated_at`` is Unix epoch seconds. An article whose
        payload cannot be converted yields a :class:`SourceFailure` and the listing carries on.

        Collections are listed once per call (only when an article has ``parent_ids``) to build
        breadcrumbs. If articles are created, edited or deleted while the pages are read (which
        shifts the page boundaries and could hide an article), the list is read again and only
        articles not yet yielded are yielded.

        Yields:
            :class:`Article` or :class:`SourceFailure` items; each article id at most once.

        Raises:
            ConnectorError: the token is rejected (401), a request failed after retries
                (status code and endpoint in the message), Intercom could not be reached, or the
                list kept changing during :data:`_MAX_LISTING_PASSES` passes.
        """
        self._collections = None  # collections are listed (lazily) once per listing
        seen_ids: set[str] = set()
        for listing_pass in range(1, _MAX_LISTING_PASSES + 1):
            head_before: tuple[int | None, tuple[str, Any] | None] | None = None
            for page_number, page in self._iter_article_pages():
                if page_number == 1:
                    head_before = _list_head(page.response)
                for item in page.items or []:
                    article_id = _item_id(item)
                    if article_id is not None and article_id in seen_ids:
                        continue
                    if article_id is not None:
                        seen_ids.add(article_id)
                    yield from self._convert(item, page_number=page_number)
            if head_before is None or self._list_head_now() == head_before:
                return
            logger.warning(
                "Intercom article list changed during listing pass %d; reading it again", listing_pass
            )
        raise ConnectorError(
            f"Intercom article list kept changing while it was read ({_MAX_LISTING_PASSES} passes "
            "over GET /articles); try the sync again later"
        )

    def fetch_article(self, article_id: str) -> list[Article]:
        """Fetch one article (``GET /articles/{id}``) and return its published locales.

        Args:
            article_id: Intercom article id (decimal digits).

        Returns:
            One :class:`Article` per published (and, with ``locales``, selected) locale;
            ``[]`` when the article does not exist (404, deleted) or is not published.

        Raises:
            ConnectorError: token rejected (401), request failed after retries, Intercom
                unreachable, or the article's payload is malformed.
        """
        article_id = str(article_id).strip()
        if not article_id.isdigit():  # Intercom ids are integers: such an article cannot exist
            return []
        endpoint = f"GET /articles/{article_id}"
        client = self._sdk()
        self._collections_fresh = False  # the cache may predate a new collection
        try:
            with self._translate_errors(endpoint, not_found_ok=True):
                item = client.articles.find(int(article_id), request_options=self._request_options())
        except _NotFoundError:
            return []
        articles: list[Article] = []
        for result in self._convert(item, page_number=None):
            if isinstance(result, SourceFailure):
                where = f" locale {result.locale}" if result.locale else ""
                raise ConnectorError(
                    f"Intercom article {result.article_id}{where} is malformed ({endpoint}): {result.error}"
                )
            articles.append(result)
        return articles

    # ------------------------------------------------------------------ conversations (middleware)

    def fetch_conversation(self, conversation_id: str) -> Conversation:
        """Fetch one conversation with its parts (``GET /conversations/{id}``, HTML bodies).

        Args:
            conversation_id: Intercom conversation id.

        Returns:
            The parsed :class:`connectors.webhooks.Conversation` (source message then parts).

        Raises:
            ConnectorError: 401 / 404 / a status that survived the retries, Intercom unreachable, or a
                payload that is not a conversation.
        """
        endpoint = f"GET /conversations/{conversation_id}"
        with self._translate_errors(endpoint):
            item = self._sdk().conversations.find(str(conversation_id), request_options=self._request_options())
        try:
            return parse_conversation(item.dict(warnings=False))
        except WebhookPayloadError as exc:
            raise ConnectorError(f"Intercom answered {endpoint} with a malformed conversation: {exc}") from exc

    def reply(self, conversation_id: str, *, admin_id: str, body: str, message_type: str = "note") -> str:
        """Post an admin reply (``POST /conversations/{id}/reply``): an internal note or a customer comment.

        Args:
            conversation_id: Intercom conversation id.
            admin_id: the admin the reply is authored by.
            body: HTML body (notes accept some HTML formatting).
            message_type: ``"note"`` (internal, default) or ``"comment"`` (seen by the customer).

        Returns:
            The id of the conversation part created (``""`` when the response lists none).

        Raises:
            ConfigError: ``message_type`` is neither ``note`` nor ``comment``.
            ConnectorError: as :meth:`fetch_conversation`. A read timeout leaves it unknown whether the
                part was created: callers reconcile by looking for it (see ``serving/middleware.py``).
        """
        if message_type not in {"note", "comment"}:
            raise ConfigError(f"reply message_type must be note or comment, got {message_type!r}")
        endpoint = f"POST /conversations/{conversation_id}/reply"
        request = AdminReplyConversationRequest(message_type=message_type, type="admin", admin_id=str(admin_id),
                                                body=body)
        with self._translate_errors(endpoint):
            result = self._sdk().conversations.reply(str(conversation_id), request=request,
                                                     request_options=self._request_options())
        try:
            parts = parse_conversation(result.dict(warnings=False)).messages
        except WebhookPayloadError:
            return ""
        created = [m for m in parts if m.part_type == message_type and m.author_type == "admin"]
        return created[-1].part_id if created else ""

    def tag_conversation(self, conversation_id: str, *, tag_id: str, admin_id: str) -> None:
        """Apply an existing tag (``POST /conversations/{id}/tags``).

        Raises:
            ConnectorError: unknown conversation or tag (404), or as :meth:`fetch_conversation`.
        """
        with self._translate_errors(f"POST /conversations/{conversation_id}/tags"):
            self._sdk().tags.tag_conversation(str(conversation_id), tag_id=str(tag_id), admin_id=str(admin_id),
                                              request_options=self._request_options())

    def assign_conversation(self, conversation_id: str, *, admin_id: str, team_id: str,
                            body: str | None = None) -> None:
        """Assign the conversation to a team (``POST /conversations/{id}/parts``, ``message_type: assignment``).

        Args:
            conversation_id: Intercom conversation id.
            admin_id: the admin performing the assignment.
            team_id: the team (inbox) that gets the conversation.
            body: optional note shown with the assignment.

        Raises:
            ConnectorError: as :meth:`fetch_conversation`.
        """
        extra = {"body": body} if body else {}  # an explicit None would be sent as null, which the spec rejects
        request = ConversationsManageRequestBody_Assignment(type="team", admin_id=str(admin_id),
                                                            assignee_id=str(team_id), **extra)
        with self._translate_errors(f"POST /conversations/{conversation_id}/parts"):
            self._sdk().conversations.manage(str(conversation_id), request=request,
                                             request_options=self._request_options())

    def close(self) -> None:
        """Close the HTTP connection pool (the connector can be used again afterwards)."""
        if self._httpx_client is not None:
            self._httpx_client.close()
        self._httpx_client = None
        self._client = None

    def __enter__(self) -> IntercomConnector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"IntercomConnector(base_url={self._base_url!r}, workspace={self.workspace!r})"

    # ------------------------------------------------------------------ SDK plumbing

    def _sdk(self) -> Intercom:
        """Build (once) the SDK client pointed at ``base_url`` with our own ``httpx.Client``."""
        if self._client is None:
            self._httpx_client = httpx.Client(
                timeout=self._timeout,
                follow_redirects=True,
                # The SDK only retries on HTTP statuses; let the transport retry failed connects.
                transport=httpx.HTTPTransport(retries=self._max_retries),
            )
            self._client = Intercom(
                token=self._token,
                base_url=self._base_url,
                timeout=self._timeout,
                headers={"Intercom-Version": INTERCOM_API_VERSION},
                httpx_client=self._httpx_client,
            )
        return self._client

    def _request_options(self) -> dict[str, Any]:
        """Per-request SDK options: the retry budget, corrected for the SDK's counter offset."""
        return {"max_retries": self._max_retries + _sdk_retry_counter_start()}

    @contextmanager
    def _translate_errors(self, endpoint: str, *, not_found_ok: bool = False) -> Iterator[None]:
        """Turn SDK / httpx exceptions raised for ``endpoint`` into :class:`ConnectorError`.

        Args:
            endpoint: ``"METHOD /path"`` named in error messages.
            not_found_ok: raise the private :class:`_NotFoundError` on 404 (the caller treats it as
                "deleted") instead of :class:`ConnectorError`.
        """
        try:
            yield
        except UnauthorizedError as exc:
            raise ConnectorError(
                f"Intercom rejected the access token (HTTP 401 on {endpoint} at {self._base_url}); "
                f"check the token and its scopes: {_error_summary(exc.body)}"
            ) from exc
        except ApiError as exc:  # NotFoundError and UnauthorizedError subclass it
            if exc.status_code == 404 and not_found_ok:
                raise _NotFoundError(endpoint) from exc
            if exc.status_code is not None and 200 <= exc.status_code < 300:
                raise ConnectorError(
                    f"Intercom answered {endpoint} with an unreadable body "
                    f"(HTTP {exc.status_code}): {_error_summary(exc.body)}"
                ) from exc
            retried = exc.status_code in _SDK_RETRIED_STATUSES or (exc.status_code or 0) >= 500
            after = f" after {self._max_retries} retries" if retried else ""
            raise ConnectorError(
                f"Intercom answered HTTP {exc.status_code} on {endpoint} at {self._base_url}{after}: "
                f"{_error_summary(exc.body)}"
            ) from exc
        except httpx.HTTPError as exc:
            raise ConnectorError(
                f"could not reach Intercom at {self._base_url} ({endpoint}): {type(exc).__name__}: {exc}"
            ) from exc

    def _iter_article_pages(self) -> Iterator[tuple[int, Any]]:
        """Yield ``(page_number, SyncPager page)`` for ``GET /articles``, via the SDK's pager."""
        client = self._sdk()
        page_number = 1
        with self._translate_errors(f"GET /articles?page={page_number}"):
            pager = client.articles.list(per_page=self._per_page, request_options=self._request_options())
        pages = pager.iter_pages()
        while True:
            with self._translate_errors(f"GET /articles?page={page_number}"):
                page = next(pages, None)
            if page is None:
                return
            yield page_number, page
            page_number += 1

    def _list_head_now(self) -> tuple[int | None, tuple[str, Any] | None]:
        """Re-read the first list item and the total count (cheap change detection)."""
        with self._translate_errors("GET /articles?page=1"):
            pager = self._sdk().articles.list(page=1, per_page=1, request_options=self._request_options())
        return _list_head(pager.response)

    def _collections_by_id(self) -> dict[str, _Collection]:
        """All help-center collections and sections by id (listed once, then cached)."""
        if self._collections is None:
            collections: dict[str, _Collection] = {}
            endpoint = "GET /help_center/collections"
            with self._translate_errors(endpoint):
                pager = self._sdk().help_centers.collections.list(
                    per_page=self._per_page, request_options=self._request_options()
                )
                for collection in pager:
                    parsed = _parse_collection(collection)
                    if parsed is not None:
                        collections[parsed[0]] = parsed[1]
            self._collections = collections
            self._collections_fresh = True
        return self._collections

    # ------------------------------------------------------------------ payload → Article

    def _convert(self, item: Any, *, page_number: int | None) -> Iterator[Article | SourceFailure]:
        """Turn one SDK article model into published :class:`Article` items (or failures)."""
        article_id = _item_id(item)
        if article_id is None:
            where = f" on page {page_number}" if page_number is not None else ""
            yield SourceFailure(article_id="<missing id>", error=f"article without an id{where}")
            return
        try:
            raw = item.dict(warnings=False)  # SDK models dump to the wire shape (aliases kept)
            contents = list(self._published_contents(raw))
            workspace = self._configured_workspace or raw.get("workspace_id")
            if not isinstance(workspace, str) or not workspace:
                raise ValueError("workspace_id is missing and no workspace was configured")
            if not self._configured_workspace:
                self._seen_workspace = workspace
            parent_ids = raw.get("parent_ids") or []
            if not isinstance(parent_ids, list):
                raise ValueError(f"parent_ids is not a list: {parent_ids!r}")
        except Exception as exc:  # noqa: BLE001 - one bad payload must not abort the listing
            logger.warning("Intercom article %s skipped: %s", article_id, exc)
            yield SourceFailure(article_id=article_id, error=_describe(exc))
            return

        for locale, content in contents:
            try:
                yield Article(
                    source=self.name,
                    workspace=workspace,
                    article_id=article_id,
                    locale=locale,
                    title=_required_text(content, "title"),
                    body=_optional_text(content, "body"),
                    body_format="html",
                    url=_optional_text(content, "url") or None,
                    breadcrumbs=self._breadcrumbs(parent_ids, locale) if parent_ids else [],
                    updated_at=_epoch_seconds(
                        _first_not_none(content.get("updated_at"), raw.get("updated_at"))
                    ),
                )
            except ConnectorError:
                raise  # collections could not be listed: the listing itself failed
            except Exception as exc:  # noqa: BLE001 - report this locale, keep the others
                logger.warning("Intercom article %s (%s) skipped: %s", article_id, locale, exc)
                yield SourceFailure(article_id=article_id, locale=locale, error=_describe(exc))

    def _published_contents(self, raw: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(locale, content)`` for each published, selected locale of one article payload.

        Multilingual articles carry one ``article_content`` per locale in ``translated_content``
        (``null`` for locales without a translation); others carry their content at the root.
        """
        translated = raw.get("translated_content")
        if translated is not None:
            if not isinstance(translated, dict):
                raise ValueError(f"translated_content is not an object: {type(translated).__name__}")
            for locale, content in translated.items():
                if locale in _TRANSLATED_CONTENT_META_KEYS or content is None:
                    continue
                if not isinstance(content, dict):
                    raise ValueError(f"translated_content[{locale!r}] is not an object")
                if content.get("state") == "published" and self._wants(locale):
                    yield locale, content
            return
        if raw.get("state") != "published":
            return
        locale = raw.get("default_locale") or DEFAULT_LOCALE
        if not isinstance(locale, str):
            raise ValueError(f"default_locale is not a string: {locale!r}")
        if self._wants(locale):
            yield locale, raw

    def _wants(self, locale: str) -> bool:
        return self._locales is None or locale in self._locales

    def _breadcrumbs(self, parent_ids: list[Any], locale: str) -> list[str]:
        """Collection / section names from the root down to the article's deepest parent.

        ``parent_ids`` may list a collection and its sections, or parents in several help centers;
        the longest known chain wins (first listed on ties). Unknown ids are ignored.
        """
        collections = self._collections_by_id()
        if not self._collections_fresh and any(str(pid) not in collections for pid in parent_ids):
            self._collections = None  # cached by an earlier call: a collection may be new
            collections = self._collections_by_id()
        best: list[_Collection] = []
        for parent_id in parent_ids:
            chain: list[_Collection] = []
            visited: set[str] = set()
            current: str | None = str(parent_id)
            while current is not None and current in collections and current not in visited:
                visited.add(current)  # guards against a parent_id cycle
                chain.append(collections[current])
                current = collections[current].parent_id
            if len(chain) > len(best):
                best = chain
        return [node.localized_name(locale) for node in reversed(best)]


class _NotFoundError(Exception):
    """Internal signal: the endpoint answered 404."""


# ---------------------------------------------------------------------- helpers


def _item_id(item: Any) -> str | None:
    """The article id as a string, or ``None`` when the payload has none."""
    value = getattr(item, "id", None)
    if value is None or isinstance(value, bool) or value == "":
        return None
    return str(value)


def _list_head(article_list: Any) -> tuple[int | None, tuple[str, Any] | None]:
    """``(total_count, (first id, first updated_at))`` of an ``article_list`` response."""
    data = getattr(article_list, "data", None) or []
    first = data[0] if data else None
    head = (str(getattr(first, "id", "")), getattr(first, "updated_at", None)) if first is not None else None
    return getattr(article_list, "total_count", None), head


def _parse_collection(collection: Any) -> tuple[str, _Collection] | None:
    """``(id, _Collection)`` from an SDK collection model; ``None`` when it has no id or name."""
    collection_id = getattr(collection, "id", None)
    name = getattr(collection, "name", None)
    if collection_id is None or not isinstance(name, str):
        logger.warning("Intercom collection %r ignored: missing id or name", collection_id)
        return None
    parent_id = getattr(collection, "parent_id", None)
    names: dict[str, str] = {}
    translated = getattr(collection, "translated_content", None)
    if translated is not None:
        try:
            for locale, content in translated.dict(warnings=False).items():
                if isinstance(content, dict) and isinstance(content.get("name"), str) and content["name"]:
                    names[locale] = content["name"]
        except Exception:  # noqa: BLE001 - translations are optional decoration
            logger.warning("Intercom collection %s: unreadable translated_content", collection_id)
    return str(collection_id), _Collection(
        name=name,
        parent_id=str(parent_id) if parent_id not in (None, "") else None,
        names_by_locale=names,
    )


def _first_not_none(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _required_text(content: dict[str, Any], key: str) -> str:
    value = content.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} is missing or empty")
    return value


def _optional_text(content: dict[str, Any], key: str) -> str:
    value = content.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string: {type(value).__name__}")
    return value


def _epoch_seconds(value: Any) -> int:
    """Validate an Intercom timestamp (Unix epoch seconds, integer)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"updated_at is not epoch seconds: {value!r}")
    return value


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc) or type(exc).__name__


def _error_summary(body: Any) -> str:
    """Short text of an Intercom ``error.list`` body (or whatever the body was)."""
    errors = None
    if isinstance(body, dict):
        errors = body.get("errors")
    elif body is not None and hasattr(body, "errors"):
        errors = [e.dict() if hasattr(e, "dict") else e for e in (body.errors or [])]
    if isinstance(errors, list) and errors:
        parts = []
        for error in errors:
            if isinstance(error, dict):
                code, message = error.get("code"), error.get("message")
                parts.append(f"{code}: {message}" if message else str(code))
        if parts:
            return "; ".join(parts)
    text = str(body)
    return text if len(text) <= 300 else text[:300] + "…"
