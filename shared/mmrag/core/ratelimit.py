"""Per-key, per-endpoint-class rate limits (contract section 6): a sliding one-hour window in memory."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from mmrag.errors import RateLimited

WINDOW_S = 3600.0


@dataclass(frozen=True)
class RateState:
    """Where a key stands in its class's window after a request: what the X-RateLimit-* headers say."""

    limit: int
    remaining: int
    reset_at: int  # Unix time (s) at which the oldest counted request leaves the window (one more is allowed)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


class RateLimiter:
    def __init__(self, limits: dict[str, int], clock=time.monotonic, wall_clock=time.time):
        self.limits = limits
        self.clock = clock
        self.wall_clock = wall_clock
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str, endpoint_class: str) -> RateState | None:
        """Count one request and return where the key stands afterwards (None: the class has no limit). Over the
        limit: RateLimited, and nothing is counted; `state` then tells the headers of the refusal."""
        limit = self.limits.get(endpoint_class)
        if not limit or limit <= 0:
            return None
        now = self.clock()
        with self._lock:
            hits = self._live_hits(key_id, endpoint_class, now)
            if len(hits) >= limit:
                retry = max(1, math.ceil(hits[0] + WINDOW_S - now))
                raise RateLimited(
                    f"{endpoint_class} requests are limited to {limit} per hour for this API key; retry in {retry} s",
                    retry_after=retry,
                )
            hits.append(now)
            return self._state(limit, hits, now)

    def state(self, key_id: str, endpoint_class: str) -> RateState | None:
        """Where the key stands, without counting a request."""
        limit = self.limits.get(endpoint_class)
        if not limit or limit <= 0:
            return None
        now = self.clock()
        with self._lock:
            return self._state(limit, self._live_hits(key_id, endpoint_class, now), now)

    def _live_hits(self, key_id: str, endpoint_class: str, now: float) -> deque[float]:
        hits = self._hits.setdefault((key_id, endpoint_class), deque())
        while hits and hits[0] <= now - WINDOW_S:
            hits.popleft()
        return hits

    def _state(self, limit: int, hits: deque[float], now: float) -> RateState:
        until = hits[0] + WINDOW_S - now if hits else 0.0
        return RateState(limit, max(0, limit - len(hits)), math.ceil(self.wall_clock() + until))
