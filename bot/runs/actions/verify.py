"""``verify``: a PromQL value must stay within its limits for a while, or the step fails."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field, model_validator

from bot.config.durations import Duration, format_duration
from bot.errors import RollbotError
from bot.runs.actions.base import ActionParams, typed
from bot.runs.contracts import StepContext
from integrations.metrics.base import MetricsSource


class VerificationFailed(RollbotError):
    """The metrics after a step are outside the limits; the message carries the numbers."""


class VerifyParams(ActionParams):
    """Sample ``query`` every ``interval`` for ``hold``; every sample must be within limits."""

    query: str = Field(min_length=1)
    max_value: float | None = None
    max_ratio_to_baseline: float | None = Field(default=None, gt=0)
    baseline_query: str | None = None
    baseline_value: float | None = None
    hold: Duration = timedelta(0)
    interval: Duration = timedelta(seconds=30)

    def least_duration(self) -> tuple[str, timedelta] | None:
        return "hold", self.hold

    @model_validator(mode="after")
    def _limits_make_sense(self) -> VerifyParams:
        if self.max_value is None and self.max_ratio_to_baseline is None:
            raise ValueError("set max_value and/or max_ratio_to_baseline")
        baselines = (self.baseline_query is not None) + (self.baseline_value is not None)
        if self.max_ratio_to_baseline is not None and baselines != 1:
            raise ValueError(
                "max_ratio_to_baseline needs exactly one of baseline_query and baseline_value"
            )
        if self.interval <= timedelta(0):
            raise ValueError("interval must be positive")
        return self

    def samples(self) -> int:
        """How many samples the hold takes (the first one at once)."""
        return int(self.hold.total_seconds() // self.interval.total_seconds()) + 1


class Verify:
    """``verify``: fail with the numbers when the metric leaves its limits."""

    name = "verify"
    params_model: type[BaseModel] = VerifyParams
    description = "Check a PromQL value against an absolute limit and/or a baseline, for a hold."

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        p = typed(params, VerifyParams)
        metrics = _metrics(context)
        baseline = _baseline(metrics, p)
        values: list[float | None] = []
        for index in range(p.samples()):
            if index:
                context.sleep(p.interval.total_seconds())
            value = _worst_value(metrics, p.query)
            values.append(value)
            if value is not None:
                _check_limits(p, value, baseline, sample=index + 1)
        seen = [value for value in values if value is not None]
        if not seen:
            raise VerificationFailed(
                f"verify: no data for {p.query!r} in {len(values)} sample(s) over "
                f"{format_duration(p.hold)}; cannot confirm the rollback helped"
            )
        return {"query": p.query, "values": values, "baseline": baseline, "max_seen": max(seen)}

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        return None  # a check has no lasting effect: after a crash it simply runs again


def _metrics(context: StepContext) -> MetricsSource:
    if context.metrics is None:
        raise VerificationFailed(
            "verify: no metrics source configured (set PROMETHEUS_URL or metrics.url)"
        )
    return context.metrics


def _baseline(metrics: MetricsSource, p: VerifyParams) -> float | None:
    if p.baseline_value is not None:
        return p.baseline_value
    if p.baseline_query is None:
        return None
    value = _worst_value(metrics, p.baseline_query)
    if value is None:
        raise VerificationFailed(f"verify: no data for the baseline query {p.baseline_query!r}")
    return value


def _worst_value(metrics: MetricsSource, query: str) -> float | None:
    """The highest latest value across the series the query returns; None without data."""
    latest = [series.samples[-1][1] for series in metrics.query(query) if series.samples]
    latest = [value for value in latest if value == value]  # NaN is no data
    return max(latest) if latest else None


def _check_limits(p: VerifyParams, value: float, baseline: float | None, *, sample: int) -> None:
    where = f"(sample {sample} of {p.samples()}, query {p.query!r})"
    if p.max_value is not None and value > p.max_value:
        raise VerificationFailed(
            f"verify: {value:.6g} is above max_value {p.max_value:.6g} {where}"
        )
    if p.max_ratio_to_baseline is not None and baseline is not None:
        limit = baseline * p.max_ratio_to_baseline
        if value > limit:
            ratio = f"{value / baseline:.3g}×" if baseline else "infinitely"
            raise VerificationFailed(
                f"verify: {value:.6g} is {ratio} the baseline {baseline:.6g}, above "
                f"max_ratio_to_baseline {p.max_ratio_to_baseline:.6g} {where}"
            )
