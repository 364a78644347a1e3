"""Impact and chart data: from the metrics source when there is one, else the stored evidence.

Queries are complete PromQL but for ``$step`` (one sample's width, filled in here to match
the chart's resolution). ``requests`` and ``errors`` are counts per step, any other name a
gauge; counts let the postmortem say how many requests the degraded version served and how
many failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.postmortem.facts import EvidenceFact, ImpactFact, MetricPoint, MetricSeries
from integrations.errors import IntegrationError
from integrations.metrics.base import MetricsSource

REQUESTS = "requests"
ERRORS = "errors"
ERROR_RATE = "error_rate"
COUNTS = (REQUESTS, ERRORS)
METRICS_SOURCE = "metrics source"
_MARGIN = timedelta(minutes=30)
_MAX_POINTS = 1000

Samples = list[tuple[float, float]]


@dataclass(frozen=True)
class MetricWindow:
    """The stretch of time the chart and the impact numbers cover."""

    start: datetime
    end: datetime
    step_seconds: float


@dataclass(frozen=True)
class MetricReadings:
    """What the metrics source returned, or why it returned nothing."""

    columns: Mapping[str, Samples]
    problem: str | None = None


def window_around(moments: Sequence[datetime | None], *, now: datetime) -> MetricWindow:
    """Half an hour either side of the incident's known moments, at most ~1000 points."""
    known = [moment for moment in moments if moment is not None] or [now]
    start = min(known) - _MARGIN
    end = min(max(known) + _MARGIN, max(now, max(known)))
    span = max((end - start).total_seconds(), 60.0)
    step = max(60.0, 60.0 * round(span / _MAX_POINTS / 60))
    return MetricWindow(start=start, end=end, step_seconds=step)


def read_metrics(
    source: MetricsSource,
    *,
    queries: Mapping[str, str],
    window: MetricWindow,
) -> MetricReadings:
    """Run each query over the window; an unreachable source is reported, not raised."""
    columns: dict[str, Samples] = {}
    for name, template in queries.items():
        promql = template.replace("$step", f"{round(window.step_seconds)}s")
        try:
            found = source.query_range(
                promql, start=window.start, end=window.end, step_seconds=window.step_seconds
            )
        except IntegrationError as exc:
            return MetricReadings(columns={}, problem=f"metrics source unavailable ({exc})")
        columns[name] = _combine([series.samples for series in found], total=name in COUNTS)
    return MetricReadings(columns=columns)


def chart_series(
    columns: Mapping[str, Samples], evidence: Mapping[str, EvidenceFact]
) -> tuple[MetricSeries, ...]:
    """The error rate (errors / requests) and every gauge, with baseline and limit lines."""
    series: list[MetricSeries] = []
    if columns.get(REQUESTS) and columns.get(ERRORS):
        requests = dict(columns[REQUESTS])
        rates = [(t, e / requests[t]) for t, e in columns[ERRORS] if requests.get(t)]
        series.append(_series(ERROR_RATE, "error rate", "ratio", rates, evidence))
    for name, samples in columns.items():
        if name in (REQUESTS, ERRORS) or not samples:
            continue
        label = evidence[name].label if name in evidence else name.replace("_", " ")
        unit = "s" if name.endswith("_seconds") else ""
        series.append(_series(name, label, unit, samples, evidence))
    return tuple(series)


def impact_from_counts(
    columns: Mapping[str, Samples],
    *,
    start: datetime | None,
    end: datetime | None,
    ongoing: bool,
    baseline_error_rate: float | None,
) -> ImpactFact | None:
    """Requests and errors summed over the impact window; None without request counts."""
    if start is None or end is None or not columns.get(REQUESTS):
        return None
    low, high = start.timestamp(), end.timestamp()
    requests = sum(v for t, v in columns[REQUESTS] if low <= t < high)
    errors = sum(v for t, v in columns.get(ERRORS, []) if low <= t < high)
    excess = None
    if ERRORS in columns and baseline_error_rate is not None:
        excess = max(0.0, errors - baseline_error_rate * requests)
    return ImpactFact(
        start=start,
        end=end,
        ongoing=ongoing,
        seconds=(end - start).total_seconds(),
        requests=requests,
        errors=errors if ERRORS in columns else None,
        excess_errors=excess,
        basis="counted from the metrics source over the impact window",
    )


def impact_from_evidence(
    evidence: Mapping[str, EvidenceFact],
    *,
    start: datetime | None,
    end: datetime | None,
    ongoing: bool,
    problem: str | None = None,
) -> ImpactFact:
    """Extrapolate the decision window's request rate and error rates over the impact window."""
    seconds = (end - start).total_seconds() if start and end else None
    rate = evidence.get(ERROR_RATE)
    requests = errors = excess = None
    basis = "no request counts were recorded, so the number of requests is not known"
    if seconds is not None and rate and rate.sample_count and rate.window_seconds:
        requests = rate.sample_count / rate.window_seconds * seconds
        if rate.candidate_value is not None:
            errors = rate.candidate_value * requests
            if rate.baseline_value is not None:
                excess = max(0.0, (rate.candidate_value - rate.baseline_value) * requests)
        basis = (
            "estimated from the detection window "
            f"({rate.sample_count:,.0f} requests in {rate.window_seconds / 60:.0f} min) "
            "extended over the impact window"
        )
    if problem:
        basis = f"{basis}; {problem}"
    return ImpactFact(
        start=start,
        end=end,
        ongoing=ongoing,
        seconds=seconds,
        requests=requests,
        errors=errors,
        excess_errors=excess,
        basis=basis,
    )


def _series(
    name: str,
    label: str,
    unit: str,
    samples: Samples,
    evidence: Mapping[str, EvidenceFact],
) -> MetricSeries:
    fact = evidence.get(name)
    baseline = fact.baseline_value if fact else None
    limit = fact.limit_value if fact else None
    points = tuple(
        MetricPoint(at=datetime.fromtimestamp(t, UTC), value=value, baseline=baseline, limit=limit)
        for t, value in samples
    )
    return MetricSeries(name=name, label=label, unit=unit, points=points, source=METRICS_SOURCE)


def _combine(columns: list[list[tuple[float, float]]], *, total: bool) -> Samples:
    # A query may return one series per pod or replica: counts add up, gauges average.
    sums: dict[float, float] = {}
    counts: dict[float, int] = {}
    for samples in columns:
        for t, value in samples:
            sums[t] = sums.get(t, 0.0) + value
            counts[t] = counts.get(t, 0) + 1
    return [(t, value if total else value / counts[t]) for t, value in sorted(sums.items())]
