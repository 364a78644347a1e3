"""How long to wait between attempts of a step, and how long one attempt may take."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TypeVar

from bot.runs.contracts import RetryPolicy

T = TypeVar("T")
# The longest a server's Retry-After may hold a step back.
MAX_RETRY_AFTER_SECONDS = 300.0


class DeadlineExceeded(Exception):
    """An action did not finish within its step's ``timeout_seconds``.

    ``finished`` is set once the abandoned call does return, whichever way.
    """

    def __init__(self, seconds: float, finished: threading.Event | None = None) -> None:
        self.seconds = seconds
        self.finished = finished or threading.Event()
        super().__init__(f"did not finish within {seconds:g}s")


def full_jitter(cap: float) -> float:
    """A uniformly random wait between zero and ``cap`` seconds."""
    return random.uniform(0, cap)


def backoff_delay(
    policy: RetryPolicy,
    *,
    failed_attempts: int,
    retry_after: float | None = None,
    jitter: Callable[[float], float] = full_jitter,
) -> float:
    """Seconds to wait before the next attempt: exponential backoff with full jitter.

    The cap doubles with every failed attempt up to ``max_backoff_seconds``; full jitter
    spreads retries of many runs against one struggling system. A server's Retry-After is a
    floor, even above the policy's maximum (retrying sooner would only be refused again), up
    to ``MAX_RETRY_AFTER_SECONDS``: a rollback does not wait an hour on anyone's say-so.
    """
    exponent = max(failed_attempts - 1, 0)
    cap = min(policy.max_backoff_seconds, policy.initial_backoff_seconds * 2**exponent)
    delay = jitter(cap)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay


def call_with_deadline(call: Callable[[], T], *, seconds: float, name: str) -> T:
    """Run ``call`` in a worker thread and give up waiting after ``seconds``.

    Python cannot stop a thread, so a call that overruns keeps going in the background while
    the engine moves on; the step keeps its idempotency key for the next attempt, so should
    the late call land after all, the repeat is a duplicate the integration ignores.
    """
    outcome: dict[str, object] = {}
    finished = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed over to the caller's thread below
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=run, name=f"rollbot-step-{name}", daemon=True).start()
    if not finished.wait(seconds):
        raise DeadlineExceeded(seconds, finished)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
