"""Intercom Help Center article source.

:class:`IntercomConnector` lists published help-center articles through the python-intercom SDK (via the
adapter :class:`citedesk.connectors.intercom_api.IntercomApi`, which handles the SDK's retry, base-URL and
version quirks) and turns each published locale into one :class:`citedesk.core.types.Article`.
Conversations (the chat-draft channel) use the same adapter from
:mod:`citedesk.serving.channels.intercom.conversations`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from citedesk.connectors.intercom_api import INTERCOM_API_VERSION, IntercomApi, NotFoundError
from citedesk.core.errors import ConfigError, ConnectorError
from citedesk.core.protocols import SourceFailure
from citedesk.core.types import Article

__all__ = ["INTERCOM_API_VERSION", "IntercomConnector"]

logger = logging.getLogger(__name__)

DEFAULT_LOCALE = "en"
"""Locale given to articles of single-language help centers (no ``default_locale`` field)."""

_MAX_LISTING_PASSES = 3
"""How many times :meth:`IntercomConnector.list_articles` re-reads a list that changed under it."""

_TRANSLATED_CONTENT_META_KEYS = frozenset({"type"})
"""Keys of ``translated_content`` that are not locales."""


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
        self._api = IntercomApi(token, base_url=base_url, max_retries=max_retries, timeout=timeout)
        if not 1 <= per_page <= 250:
            raise ConfigError(f"intercom per_page must be within 1..250, got {per_page}")
        self._configured_workspace = workspace
        self._seen_workspace: str | None = None
        self._per_page = per_page
        self._locales = frozenset(locales) if locales is not None else None
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
        client = self._api.sdk()
        self._collections_fresh = False  # the cache may predate a new collection
        try:
            with self._api.translate_errors(endpoint, not_found_ok=True):
                item = client.articles.find(int(article_id), request_options=self._api.request_options())
        except NotFoundError:
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

    @property
    def api(self) -> IntercomApi:
        """The SDK session this connector reads through (shared with the conversation client of a worker)."""
        return self._api

    def close(self) -> None:
        """Close the HTTP connection pool (the connector can be used again afterwards)."""
        self._api.close()

    def __enter__(self) -> IntercomConnector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"IntercomConnector(base_url={self._api.base_url!r}, workspace={self.workspace!r})"

    # ------------------------------------------------------------------ listing plumbing

    def _iter_article_pages(self) -> Iterator[tuple[int, Any]]:
        """Yield ``(page_number, SyncPager page)`` for ``GET /articles``, via the SDK's pager."""
        client = self._api.sdk()
        page_number = 1
        with self._api.translate_errors(f"GET /articles?page={page_number}"):
            pager = client.articles.list(per_page=self._per_page, request_options=self._api.request_options())
        pages = pager.iter_pages()
        while True:
            with self._api.translate_errors(f"GET /articles?page={page_number}"):
                page = next(pages, None)
            if page is None:
                return
            yield page_number, page
            page_number += 1

    def _list_head_now(self) -> tuple[int | None, tuple[str, Any] | None]:
        """Re-read the first list item and the total count (cheap change detection)."""
        with self._api.translate_errors("GET /articles?page=1"):
            pager = self._api.sdk().articles.list(page=1, per_page=1, request_options=self._api.request_options())
        return _list_head(pager.response)

    def _collections_by_id(self) -> dict[str, _Collection]:
        """All help-center collections and sections by id (listed once, then cached)."""
        if self._collections is None:
            collections: dict[str, _Collection] = {}
            endpoint = "GET /help_center/collections"
            with self._api.translate_errors(endpoint):
                pager = self._api.sdk().help_centers.collections.list(
                    per_page=self._per_page, request_options=self._api.request_options()
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
