"""Per-API-key rate limiting (moving window) with the ``limits`` library.

The only module that imports ``limits``. Storage is in-process memory by default (limits apply per API
replica); set ``rate_limit.storage_uri`` to e.g. ``redis://host:6379`` to share them across replicas.
"""

from __future__ import annotations

import math
import time

from fastapi import HTTPException
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


class RateLimiter:
    """Allows ``limit`` (e.g. ``"60/minute"``) requests per key.

    Args:
        limit: a ``limits`` rate string: ``"<n>/second|minute|hour"``, several joined by ``;``.
        storage_uri: ``memory://`` (default) or any ``limits`` storage URI.
    """

    def __init__(self, limit: str = "120/minute", storage_uri: str = "memory://") -> None:
        self.limits = [parse(part.strip()) for part in limit.split(";") if part.strip()]
        self.strategy = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def check(self, key: str) -> None:
        """Count one request for ``key``.

        Raises:
            HTTPException: 429 with ``Retry-After`` (seconds) when a limit is exhausted.
        """
        for item in self.limits:
            if not self.strategy.hit(item, "citedesk", key):
                reset, _remaining = self.strategy.get_window_stats(item, "citedesk", key)
                retry = max(1, math.ceil(reset - time.time()))
                raise HTTPException(429, f"rate limit {item} exceeded for this API key; retry in {retry} s",
                                    headers={"Retry-After": str(retry)})
