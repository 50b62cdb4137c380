"""Syncs run inside the serving process: one job at a time, its progress kept as events for any follower.

``citedesk serve`` owns the embedded index (local mode locks its folder to one process), so ``citedesk sync``
hands its job to the server (``POST /v1/sync``, ``serving/api/routes/sync.py``) and ``sync.interval`` starts
scheduled ones. The job runs the same :class:`~citedesk.ingest.sync.SyncEngine` as the CLI, in a thread, while
answers keep being served; the engine's per-article write lock keeps every article whole for readers.

Events (plain dicts, JSON-ready), in order: ``{"event": "started", "job": id, "source": ..., "location": ...}``,
``{"event": "total", "n": docs}`` (when the source knows), ``{"event": "advance", "n": docs}``\\*, then either
``{"event": "done", "report": SyncReport.summary()}`` or ``{"event": "error", "detail": "..."}``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from citedesk.core.errors import CitedeskError

log = logging.getLogger(__name__)

__all__ = ["SyncBusyError", "SyncJob", "SyncJobRunner"]


class SyncBusyError(CitedeskError):
    """A sync job is already running in this process (the API answers 409)."""

    def __init__(self, job: "SyncJob") -> None:
        super().__init__(f"a sync is already running (job {job.job_id}, {job.source}, started "
                         f"{time.time() - job.started_at:.0f} s ago); try again when it has finished")
        self.job = job


@dataclass
class SyncJob:
    """One sync run: its events so far, and how it ended.

    Attributes:
        job_id: random hex id.
        source: connector name (``folder`` / ``intercom``).
        started_at / finished_at: epoch seconds (finished_at None while running).
        events: progress events so far (see module docstring).
        report: the sync report's summary dict once done; ``error`` the message when the job failed.
    """

    job_id: str
    source: str
    started_at: float
    events: list[dict] = field(default_factory=list)
    finished_at: float | None = None
    report: dict | None = None
    error: str | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def running(self) -> bool:
        return self.finished_at is None

    def emit(self, event: dict) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def finish(self, *, report: dict | None = None, error: str | None = None) -> None:
        with self._cond:
            self.report, self.error = report, error
            self.events.append({"event": "done", "report": report} if error is None
                               else {"event": "error", "detail": error})
            self.finished_at = time.time()
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> list[dict]:
        """Events after the first ``seen`` ones, waiting up to ``timeout`` s for one (empty list: none yet)."""
        with self._cond:
            if len(self.events) <= seen and self.running:
                self._cond.wait(timeout)
            return self.events[seen:]

    def follow(self, poll_s: float = 1.0) -> Iterator[dict]:
        """Every event from the first, blocking until the job ends (its last event is ``done`` or ``error``)."""
        seen = 0
        while True:
            new = self.wait(seen, poll_s)
            seen += len(new)
            yield from new
            if not self.running and seen == len(self.events):
                return

    def status(self) -> dict:
        """JSON-ready state: id, source, running, times, docs done/total, report or error."""
        total = next((e["n"] for e in self.events if e["event"] == "total"), None)
        done = sum(e["n"] for e in self.events if e["event"] == "advance")
        return {"job": self.job_id, "source": self.source, "running": self.running, "started_at": self.started_at,
                "finished_at": self.finished_at, "total": total, "done": done, "report": self.report,
                "error": self.error}


class SyncJobRunner:
    """Starts sync jobs in background threads, at most one at a time.

    Args:
        engine: ``() -> SyncEngine`` (built lazily: the server may never sync).
        location: human-readable index location, reported in the ``started`` event.
        on_success: called after a job that finished without error (e.g. the unit vector cache warm-up).
    """

    def __init__(self, engine: Callable[[], object], location: str = "",
                 on_success: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self.location = location
        self.on_success = on_success
        self._lock = threading.Lock()
        self.current: SyncJob | None = None

    @property
    def running(self) -> SyncJob | None:
        """The running job, if any."""
        job = self.current
        return job if job is not None and job.running else None

    def start(self, connector) -> SyncJob:
        """Start syncing ``connector`` in a background thread.

        Args:
            connector: a :class:`~citedesk.core.protocols.Connector` (its ``name`` is the source).

        Returns:
            The job (follow its events with :meth:`SyncJob.follow`).

        Raises:
            SyncBusyError: a job is running.
        """
        with self._lock:
            if self.running is not None:
                raise SyncBusyError(self.running)
            job = SyncJob(uuid.uuid4().hex[:12], connector.name, time.time())
            job.emit({"event": "started", "job": job.job_id, "source": connector.name, "location": self.location})
            self.current = job
        threading.Thread(target=self._run, args=(job, connector), name=f"sync-{job.job_id}", daemon=True).start()
        return job

    def _run(self, job: SyncJob, connector) -> None:
        def hook(event: str, n: int) -> None:
            job.emit({"event": event, "n": n})

        try:
            report = self._engine().sync(connector, progress=hook)
        except Exception as exc:  # noqa: BLE001 - reported to the follower, the server keeps serving
            log.exception("sync job %s failed", job.job_id)
            job.finish(error=f"{type(exc).__name__}: {exc}")
            return
        log.info("sync job %s: %s", job.job_id, report.summary())
        if self.on_success is not None:
            self.on_success()  # before the job ends: a follower that saw it end sees what it started
        job.finish(report=report.summary())
