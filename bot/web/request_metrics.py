"""Counting requests for ``/metrics`` as plain ASGI middleware.

Starlette's ``@app.middleware("http")`` wraps every request in a task and a body stream;
on the Slack ack path that was half of the time a request took.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.telemetry import HTTP_LATENCY, HTTP_REQUESTS


class RequestMetrics:
    """Count HTTP requests and observe their latency, labelled by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # The router writes the matched route into this same scope.
            name = getattr(scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(route=name).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(route=name, method=scope["method"], status=str(status)).inc()
