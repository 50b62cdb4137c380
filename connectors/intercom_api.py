"""The python-intercom SDK adapter: the only module that imports ``intercom``.

:class:`IntercomApi` is one configured SDK session (base URL, token, retries, timeout) plus the wire calls
citedesk makes. The help-center article source (:mod:`citedesk.connectors.intercom`) and the chat-draft
channel's conversation client (:mod:`citedesk.serving.channels.intercom.conversations`) are both built on it,
so the SDK's quirks are handled in one place:

* **Base URL** — ``Intercom(base_url=...)`` wins over ``environment=`` (``intercom/client.py``,
  ``_get_base_url``), so a self-hosted proxy, the EU/AU regions or a test double all work.
* **Retries** — the SDK retries 429, 408, 409 and 5xx (``core/http_client.py``, ``_should_retry``),
  waiting ``Retry-After`` seconds, else until ``X-RateLimit-Reset`` (epoch seconds), else an
  exponential backoff; every wait is capped at 60 s (``_retry_timeout``). Retries are only
  enabled per request, through ``request_options={"max_retries": N}``; the default is none.
  Its retry counter starts at 2, not 0 (``HttpClient.request(..., retries: int = 2)`` guarded by
  ``if max_retries > retries``), so ``max_retries=N`` gives only ``N - 2`` retries — the known
  Fern bug fern-api/fern#17337. :func:`_sdk_retry_counter_start` reads that default and the
  adapter adds it back, so ``IntercomApi(max_retries=N)`` really retries ``N`` times.
* **Connection errors** — the SDK does not retry them; the adapter gives the SDK its own
  ``httpx.Client`` whose transport retries failed connects ``max_retries`` times.
* **API version** — every request sends ``Intercom-Version: 2.16`` (:data:`INTERCOM_API_VERSION`),
  the version the payload handling (and the test double) are built against.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from intercom import AdminReplyConversationRequest, Intercom
from intercom.conversations import ConversationsManageRequestBody_Assignment
from intercom.core.api_error import ApiError
from intercom.core.http_client import HttpClient
from intercom.errors import UnauthorizedError

from citedesk.core.errors import ConfigError, ConnectorError

__all__ = ["INTERCOM_API_VERSION", "IntercomApi", "NotFoundError"]

INTERCOM_API_VERSION = "2.16"
"""Value of the ``Intercom-Version`` header sent with every request."""

_SDK_RETRIED_STATUSES = frozenset({408, 409, 429})
"""4xx statuses the SDK retries (``_should_retry``), besides every 5xx."""


@functools.cache
def _sdk_retry_counter_start() -> int:
    """Return the value the SDK's retry counter starts from (2 in python-intercom 5.0.1).

    ``HttpClient.request`` retries while ``max_retries > retries`` and ``retries`` defaults to this
    value, so the number of retries actually made is ``max_retries - start``. Reading the default
    keeps the adapter right if a later SDK release fixes the counter to start at 0.
    """
    try:
        default = inspect.signature(HttpClient.request).parameters["retries"].default
    except (KeyError, TypeError, ValueError):  # pragma: no cover - SDK internals changed shape
        return 0
    return default if isinstance(default, int) and default >= 0 else 0


class NotFoundError(Exception):
    """The endpoint answered 404 (raised only where the caller asked for it with ``not_found_ok``)."""


class IntercomApi:
    """One Intercom REST session through the SDK. The constructor does no I/O; the client is built on first use.

    Not thread-safe: use one per thread. Use as a context manager, or call :meth:`close`, to release the
    HTTP connection pool.

    Args:
        token: Intercom access token (sent as ``Authorization: Bearer``).
        base_url: API root, e.g. ``https://api.eu.intercom.io`` or a test double's URL.
        max_retries: retries per request on 429 / 408 / 409 / 5xx (and on failed connects) before giving
            up; 0 disables retries. Waits honour ``Retry-After`` (seconds) and ``X-RateLimit-Reset`` (epoch
            seconds), capped at 60 s per wait by the SDK.
        timeout: seconds per HTTP request.

    Raises:
        ConfigError: on an empty token or out-of-range numbers.
    """

    def __init__(self, token: str, *, base_url: str = "https://api.intercom.io", max_retries: int = 5,
                 timeout: float = 30.0) -> None:
        if not token:
            raise ConfigError("Intercom access token is empty (set CITEDESK_INTERCOM__TOKEN)")
        if max_retries < 0:
            raise ConfigError(f"intercom max_retries must be >= 0, got {max_retries}")
        if timeout <= 0:
            raise ConfigError(f"intercom timeout must be > 0 seconds, got {timeout}")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self._timeout = timeout
        self._client: Intercom | None = None
        self._httpx_client: httpx.Client | None = None

    # ------------------------------------------------------------------ session

    def sdk(self) -> Intercom:
        """The SDK client (built once) pointed at ``base_url`` with our own ``httpx.Client``."""
        if self._client is None:
            self._httpx_client = httpx.Client(
                timeout=self._timeout,
                follow_redirects=True,
                # The SDK only retries on HTTP statuses; let the transport retry failed connects.
                transport=httpx.HTTPTransport(retries=self.max_retries),
            )
            self._client = Intercom(
                token=self._token,
                base_url=self.base_url,
                timeout=self._timeout,
                headers={"Intercom-Version": INTERCOM_API_VERSION},
                httpx_client=self._httpx_client,
            )
        return self._client

    def request_options(self) -> dict[str, Any]:
        """Per-request SDK options: the retry budget, corrected for the SDK's counter offset."""
        return {"max_retries": self.max_retries + _sdk_retry_counter_start()}

    @contextmanager
    def translate_errors(self, endpoint: str, *, not_found_ok: bool = False) -> Iterator[None]:
        """Turn SDK / httpx exceptions raised for ``endpoint`` into :class:`ConnectorError`.

        Args:
            endpoint: ``"METHOD /path"`` named in error messages.
            not_found_ok: raise :class:`NotFoundError` on 404 (the caller treats it as "deleted")
                instead of :class:`ConnectorError`.
        """
        try:
            yield
        except UnauthorizedError as exc:
            raise ConnectorError(
                f"Intercom rejected the access token (HTTP 401 on {endpoint} at {self.base_url}); "
                f"check the token and its scopes: {error_summary(exc.body)}"
            ) from exc
        except ApiError as exc:  # NotFoundError and UnauthorizedError subclass it
            if exc.status_code == 404 and not_found_ok:
                raise NotFoundError(endpoint) from exc
            if exc.status_code is not None and 200 <= exc.status_code < 300:
                raise ConnectorError(
                    f"Intercom answered {endpoint} with an unreadable body "
                    f"(HTTP {exc.status_code}): {error_summary(exc.body)}"
                ) from exc
            retried = exc.status_code in _SDK_RETRIED_STATUSES or (exc.status_code or 0) >= 500
            after = f" after {self.max_retries} retries" if retried else ""
            raise ConnectorError(
                f"Intercom answered HTTP {exc.status_code} on {endpoint} at {self.base_url}{after}: "
                f"{error_summary(exc.body)}"
            ) from exc
        except httpx.HTTPError as exc:
            raise ConnectorError(
                f"could not reach Intercom at {self.base_url} ({endpoint}): {type(exc).__name__}: {exc}"
            ) from exc

    def close(self) -> None:
        """Close the HTTP connection pool (the session can be used again afterwards)."""
        if self._httpx_client is not None:
            self._httpx_client.close()
        self._httpx_client = None
        self._client = None

    def __enter__(self) -> IntercomApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ conversation wire calls

    def find_conversation(self, conversation_id: str) -> dict[str, Any]:
        """``GET /conversations/{id}``: the conversation in its wire shape (HTML bodies).

        Raises:
            ConnectorError: 401 / 404 / a status that survived the retries, or Intercom unreachable.
        """
        with self.translate_errors(f"GET /conversations/{conversation_id}"):
            item = self.sdk().conversations.find(str(conversation_id), request_options=self.request_options())
        return item.dict(warnings=False)

    def reply_to_conversation(self, conversation_id: str, *, message_type: str, admin_id: str,
                              body: str) -> dict[str, Any]:
        """``POST /conversations/{id}/reply`` as an admin: the updated conversation in its wire shape.

        Raises:
            ConnectorError: as :meth:`find_conversation`.
        """
        request = AdminReplyConversationRequest(message_type=message_type, type="admin", admin_id=str(admin_id),
                                                body=body)
        with self.translate_errors(f"POST /conversations/{conversation_id}/reply"):
            result = self.sdk().conversations.reply(str(conversation_id), request=request,
                                                    request_options=self.request_options())
        return result.dict(warnings=False)

    def tag_conversation(self, conversation_id: str, *, tag_id: str, admin_id: str) -> None:
        """``POST /conversations/{id}/tags``.

        Raises:
            ConnectorError: as :meth:`find_conversation`.
        """
        with self.translate_errors(f"POST /conversations/{conversation_id}/tags"):
            self.sdk().tags.tag_conversation(str(conversation_id), tag_id=str(tag_id), admin_id=str(admin_id),
                                             request_options=self.request_options())

    def assign_conversation(self, conversation_id: str, *, admin_id: str, team_id: str,
                            body: str | None = None) -> None:
        """``POST /conversations/{id}/parts`` with ``message_type: assignment`` to a team.

        Raises:
            ConnectorError: as :meth:`find_conversation`.
        """
        extra = {"body": body} if body else {}  # an explicit None would be sent as null, which the spec rejects
        request = ConversationsManageRequestBody_Assignment(type="team", admin_id=str(admin_id),
                                                            assignee_id=str(team_id), **extra)
        with self.translate_errors(f"POST /conversations/{conversation_id}/parts"):
            self.sdk().conversations.manage(str(conversation_id), request=request,
                                            request_options=self.request_options())

    def __repr__(self) -> str:
        return f"IntercomApi(base_url={self.base_url!r})"


def error_summary(body: Any) -> str:
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
