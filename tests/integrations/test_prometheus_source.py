"""PrometheusSource against a server that answers with malformed bodies: a clear error each time."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from integrations.errors import IntegrationUnavailable, InvalidRequest
from integrations.metrics.prometheus import PrometheusSource

START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC)


def _matrix(result: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


@pytest.fixture
def answering() -> Iterator[tuple[PrometheusSource, list[dict[str, Any]]]]:
    """A source whose server answers every query with the body last put in the list."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            body = json.dumps(bodies[-1]).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield PrometheusSource(f"http://127.0.0.1:{server.server_port}"), bodies
    finally:
        server.shutdown()
        server.server_close()


def test_a_well_formed_range_is_read(
    answering: tuple[PrometheusSource, list[dict[str, Any]]],
) -> None:
    source, bodies = answering
    bodies.append(_matrix([{"metric": {"model": "fraud"}, "values": [[1767225600, "2.5"]]}]))

    [series] = source.query_range("up", start=START, end=END, step_seconds=60)

    assert series.labels == {"model": "fraud"} and series.samples == [(1767225600.0, 2.5)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_matrix(["oops"]), "a result item is str, not an object"),
        (_matrix([{"metric": {}, "values": [[1, "x"]]}]), "could not convert string to float"),
        (_matrix([{"metric": {}, "values": [[1, "2", "3"]]}]), "too many values to unpack"),
        ({"status": "success", "data": {}}, "'result'"),
    ],
    ids=["item-not-object", "value-not-number", "sample-not-pair", "no-result"],
)
def test_a_malformed_response_is_an_invalid_request_naming_the_query(
    answering: tuple[PrometheusSource, list[dict[str, Any]]], body: dict[str, Any], reason: str
) -> None:
    source, bodies = answering
    bodies.append(body)

    with pytest.raises(InvalidRequest) as refused:
        source.query_range("sum(up)", start=START, end=END, step_seconds=60)

    assert str(refused.value).startswith("prometheus query_range sum(up) on 127.0.0.1:")
    assert "malformed response" in str(refused.value) and reason in str(refused.value)


def test_an_answer_warning_of_missing_data_is_unavailable_not_read(
    answering: tuple[PrometheusSource, list[dict[str, Any]]],
) -> None:
    # A Thanos or Mimir partial response: the series it lacks would read as zero errors.
    source, bodies = answering
    body = _matrix([{"metric": {"model": "fraud"}, "values": [[1767225600, "2.5"]]}])
    bodies.append({**body, "warnings": ["partial response: store 10.0.0.7:10901 unavailable"]})

    with pytest.raises(IntegrationUnavailable) as raised:
        source.query_range("errors", start=START, end=END, step_seconds=60)

    assert "incomplete answer: partial response: store 10.0.0.7:10901 unavailable" in str(
        raised.value
    )
    assert "errors on 127.0.0.1" in str(raised.value)


def test_promql_annotations_about_the_query_do_not_discard_the_answer(
    answering: tuple[PrometheusSource, list[dict[str, Any]]],
) -> None:
    source, bodies = answering
    body = _matrix([{"metric": {"model": "fraud"}, "values": [[1767225600, "0.4"]]}])
    warning = "PromQL warning: input to histogram_quantile needed to be fixed for monotonicity"
    bodies.append({**body, "warnings": [warning]})

    [series] = source.query_range("latency", start=START, end=END, step_seconds=60)

    assert series.samples == [(1767225600.0, 0.4)]


def test_more_promql_annotations_than_prometheus_lists_do_not_discard_the_answer(
    answering: tuple[PrometheusSource, list[dict[str, Any]]],
) -> None:
    # Prometheus lists ten annotations and says how many more it left out.
    source, bodies = answering
    body = _matrix([{"metric": {"model": "fraud"}, "values": [[1767225600, "0.4"]]}])
    listed = [f"PromQL info: metric m{i} might not be a counter" for i in range(10)]
    bodies.append({**body, "warnings": [*listed, "3 more warning annotations omitted"]})

    [series] = source.query_range("latency", start=START, end=END, step_seconds=60)

    assert series.samples == [(1767225600.0, 0.4)]


def test_an_answer_that_is_not_an_object_is_an_invalid_request(
    answering: tuple[PrometheusSource, list[dict[str, Any]]],
) -> None:
    source, bodies = answering
    bodies.append(["warnings"])  # type: ignore[arg-type]

    with pytest.raises(InvalidRequest, match="malformed response"):
        source.query_range("errors", start=START, end=END, step_seconds=60)
