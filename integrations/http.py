"""Map httpx failures and HTTP status codes onto :mod:`integrations.errors`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from integrations.errors import (
    AuthFailed,
    Conflict,
    IntegrationError,
    IntegrationTimeout,
    IntegrationUnavailable,
    InvalidRequest,
    NotFound,
    RateLimited,
    Where,
)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_BODY_LIMIT = 300


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's "no zone information", which HTTP means as GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _short_body(response: httpx.Response) -> str:
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""
    text = " ".join(text.split())
    return text if len(text) <= _BODY_LIMIT else text[:_BODY_LIMIT] + "…"


def raise_for_status(
    response: httpx.Response, *, integration: str, operation: str, target: str
) -> None:
    """Raise the matching :class:`IntegrationError` for a non-2xx response."""
    status = response.status_code
    if status < 400:
        return
    where = Where(integration=integration, operation=operation, target=target)
    message = f"HTTP {status}" + (f": {body}" if (body := _short_body(response)) else "")
    if status == 404:
        raise NotFound(message, **where)
    if status == 409:
        raise Conflict(message, **where)
    if status == 429:
        raise RateLimited(
            message, retry_after=parse_retry_after(response.headers.get("retry-after")), **where
        )
    if status in (401, 403):
        raise AuthFailed(f"HTTP {status}: not authorized", **where)
    if status >= 500 or status == 408:
        raise IntegrationUnavailable(message, **where)
    raise InvalidRequest(message, **where)


@contextmanager
def mapped_errors(*, integration: str, operation: str, target: str) -> Iterator[None]:
    """Turn transport-level httpx exceptions raised inside the block into our errors."""
    where = Where(integration=integration, operation=operation, target=target)
    try:
        yield
    except IntegrationError:
        raise
    except httpx.TimeoutException as exc:
        raise IntegrationTimeout(f"timed out ({type(exc).__name__})", **where) from exc
    except httpx.TransportError as exc:
        raise IntegrationUnavailable(f"unreachable ({type(exc).__name__})", **where) from exc
    except ValueError as exc:  # JSON decoding of a malformed answer
        raise InvalidRequest(f"malformed response: {exc}", **where) from exc
