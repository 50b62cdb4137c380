"""Prometheus metrics of one citedesk process (the ``prometheus_client`` adapter; served at ``GET /metrics``).

Every series has bounded labels: routes are route templates (``unmatched`` otherwise), channels, decisions and
reasons are enums, and workspaces are capped by :class:`BoundedLabel` (the first ``max_workspaces`` seen keep their
name, later ones share ``_other``). Each :class:`Metrics` owns its registry, so several apps in one process (tests)
do not collide.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["BoundedLabel", "Metrics"]

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: HTTP requests, answers, retrieval stages and LLM time to first token."""
CONFIDENCE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
"""answerable_probability deciles."""
OTHER = "_other"


class BoundedLabel:
    """Caps the distinct values of a label: the first ``limit`` values seen are kept, later ones become ``_other``.

    Args:
        limit: distinct values kept (0: every value is ``_other``).
        keep: values always kept, outside the limit (e.g. the configured workspace).
    """

    def __init__(self, limit: int, keep: tuple[str, ...] = ()) -> None:
        self.limit = limit
        self._keep = set(keep)
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        value = value or ""
        if value in self._keep or value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER


class Metrics:
    """The instruments and the methods that feed them (all thread-safe; cheap enough for the request path).

    Args:
        max_workspaces: distinct ``workspace`` label values before ``_other``.
        workspace: the configured workspace (always its own label value).
    """

    def __init__(self, *, max_workspaces: int = 20, workspace: str = "default") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.workspace = BoundedLabel(max_workspaces, keep=(workspace,))
        r = self.registry
        self.http_duration = Histogram("citedesk_http_request_duration_seconds", "HTTP request latency, seconds "
                                       "(streams: until the last byte)", ["method", "route"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.http_requests = Counter("citedesk_http_requests", "HTTP requests by response status",
                                     ["method", "route", "status"], registry=r)
        self.answers = Counter("citedesk_answers", "finished answers and escalations",
                               ["workspace", "channel", "decision", "reason"], registry=r)
        self.confidence = Histogram("citedesk_answer_confidence", "confidence of each answer (answerable_probability)",
                                    ["workspace", "channel"], buckets=CONFIDENCE_BUCKETS, registry=r)
        self.answer_duration = Histogram("citedesk_answer_duration_seconds", "question to final decision, seconds",
                                         ["channel", "decision"], buckets=LATENCY_BUCKETS, registry=r)
        self.first_token = Histogram("citedesk_llm_first_token_seconds", "generator start to its first token, seconds",
                                     ["generator"], buckets=LATENCY_BUCKETS, registry=r)
        self.retrieval = Histogram("citedesk_retrieval_duration_seconds",
                                   "retrieval stages (embed, retrieve, rerank), seconds", ["stage"],
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.sync_runs = Counter("citedesk_sync_runs", "sync runs (full: a source; article: one webhook-driven "
                                 "article)", ["workspace", "source", "scope", "outcome"], registry=r)
        self.sync_articles = Counter("citedesk_sync_articles", "article locales per sync outcome",
                                     ["workspace", "source", "change"], registry=r)
        self.webhook_queue = Gauge("citedesk_webhook_queue_depth", "webhook notifications received, not finished",
                                   registry=r)
        self.webhook_queue.set_function(lambda: math.nan)
        self.webhook_deliveries = Counter("citedesk_webhook_deliveries", "processed webhook notifications by status",
                                          ["status"], registry=r)
        self.webhook_retries = Counter("citedesk_webhook_delivery_retries",
                                       "webhook notification tries that failed and were scheduled again", registry=r)

    # -- feeding -------------------------------------------------------------------------------------
    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request (``route`` is the route template, never the raw path)."""
        self.http_duration.labels(method, route).observe(seconds)
        self.http_requests.labels(method, route, str(status)).inc()

    def observe_answer(self, request, response, workspace: str | None = None) -> None:
        """One finished answer (the pipeline's observer hook): decision, reason, confidence and latencies.

        Args:
            request: the :class:`~citedesk.serving.answer.schemas.AnswerRequest`.
            response: the :class:`~citedesk.serving.answer.schemas.AnswerResponse` (``latency_ms`` in ms).
            workspace: the tenant searched.
        """
        ws = self.workspace(workspace)
        channel = getattr(request.channel, "value", str(request.channel))
        decision = getattr(response.decision, "value", str(response.decision))
        self.answers.labels(ws, channel, decision, str(response.reason)).inc()
        self.confidence.labels(ws, channel).observe(response.confidence)
        lat = response.latency_ms or {}
        if "total" in lat:
            self.answer_duration.labels(channel, decision).observe(lat["total"] / 1000)
        if "first_token" in lat:
            self.first_token.labels(response.generator).observe(lat["first_token"] / 1000)
        for stage in ("embed", "retrieve", "rerank"):
            if stage in lat:
                self.retrieval.labels(stage).observe(lat[stage] / 1000)

    def observe_sync(self, report, scope: str = "full") -> None:
        """One sync run (the sync engine's report hook).

        Args:
            report: an ``ingest.sync.SyncReport`` (``added``, ``updated``, ``deleted``, ``unchanged``, ``failed``,
                ``listing_error``, ``workspace``, ``source``).
            scope: ``full`` (a source) or ``article`` (one article, webhook-driven).
        """
        ws = self.workspace(report.workspace)
        ok = not report.failed and not report.listing_error
        self.sync_runs.labels(ws, report.source, scope, "ok" if ok else "failed").inc()
        for change, n in (("added", report.added), ("updated", report.updated), ("deleted", report.deleted),
                          ("unchanged", report.unchanged), ("failed", len(report.failed))):
            if n:
                self.sync_articles.labels(ws, report.source, change).inc(n)

    def observe_delivery(self, status: str, *, retry: bool = False) -> None:
        """One processed webhook notification (``done``, ``skipped``, ``failed``, or ``pending`` + ``retry``)."""
        self.webhook_deliveries.labels(status).inc()
        if retry:
            self.webhook_retries.inc()

    def queue_depth_from(self, probe: Callable[[], int]) -> None:
        """Read the webhook queue depth from ``probe`` at each scrape (NaN while it fails)."""

        def read() -> float:
            try:
                return float(probe())
            except Exception as exc:  # noqa: BLE001 - a scrape must not fail on the database
                log.warning("webhook queue depth unavailable: %s", exc)
                return math.nan

        self.webhook_queue.set_function(read)

    # -- exposition ----------------------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type (blocking: may query the database)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
