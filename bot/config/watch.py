"""What a watch reads and where it draws the line: PromQL templates and rollback boundaries.

Templates use two placeholders: ``$selector`` (the label matchers picking the watched models,
filled in by the query grouping) and ``$step`` (one sample's width, such as ``1m``). A
watch can be three lines because the well-known metrics carry complete defaults.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.config.durations import Duration, format_duration
from bot.detection.rules import Boundary, Direction, GaugeRule, MetricRule, RatioRule
from bot.detection.scenario import DEFAULT_EVALUATION_INTERVAL_SECONDS

_EVALUATION_INTERVAL = timedelta(seconds=DEFAULT_EVALUATION_INTERVAL_SECONDS)


class MetricKind(StrEnum):
    """A rate given as counts, or a value sampled per step."""

    RATIO = "ratio"
    GAUGE = "gauge"


_KNOWN_METRICS: dict[str, dict[str, Any]] = {
    "error_rate": {
        "kind": MetricKind.RATIO,
        "numerator": "increase(model_errors_total{$selector}[$step])",
        "denominator": "increase(model_requests_total{$selector}[$step])",
        "max_ratio_to_baseline": 1.5,
        "label": "error rate",
    },
    "latency_p99_seconds": {
        "kind": MetricKind.GAUGE,
        "query": "model_latency_p99_seconds{$selector}",
        "aggregation": "max",
        "max_ratio_to_baseline": 1.3,
        "label": "p99 latency",
        "unit": "s",
    },
    "confidence": {
        "kind": MetricKind.GAUGE,
        "query": "model_prediction_confidence{$selector}",
        "direction": Direction.LOWER_IS_WORSE,
        "min_ratio_to_baseline": 0.9,
        "label": "mean confidence",
    },
    "drift_score": {
        "kind": MetricKind.GAUGE,
        "query": "model_drift_score{$selector}",
        "aggregation": "max",
        "max_value": 0.3,
        "label": "drift score",
    },
}


class _Section(BaseModel):
    # The same strictness as bot.config.models.Section; that module imports this one, so the
    # base is repeated here rather than imported back.
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricConfig(_Section):
    """One watched metric: its PromQL and its rollback boundaries."""

    kind: MetricKind = MetricKind.RATIO
    numerator: str | None = None
    denominator: str | None = None
    query: str | None = None
    # Gauges from several replicas are combined per version with this aggregation.
    aggregation: Literal["avg", "max", "min", "sum"] = "avg"
    direction: Direction = Direction.HIGHER_IS_WORSE
    max_ratio_to_baseline: float | None = Field(default=None, gt=0)
    max_value: float | None = Field(default=None, ge=0)
    min_ratio_to_baseline: float | None = Field(default=None, gt=0)
    min_value: float | None = Field(default=None, ge=0)
    label: str = ""
    unit: str = ""

    @model_validator(mode="after")
    def _complete(self) -> MetricConfig:
        if self.kind == MetricKind.RATIO and not (self.numerator and self.denominator):
            raise ValueError("a ratio metric needs 'numerator' and 'denominator' PromQL")
        if self.kind == MetricKind.GAUGE and not self.query:
            raise ValueError("a gauge metric needs 'query' PromQL")
        for template in self.templates():
            if "$selector" not in template:
                raise ValueError(f"PromQL {template!r} must contain $selector")
            if (problem := template_problem(template)) is not None:
                raise ValueError(f"PromQL {template!r}: {problem}")
        if self.boundary().is_empty():
            raise ValueError("set at least one boundary (max_ratio_to_baseline, max_value, ...)")
        if (ignored := self._ignored_boundaries()) is not None:
            raise ValueError(ignored)
        return self

    def _ignored_boundaries(self) -> str | None:
        """Why a boundary set here could never act, if one could not."""
        lower = [k for k in ("min_ratio_to_baseline", "min_value") if getattr(self, k) is not None]
        upper = [k for k in ("max_ratio_to_baseline", "max_value") if getattr(self, k) is not None]
        if self.kind == MetricKind.RATIO:
            if lower or self.direction != Direction.HIGHER_IS_WORSE:
                named = ", ".join(lower) or "direction"
                return (
                    f"a ratio metric rolls back when its rate rises: {named} does not apply "
                    "to it (use max_ratio_to_baseline or max_value)"
                )
            return None
        wrong = lower if self.direction == Direction.HIGHER_IS_WORSE else upper
        if wrong:
            right = "max_" if self.direction == Direction.HIGHER_IS_WORSE else "min_"
            return (
                f"{', '.join(wrong)} never acts on a gauge whose direction is "
                f"{self.direction.value}: use {right}ratio_to_baseline or {right}value, "
                "or set direction"
            )
        return None

    def templates(self) -> list[str]:
        """The PromQL templates this metric reads."""
        if self.kind == MetricKind.RATIO:
            return [self.numerator or "", self.denominator or ""]
        return [self.query or ""]

    def boundary(self) -> Boundary:
        """The rollback boundary in the detector's terms."""
        return Boundary(
            max_ratio_to_baseline=self.max_ratio_to_baseline,
            max_value=self.max_value,
            min_ratio_to_baseline=self.min_ratio_to_baseline,
            min_value=self.min_value,
        )

    def rule(self, name: str) -> MetricRule:
        """The detector rule; ratio columns are named ``<metric>:numerator/denominator``."""
        if self.kind == MetricKind.RATIO:
            return RatioRule(
                name=name,
                boundary=self.boundary(),
                numerator=numerator_column(name),
                denominator=denominator_column(name),
                label=self.label or name.replace("_", " "),
            )
        return GaugeRule(
            name=name,
            boundary=self.boundary(),
            series=name,
            direction=self.direction,
            label=self.label,
            unit=self.unit,
        )


