"""Serve a web app on 127.0.0.1 from a thread, for tests that need real concurrent HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.support.postgres import free_port
from tests.support.processes import wait_for_http


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app's base URL while the block runs."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz")
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
