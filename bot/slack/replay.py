"""Refuse a signed Slack request seen before: bolt checks signatures but not replays.

The guard is a bounded in-process cache keyed on the signature. Bolt already refuses any
request whose timestamp is more than five minutes old, so a signature only needs to be
remembered for that long; an attacker cannot mint a new signature, so an old request can only
be replayed inside that window. Limits: with several web processes behind a load balancer a
replay that lands on another process is not caught (a database table would close that gap),
and under more than ``max_entries`` requests per window the oldest entries are forgotten early.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from slack_bolt import BoltRequest, BoltResponse

WINDOW_SECONDS = 5 * 60 + 30  # bolt's five minutes, plus clock skew


class ReplayGuard:
    """Remembers recent signatures; `first_time` is False for a repeat."""

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    def first_time(self, signature: str) -> bool:
        """Record the signature; whether it was new."""
        now = self._clock()
        with self._lock:
            while self._seen and (
                len(self._seen) >= self._max
                or now - next(iter(self._seen.values())) > WINDOW_SECONDS
            ):
                self._seen.popitem(last=False)
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True

    def as_middleware(self) -> Callable[..., BoltResponse]:
        """A bolt middleware; it runs after bolt's signature check, so only valid ones count."""

        def refuse_replays(
            req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
        ) -> BoltResponse:
            if req.mode == "socket_mode":
                return next()
            signature = (req.headers.get("x-slack-signature") or [""])[0]
            if not signature or self.first_time(signature):
                return next()
            return BoltResponse(status=401, body='{"error":"replayed request"}')

        return refuse_replays
