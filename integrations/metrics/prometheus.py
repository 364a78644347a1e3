"""Prometheus (or any PromQL-compatible store) over ``prometheus-api-client``.

Failures are mapped onto :mod:`integrations.errors` at this boundary: timeouts and refused
connections are retryable, a rejected query (HTTP 400/422) is not. An answer that carries a
warning about its data (a Thanos or Mimir partial response, a failed remote read) is
unavailable too: a series missing from it would read as zero errors, which could look like
a degradation. PromQL's own annotations about a query ("PromQL warning: …") are not about
missing data and are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from integrations.errors import (
    AuthFailed,
    IntegrationTimeout,
    IntegrationUnavailable,
    InvalidRequest,
    RateLimited,
    Where,
)
from integrations.metrics.base import Series

_STATUS = re.compile(r"HTTP Status Code (\d{3})")
_MESSAGE_LIMIT = 300


class PrometheusSource:
    """A :class:`~integrations.metrics.base.MetricsSource` backed by the Prometheus HTTP API."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        session = requests.Session()
        # The client returns only the result; its warnings are read as the answer arrives.
        session.hooks["response"].append(_refuse_partial_answers)
        # Retries belong to the runbook engine and the watch, not to each HTTP call.
        self._client = PrometheusConnect(
            url=url, retry=Retry(total=0), timeout=timeout, session=session
        )
        self._server = urlsplit(url).netloc.rpartition("@")[2] or url

    def __repr__(self) -> str:
        return f"PrometheusSource(server={self._server!r})"

    def query(self, promql: str, *, at: datetime | None = None) -> list[Series]:
        """An instant query: one sample per series."""
        params = {"time": str(at.timestamp())} if at is not None else None
        with self._mapped("query", promql):
            result = self._client.custom_query(promql, params=params)
            return [_series(item, "value") for item in result]

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]:
        """A range query."""
        with self._mapped("query_range", promql):
            result = self._client.custom_query_range(
                promql, start_time=start, end_time=end, step=f"{step_seconds:g}s"
            )
            return [_series(item, "values") for item in result]

    @contextmanager
    def _mapped(self, operation: str, promql: str) -> Iterator[None]:
        where = Where(
            integration="prometheus",
            operation=operation,
            target=f"{_short(promql)} on {self._server}",
        )
        try:
            yield
        except _PartialAnswer as exc:
            raise IntegrationUnavailable(f"incomplete answer: {exc}", **where) from exc
        except requests.Timeout as exc:
            raise IntegrationTimeout("timed out", **where) from exc
        except requests.RequestException as exc:
            raise IntegrationUnavailable(f"unreachable ({type(exc).__name__})", **where) from exc
        except PrometheusApiClientException as exc:
            raise _status_error(str(exc), where) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"malformed response: {exc}", **where) from exc


class _PartialAnswer(Exception):
    """An answer whose warnings say data may be missing from it."""


def _refuse_partial_answers(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Raise for a successful answer with warnings other than PromQL's annotations."""
    if response.status_code != 200 or b'"warnings"' not in response.content:
        return
    try:
        body = response.json()
    except ValueError:
        return  # the client reports the malformed body
    warnings = body.get("warnings") if isinstance(body, dict) else None
    if not isinstance(warnings, list):
        return
    about_data = [str(w) for w in warnings if not _about_the_query(str(w))]
    if about_data:
        raise _PartialAnswer(_short("; ".join(about_data)))


def _about_the_query(warning: str) -> bool:
    """PromQL's annotations, and the line saying how many more it left out (over ten)."""
    return warning.startswith("PromQL") or warning.endswith("annotations omitted")


def _status_error(message: str, where: Where) -> Exception:
    match = _STATUS.search(message)
    status = int(match.group(1)) if match else 0
    text = _short(message)
    if status == 429:
        return RateLimited(text, **where)
    if status in (401, 403):
        return AuthFailed(f"HTTP {status}: not authorized", **where)
    if status >= 500 or status == 0:
        return IntegrationUnavailable(text, **where)
    return InvalidRequest(text, **where)


def _series(item: Any, key: str) -> Series:
    """One result item: ``value`` holds an instant query's sample, ``values`` a range's."""
    if not isinstance(item, dict):
        raise TypeError(f"a result item is {type(item).__name__}, not an object")
    values = item.get(key)
    if key == "value":
        values = [values] if values else []
    samples = [(float(ts), float(value)) for ts, value in (values or [])]
    return Series(labels=dict(item.get("metric", {})), samples=samples)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT] + "…"
