"""Run ``rollbot`` commands as real processes, the way a user or a platform would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROLLBOT = str(Path(sys.executable).with_name("rollbot"))


def rollbot_env(database_url: str, config_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a rollbot process."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": database_url,
        "ROLLBOT_CONFIG": str(config_path),
    }
    # A checkout put on the path (PYTHONPATH=. pytest) is the code under test, in the
    # child process too, not whichever copy the virtualenv has installed.
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(extra)
    return env


def run_rollbot(
    args: list[str], env: dict[str, str], **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run a rollbot command to completion."""
    return subprocess.run(  # type: ignore[call-overload]
        [ROLLBOT, *args], env=env, capture_output=True, text=True, timeout=120, **kwargs
    )


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll until the predicate holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_for_http(url: str, *, timeout: float = 30) -> None:
    """Block until the URL answers at all."""

    def answers() -> bool:
        try:
            httpx.get(url, timeout=1)
        except httpx.HTTPError:
            return False
        return True

    if not wait_until(answers, timeout=timeout, interval=0.2):
        raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def serving(
    command: list[str], *, ready_url: str, log_path: Path, ready_timeout: float = 30
) -> Iterator[None]:
    """Run a server process until the block ends, once ``ready_url`` answers; then stop it."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for_http(ready_url, timeout=ready_timeout)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
