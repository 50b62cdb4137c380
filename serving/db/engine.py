"""Relational store (SQLAlchemy 2.x + Alembic): embedded SQLite by default, PostgreSQL by URL.

The only module that imports ``sqlalchemy`` engine machinery and ``alembic``; table modules declare
their tables on :data:`metadata` (SQLAlchemy Core / ORM on :class:`Base`) and ship an Alembic revision
in ``serving/migrations/versions``. ``Database.migrate()`` brings any URL to the newest schema.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class Base(DeclarativeBase):
    """Declarative base of every citedesk table."""

    metadata = metadata


def default_url(data_dir: Path) -> str:
    """SQLite file inside ``data_dir`` (created on first use)."""
    return f"sqlite:///{(Path(data_dir) / 'citedesk.db').resolve()}"


_MIGRATE_LOCK = threading.Lock()
"""Serialises Alembic upgrades in this process (see :meth:`Database.migrate`)."""


class Database:
    """Engine + sessions for one database URL (cheap constructor; connects on first use).

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///.citedesk/citedesk.db`` or
            ``postgresql+psycopg://user:pw@host/citedesk``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()
        self._migrated = False

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._create()
        return self._engine

    def _create(self) -> Engine:
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn, _record):  # WAL: readers don't block the writer
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            return engine
        return create_engine(self.url, pool_pre_ping=True)

    def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision (idempotent, once per process, thread-safe).

        Alembic's ``context`` and ``op`` are module-level proxies, so two upgrades running at once in one process
        (the first requests of a server arriving together, each opening the database) would break each other:
        upgrades are serialised by one process-wide lock.
        """
        if self._migrated:
            return
        from alembic import command
        from alembic.config import Config

        with _MIGRATE_LOCK:
            if self._migrated:
                return
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            self._migrated = True

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on exit, rolled back on error."""
        self.migrate()
        if self._sessions is None:
            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        with self._sessions.begin() as s:
            yield s

    def dispose(self) -> None:
        """Close pooled connections."""
        if self._engine is not None:
            self._engine.dispose()