_PLACEHOLDER = re.compile(r"\$(\w+)")
_PLACEHOLDERS = {"selector", "step"}
_OPENING = {")": "(", "]": "[", "}": "{"}


def template_problem(template: str) -> str | None:
    """What is wrong with a PromQL template before Prometheus sees it, if anything.

    Catches what would otherwise surface only when the watch runs: an unknown placeholder,
    brackets that do not pair up, and ``$selector`` outside a metric's label matchers.
    Strings (where ``"$1"`` is PromQL's own, as in ``label_replace``) and ``#`` comments
    are read as PromQL reads them and not checked.
    """
    opened: list[str] = []
    index = 0
    while index < len(template):
        char = template[index]
        if char in "\"'`":
            index = _string_end(template, index)
            if index < 0:
                return f"a string opened with {char} is never closed"
        elif char == "#":
            newline = template.find("\n", index)
            index = len(template) if newline < 0 else newline
        elif char == "$" and (found := _PLACEHOLDER.match(template, index)):
            name = found.group(1)
            if name not in _PLACEHOLDERS:
                return f"unknown placeholder ${name} (templates know $selector and $step)"
            if name == "selector" and (not opened or opened[-1] != "{"):
                return "$selector must stand inside a metric's {…} label matchers"
            index = found.end() - 1
        elif char in "([{":
            opened.append(char)
        elif char in _OPENING:
            if not opened or opened[-1] != _OPENING[char]:
                return f"'{char}' at character {index + 1} closes nothing"
            opened.pop()
        index += 1
    if opened:
        return f"'{opened[-1]}' is never closed"
    return None


def _string_end(template: str, start: int) -> int:
    """Index of the quote closing the string opened at ``start``; -1 if none does.

    Backslash escapes the next character in "…" and '…' strings; `…` strings have no escapes.
    """
    quote, index = template[start], start + 1
    while index < len(template):
        char = template[index]
        if char == "\\" and quote != "`":
            index += 2
            continue
        if char == quote:
            return index
        index += 1
    return -1


def numerator_column(metric: str) -> str:
    """The sampled column holding a ratio metric's numerator counts."""
    return f"{metric}:numerator"


def denominator_column(metric: str) -> str:
    """The sampled column holding a ratio metric's denominator counts."""
    return f"{metric}:denominator"


