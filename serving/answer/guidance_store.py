"""Workspace guidance in the relational store (revision 0007): every version kept, the newest in force.

Versions are immutable rows ``(workspace, version)``; publishing writes version n+1 (a rollback publishes an old
version's content again). Readers in the answer path go through a short per-process cache (``cache_seconds``), so
every replica picks up a new version within that time without a database read per answer.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

from sqlalchemy import JSON, Float, Integer, String, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from citedesk.serving.answer.guidance import Guidance, GuidanceVersion
from citedesk.serving.db.engine import Base, Database

__all__ = ["GuidanceStore", "GuidanceUnavailableError", "WorkspaceGuidance"]

log = logging.getLogger(__name__)


class GuidanceUnavailableError(RuntimeError):
    """The guidance could not be read and no earlier read is cached (the answer escalates)."""


class WorkspaceGuidance(Base):
    """One version of a workspace's guidance (``instructions``: list of str; ``escalation_rules``: list of
    :class:`~citedesk.serving.answer.guidance.EscalationRule` as JSON). Times are epoch seconds."""

    __tablename__ = "workspace_guidance"

    workspace: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    instructions: Mapped[list] = mapped_column(JSON, default=list)
    escalation_rules: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(200))


def _out(row: WorkspaceGuidance) -> GuidanceVersion:
    created = datetime.fromtimestamp(row.created_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return GuidanceVersion(workspace=row.workspace, version=row.version, instructions=row.instructions,
                           escalation_rules=row.escalation_rules, created_at=created,
                           created_by=row.created_by)


class GuidanceStore:
    """Publish, read and list guidance versions (blocking; call from a worker thread in async code).

    Args:
        db: relational store.
        cache_seconds: how long :meth:`current` serves a workspace's guidance from memory.
        clock: monotonic clock (tests pass their own).
    """

    def __init__(self, db: Database, *, cache_seconds: float = 5.0, clock=time.monotonic) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, GuidanceVersion | None]] = {}
        self._lock = threading.Lock()

    def publish(self, workspace: str, guidance: Guidance, *, by: str) -> GuidanceVersion:
        """Store ``guidance`` as the workspace's next version (in force at once in this process).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database failed.
        """
        for _ in range(5):  # two publishers racing for the same version number: the loser takes the next
            try:
                with self.db.session() as s:
                    last = s.scalar(select(func.max(WorkspaceGuidance.version))
                                    .where(WorkspaceGuidance.workspace == workspace)) or 0
                    row = WorkspaceGuidance(workspace=workspace, version=last + 1, created_at=time.time(),
                                            created_by=by[:200], instructions=list(guidance.instructions),
                                            escalation_rules=[r.model_dump(mode="json")
                                                              for r in guidance.escalation_rules])
                    s.add(row)
                out = _out(row)
                with self._lock:
                    self._cache[workspace] = (self.clock(), out)
                return out
            except IntegrityError:
                continue
        raise IntegrityError("publish guidance", {}, Exception("version kept colliding"))

    def get(self, workspace: str, version: int | None = None) -> GuidanceVersion | None:
        """A version (default: the newest) read from the database, or None."""
        with self.db.session() as s:
            q = select(WorkspaceGuidance).where(WorkspaceGuidance.workspace == workspace)
            q = q.where(WorkspaceGuidance.version == version) if version is not None else \
                q.order_by(WorkspaceGuidance.version.desc()).limit(1)
            row = s.scalars(q).first()
            return None if row is None else _out(row)

    def history(self, workspace: str, *, limit: int = 50) -> list[GuidanceVersion]:
        """Versions of a workspace, newest first."""
        with self.db.session() as s:
            rows = s.scalars(select(WorkspaceGuidance).where(WorkspaceGuidance.workspace == workspace)
                             .order_by(WorkspaceGuidance.version.desc()).limit(limit))
            return [_out(r) for r in rows]

    def current(self, workspace: str) -> GuidanceVersion | None:
        """The guidance in force (cached for ``cache_seconds``); None when the workspace has none.

        When the database fails, the last version read is served (logged); with none read yet it raises.

        Raises:
            GuidanceUnavailableError: the database failed and nothing is cached for the workspace.
        """
        now = self.clock()
        with self._lock:
            cached = self._cache.get(workspace)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            value = self.get(workspace)
        except (SQLAlchemyError, OSError) as exc:  # OSError: an SQLite file that cannot be opened
            if cached is not None:
                log.warning("workspace guidance of %s unreadable (%s): serving the cached version", workspace, exc)
                return cached[1]
            raise GuidanceUnavailableError(f"workspace guidance of {workspace!r} unreadable: {exc}") from exc
        with self._lock:
            self._cache[workspace] = (now, value)
        return value
