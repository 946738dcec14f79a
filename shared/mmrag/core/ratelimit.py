"""Per-key, per-endpoint-class rate limits (contract section 6): a sliding one-hour window in memory."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from mmrag.errors import RateLimited

WINDOW_S = 3600.0


class RateLimiter:
    def __init__(self, limits: dict[str, int], clock=time.monotonic):
        self.limits = limits
        self.clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str, endpoint_class: str) -> None:
        limit = self.limits.get(endpoint_class)
        if not limit or limit <= 0:
            return
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault((key_id, endpoint_class), deque())
            while hits and hits[0] <= now - WINDOW_S:
                hits.popleft()
            if len(hits) >= limit:
                retry = max(1, math.ceil(hits[0] + WINDOW_S - now))
                raise RateLimited(
                    f"{endpoint_class} requests are limited to {limit} per hour for this API key; retry in {retry} s",
                    retry_after=retry,
                )
            hits.append(now)