def _with_known_defaults(name: str, raw: Any) -> Any:
    """A well-known metric's defaults under what the configuration sets itself."""
    known = _KNOWN_METRICS.get(name)
    if raw is None:
        raw = {}
    if known is None or not isinstance(raw, dict):
        return raw
    if "kind" in raw and raw["kind"] != known["kind"]:
        return raw
    overrides_boundary = any(key in raw for key in _BOUNDARY_KEYS)
    base = {k: v for k, v in known.items() if not (overrides_boundary and k in _BOUNDARY_KEYS)}
    return {**base, **raw}


_BOUNDARY_KEYS = {"max_ratio_to_baseline", "max_value", "min_ratio_to_baseline", "min_value"}


def _refuse_unknown_name(name: str, raw: Any) -> None:
    """A metric named without its PromQL must be a built-in one (a typo reads as one)."""
    own = isinstance(raw, dict) and {"kind", "numerator", "denominator", "query"} & raw.keys()
    if name not in _KNOWN_METRICS and not own:
        known = ", ".join(_KNOWN_METRICS)
        raise ValueError(
            f"unknown metric {name!r}: the built-in ones are {known}; a metric of your own "
            "needs numerator and denominator (a ratio) or kind: gauge and query"
        )


class WatchConfig(_Section):
    """A model's live watch; ``watch: {}`` watches the error rate with every default.

    ``interval`` defaults to ``DEFAULT_EVALUATION_INTERVAL_SECONDS`` (15 s), the interval
    ``rollbot replay`` evaluates at; a watch only judges again once a new step is complete.
    ``step`` (one sample's width) defaults to 1m because ``increase()`` needs two scrapes
    inside a step and most Prometheus setups scrape every 15–30 s. A watch whose step is
    the scenario's ``step_seconds`` decides exactly as ``rollbot replay`` does; set
    ``step: 15s`` where scrapes come every 7.5 s or faster.
    """

    metrics: dict[str, MetricConfig] = Field(
        default_factory=lambda: {"error_rate": MetricConfig(**_KNOWN_METRICS["error_rate"])}
    )
    # An excursion shorter than this is a blip and never a reason to roll back.
    sustain: Duration = timedelta(minutes=3)
    interval: Duration = _EVALUATION_INTERVAL
    cooldown: Duration = timedelta(hours=1)
    # One sample's width; increase() needs two scrapes inside it (see the docstring).
    step: Duration = timedelta(minutes=1)
    # How much of the safe version's history before the deploy forms the baseline.
    baseline_window: Duration = timedelta(hours=1)
    # "auto" compares against the safe version live while both serve (a canary), else
    # against its window before the deploy.
    baseline: Literal["auto", "before_deploy", "live"] = "auto"
    # How far back the candidate's samples are read at most, however old the deploy.
    lookback: Duration = timedelta(hours=6)
    confirmations: int = Field(default=1, ge=1, le=10)
    model_label: str = Field(default="model", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    version_label: str = Field(default="version", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    # The model's name as Prometheus labels it, when it differs from the configuration key.
    metrics_name: str | None = None

    @field_validator("metrics", mode="before")
    @classmethod
    def _expand_known(cls, raw: Any) -> Any:
        if isinstance(raw, list):
            raw = {name: {} for name in raw}
        if isinstance(raw, dict):
            for name, value in raw.items():
                _refuse_unknown_name(name, value)
            return {name: _with_known_defaults(name, value) for name, value in raw.items()}
        return raw

    @model_validator(mode="after")
    def _sane_timing(self) -> WatchConfig:
        if not self.metrics:
            raise ValueError("a watch needs at least one metric")
        if self.step.total_seconds() < 1 or self.step.total_seconds() % 1:
            raise ValueError("step must be a whole number of seconds, at least 1s")
        if self.lookback < 2 * self.sustain:
            raise ValueError(
                f"lookback ({format_duration(self.lookback)}) must be at least twice the "
                f"sustain time ({format_duration(self.sustain)}): a shorter one never holds "
                "enough of an excess to tell it from a blip"
            )
        if self.interval.total_seconds() < 1:
            raise ValueError("interval must be at least 1s")
        if self.baseline_window < 2 * self.step:
            raise ValueError("baseline_window must cover at least two steps")
        return self

    def rules(self) -> list[MetricRule]:
        """The detector rules of every metric."""
        return [metric.rule(name) for name, metric in self.metrics.items()]
