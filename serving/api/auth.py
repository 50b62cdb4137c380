"""Scoped API keys for the whole service.

A key looks like ``cdk_<key id>_<secret>``: the key id (12 hex chars) is public and names the row; the
secret (43 url-safe chars, 256 random bits) is shown once at creation and stored only as
``sha256(salt ‖ secret)`` with a per-key random salt. (The secret is a random 256-bit string, not a
password, so a fast hash is enough: brute force is hopeless and verifying costs microseconds.)

Scopes: ``answer`` (``/v1/answer*``, ``/v1/chat/completions``, ``/v1/models``), ``sync`` (sync and webhook endpoints), ``audit-read`` (``/audit``,
``GET /v1/audit/*``), ``audit-write`` (marks and feedback). Each key also carries a ``workspace``
(tenant), exposed on the :class:`Principal` a route receives.

When ``auth.enabled`` is false (the embedded single-user default) every request is the anonymous
principal with all scopes in the default workspace.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fastapi import HTTPException, WebSocketException
from starlette.requests import HTTPConnection
from sqlalchemy import Float, String, select
from sqlalchemy.orm import Mapped, mapped_column

from citedesk.serving.db.engine import Base, Database

SCOPES = ("answer", "sync", "audit-read", "audit-write", "admin")
"""Every scope a key can carry (``admin``: publish the workspace guidance)."""

KEY_PREFIX = "cdk"
COOKIE = "citedesk_key"
"""Cookie the /audit login form sets (HttpOnly, SameSite=Strict) so the browser page can send the key."""

_TOKEN = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{20,100}})$")


class ApiKey(Base):
    """A stored API key: never the secret, only its salted hash. Times are epoch seconds."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    workspace: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(200), doc="space-separated")
    salt: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id (None when auth is off), name, tenant and scopes."""

    key_id: str | None
    name: str
    workspace: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def label(self) -> str:
        """``name (key id)``, recorded with reviewer marks."""
        return self.name if self.key_id is None else f"{self.name} ({self.key_id})"


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed (no secret)."""

    key_id: str
    name: str
    workspace: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None
    last_used_at: float | None


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Validated, de-duplicated scopes. Raises ValueError naming an unknown scope."""
    out = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    bad = [s for s in out if s not in SCOPES]
    if bad:
        raise ValueError(f"unknown scope(s) {', '.join(bad)}; choose from {', '.join(SCOPES)}")
    if not out:
        raise ValueError(f"a key needs at least one scope ({', '.join(SCOPES)})")
    return out


class KeyStore:
    """API keys in the relational store.

    Args:
        db: the database (migrated on first use).
        clock: epoch-seconds clock.
    """

    def __init__(self, db: Database, *, clock=time.time) -> None:
        self.db = db
        self.clock = clock

    def create(self, name: str, scopes: Iterable[str], *, workspace: str = "default") -> tuple[KeyInfo, str]:
        """Create a key.

        Returns:
            ``(info, token)``; the token (``cdk_<id>_<secret>``) is not stored and cannot be shown again.

        Raises:
            ValueError: empty name or unknown scope.
        """
        if not name.strip():
            raise ValueError("a key needs a name")
        scopes = check_scopes(scopes)
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
        row = ApiKey(id=key_id, name=name.strip(), workspace=workspace, scopes=" ".join(scopes), salt=salt,
                     hash=_hash(salt, secret), created_at=self.clock())
        with self.db.session() as s:
            s.add(row)
        return self._info(row), f"{KEY_PREFIX}_{key_id}_{secret}"

    def list(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        """Keys, oldest first."""
        with self.db.session() as s:
            q = select(ApiKey).order_by(ApiKey.created_at)
            if not include_revoked:
                q = q.where(ApiKey.revoked_at.is_(None))
            return [self._info(r) for r in s.scalars(q)]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key (kept for the record). Returns False when no such active key."""
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = self.clock()
            return True

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None for a malformed, unknown or revoked one."""
        m = _TOKEN.match(token.strip())
        if not m:
            return None
        key_id, secret = m.groups()
        now = self.clock()
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None or not hmac.compare_digest(_hash(row.salt, secret), row.hash):
                return None
            if row.last_used_at is None or now - row.last_used_at > 60:
                row.last_used_at = now
            return Principal(row.id, row.name, row.workspace, frozenset(row.scopes.split()))

    @staticmethod
    def _info(r: ApiKey) -> KeyInfo:
        return KeyInfo(r.id, r.name, r.workspace, tuple(r.scopes.split()), r.created_at, r.revoked_at,
                       r.last_used_at)


class AuthError(HTTPException):
    """401 (no / bad key) or 403 (missing scope) with a message saying what to do."""


class Authenticator:
    """Resolves a request's key to a :class:`Principal` and checks scopes.

    Args:
        store: key store.
        enabled: False → every request is the anonymous all-scopes principal.
        workspace: the default workspace (the anonymous principal's).
    """

    def __init__(self, store: KeyStore, *, enabled: bool, workspace: str = "default") -> None:
        self.store = store
        self.enabled = enabled
        self.anonymous = Principal(None, "anonymous", workspace, frozenset(SCOPES))

    @staticmethod
    def token(request: HTTPConnection) -> str | None:
        """The key from ``Authorization: Bearer``, ``X-API-Key`` or the /audit login cookie."""
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip() or None
        return request.headers.get("x-api-key") or request.cookies.get(COOKIE) or None

    def authenticate(self, request: HTTPConnection, scope: str) -> Principal:
        """The caller, if its key carries ``scope``.

        Raises:
            AuthError: 401 when the key is missing, malformed, unknown or revoked; 403 when it lacks ``scope``.
        """
        if not self.enabled:
            return self.anonymous
        token = self.token(request)
        if token is None:
            raise AuthError(401, f"missing API key: this route needs a key with scope '{scope}'; send "
                                 "'Authorization: Bearer <key>' (create one with `citedesk keys create`)",
                            headers={"WWW-Authenticate": "Bearer"})
        principal = self.store.verify(token)
        if principal is None:
            raise AuthError(401, "invalid API key: it is malformed, unknown or revoked",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if scope not in principal.scopes:
            raise AuthError(403, f"API key '{principal.name}' ({principal.key_id}) lacks scope '{scope}'; "
                                 f"it has: {', '.join(sorted(principal.scopes))}")
        return principal


def require_scope(scope: str) -> Callable[[HTTPConnection], Principal]:
    """FastAPI dependency: the :class:`Principal` of a request whose key carries ``scope``.

    Use as ``principal: Principal = Depends(require_scope("audit-read"))`` or in a route's
    ``dependencies=[...]``; works on HTTP and WebSocket routes (a refused WebSocket is closed with code
    1008 and the message as reason). Reads ``request.app.state.container.authenticator``.

    Raises:
        ValueError: ``scope`` is not one of :data:`SCOPES` (at app build time).
    """
    check_scopes([scope])

    def dependency(conn: HTTPConnection) -> Principal:  # sync: FastAPI runs it in a worker thread (DB lookup)
        try:
            return conn.app.state.container.authenticator.authenticate(conn, scope)
        except AuthError as exc:
            if conn.scope["type"] == "websocket":
                raise WebSocketException(code=1008, reason=str(exc.detail)[:120]) from None
            raise

    dependency.__name__ = f"require_{scope.replace('-', '_')}"
    return dependency
