"""A content-addressed LRU cache in front of a dense embedder (the extractive generator's answer units).

An extractive answer embeds its candidate answer units (about 24 units, 900 tokens: about 180 ms of MiniLM on 2
CPU cores, most of the time an answer adds to retrieval). Support questions come back to the same articles, so
the same units are embedded again and again; keyed by the exact text embedded, a cached vector is never stale
(an edited article gives new unit texts, and the old entries age out).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
from cachetools import LRUCache

__all__ = ["CachedEmbedder"]


class CachedEmbedder:
    """``embed`` through an LRU cache keyed by text; everything else is the wrapped embedder's.

    Args:
        embedder: ``embed(list[str]) -> float32 (n, dim)`` L2-normalised, with ``embed_query``, ``dim``,
            ``model_name`` and ``warm_up``.
        max_entries: vectors kept (each ``dim`` float32: 1.5 KB at 384-d; 20,000 ≈ 30 MB).

    Raises:
        ValueError: ``max_entries`` < 1.

    Attributes:
        hits / misses: texts served from the cache / embedded, since construction.
    """

    def __init__(self, embedder, max_entries: int = 20_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be ≥ 1, got {max_entries}")
        self.embedder = embedder
        self._cache: LRUCache = LRUCache(maxsize=max_entries)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str):  # embed_query, dim, model_name, warm_up, ...: the wrapped embedder's
        return getattr(self.embedder, name)

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def max_entries(self) -> int:
        """Capacity, vectors."""
        return int(self._cache.maxsize)

    def prefill(self, texts: Iterable[str], *, batch_size: int = 256) -> int:
        """Embed the texts not cached yet, ``batch_size`` at a time, until the cache is full (a warm-up: it never
        evicts what is cached). Returns the number of texts embedded."""
        done = 0
        batch: list[str] = []

        def flush() -> int:
            self._store(batch, self.embedder.embed(batch))
            return len(batch)

        for t in dict.fromkeys(texts):
            with self._lock:
                room = self.max_entries - len(self._cache) - len(batch)
                cached = t in self._cache
            if cached:
                continue
            if room <= 0:
                break
            batch.append(t)
            if len(batch) >= batch_size:
                done += flush()
                batch = []
        if batch:
            done += flush()
        return done

    def _store(self, texts: list[str], vectors: np.ndarray) -> dict[str, np.ndarray]:
        """Cache one vector per text (read-only copies: an evicted row must not keep its whole batch alive)."""
        stored = {}
        with self._lock:
            for t, v in zip(texts, vectors):
                v = stored[t] = v.copy()
                v.setflags(write=False)
                self._cache[t] = v
        return stored

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts, the ones seen before from the cache: float32 (n, dim), L2-normalised.

        The texts not cached are embedded in one call of the wrapped embedder (its batching applies to them).
        """
        with self._lock:
            found = [self._cache.get(t) for t in texts]
        missing = list(dict.fromkeys(t for t, v in zip(texts, found) if v is None))
        fresh = self._store(missing, self.embedder.embed(missing)) if missing else {}
        with self._lock:
            self.misses += len(missing)
            self.hits += len(texts) - sum(v is None for v in found)
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([v if v is not None else fresh[t] for t, v in zip(texts, found)]).astype(np.float32, copy=False)
