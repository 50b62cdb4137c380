"""Warm the extractive generator's answer-unit vector cache from the index, in the background.

An extractive answer embeds the candidate answer units of its evidence (about 900 tokens: about 180 ms of MiniLM
on 2 CPU cores, most of what an answer adds to retrieval); with their vectors cached it adds about 25 ms
(``bench/query_latency.py``). ``citedesk serve`` embeds every chunk's units once at start and again after each
sync it runs, including an Intercom article webhook's (``answer.unit_cache_warm``), in a background thread, so questions about any article get cached
units. Texts already cached are skipped (the cache is keyed by text), and the warm-up stops when the cache is full.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

__all__ = ["UnitCacheWarmer"]


class UnitCacheWarmer:
    """Fills the unit vector cache from every chunk in the index, one pass at a time.

    Args:
        generator: the :class:`~citedesk.serving.answer.generators.ExtractiveGenerator` (``prefill_units``).
        index: the :class:`~citedesk.retrieval.store.QdrantIndex` (``chunk_texts``).

    Attributes:
        passes: passes finished; ``embedded``: units embedded by the last pass; ``seconds``: its wall time, s.
    """

    def __init__(self, generator, index) -> None:
        self.generator = generator
        self.index = index
        self.passes = 0
        self.embedded = 0
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False

    @property
    def running(self) -> bool:
        """A pass is running (or queued behind the running one)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def run(self) -> int:
        """One pass, in the calling thread: every chunk of every workspace. Returns units embedded.

        Raises:
            IndexUnavailableError: the index cannot be read.
        """
        t = time.perf_counter()
        n = self.generator.prefill_units(self.index.chunk_texts())
        self.passes, self.embedded, self.seconds = self.passes + 1, n, time.perf_counter() - t
        log.info("unit vector cache warmed: %d units embedded in %.1f s", n, self.seconds)
        return n

    def start(self) -> None:
        """Run a pass in a background thread; called while one runs, another pass follows it (a sync just
        changed the index)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._again = True
                return
            self._thread = threading.Thread(target=self._loop, name="unit-cache-warm", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                self.run()
            except Exception:  # noqa: BLE001 - a warm-up that fails leaves answers embedding their units
                log.exception("unit vector cache warm-up failed")
            with self._lock:
                if not self._again:
                    self._thread = None
                    return
                self._again = False

    def join(self, timeout: float | None = None) -> None:
        """Wait for the running pass (and the ones queued behind it), if any."""
        while True:
            thread = self._thread
            if thread is None:
                return
            thread.join(timeout)
            if timeout is not None:
                return
