"""Degradation scenarios (../shared/scenarios format) and their replay through a live-like watch."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.detection.detector import detect
from bot.detection.evidence import Decision, DetectionState
from bot.detection.rules import MetricRule, StepSeries, rules_from_boundaries
from bot.detection.watch_state import WatchPolicy, WatchState
from bot.detection.windows import DEFAULT_SETTINGS, DetectorSettings
from bot.errors import RollbotError

DEFAULT_EVALUATION_INTERVAL_SECONDS = 15.0
_BOUNDARY_KEYS = {"max_ratio_to_baseline", "max_value", "min_ratio_to_baseline", "min_value"}


class ScenarioError(RollbotError):
    """A scenario file that cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class Scenario:
    """One recorded deploy: an hour of the safe version, then the candidate."""

    name: str
    kind: str
    step_seconds: float
    start: float
    deploy_at: float
    boundaries: Mapping[str, Mapping[str, float]]
    min_sustain_seconds: float
    series: Mapping[str, Sequence[float | None]]
    baseline_version: str = ""
    candidate_version: str = ""
    degraded_from: float | None = None
    source: str = ""

    @property
    def deploy_step(self) -> int:
        """Index of the first candidate sample."""
        return round((self.deploy_at - self.start) / self.step_seconds)

    @property
    def end(self) -> float:
        """Unix seconds just after the last sample."""
        length = max(len(column) for column in self.series.values())
        return self.start + length * self.step_seconds

    def baseline(self) -> StepSeries:
        """The safe version's samples."""
        cut = self.deploy_step
        columns = {name: list(values[:cut]) for name, values in self.series.items()}
        return StepSeries(self.start, self.step_seconds, columns)

    def candidate(self) -> StepSeries:
        """The candidate's samples, starting at the deploy."""
        cut = self.deploy_step
        columns = {name: list(values[cut:]) for name, values in self.series.items()}
        return StepSeries(self.deploy_at, self.step_seconds, columns)

    def rules(self) -> list[MetricRule]:
        """The watch rules its boundaries describe."""
        return rules_from_boundaries(self.boundaries)


def _field(raw: Mapping[str, Any], key: str, source: str, kinds: tuple[type, ...]) -> Any:
    if key not in raw:
        raise ScenarioError(f"{source}: missing field '{key}'")
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join(kind.__name__ for kind in kinds)
        raise ScenarioError(f"{source}: field '{key}' must be {names}, not {value!r:.40}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ScenarioError(f"{source}: field '{key}' must be a finite number, not {value!r}")
    return value


def _degraded_from(raw: Mapping[str, Any], source: str) -> float | None:
    truth = raw.get("truth")
    if truth is None:
        return None
    if not isinstance(truth, dict):
        raise ScenarioError(f"{source}: field 'truth' must be an object or null")
    value = truth.get("degraded_from")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(
            f"{source}: field 'truth.degraded_from' must be unix seconds or null, not {value!r:.40}"
        )
    return float(value)


def _boundaries(raw: Any, source: str) -> dict[str, dict[str, float]]:
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(f"{source}: field 'boundaries' must be a non-empty object")
    checked: dict[str, dict[str, float]] = {}
    for metric, limits in raw.items():
        where = f"boundaries.{metric}"
        if not isinstance(limits, dict) or not limits:
            raise ScenarioError(f"{source}: field '{where}' must be a non-empty object")
        for key, value in limits.items():
            if key not in _BOUNDARY_KEYS:
                raise ScenarioError(f"{source}: field '{where}.{key}' is not a known boundary")
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value <= 0:
                raise ScenarioError(f"{source}: field '{where}.{key}' must be a positive number")
        checked[metric] = {key: float(value) for key, value in limits.items()}
    return checked


def _series(raw: Any, source: str, needed: Iterable[str]) -> dict[str, list[float | None]]:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: field 'series' must be an object of arrays")
    lengths = set()
    series: dict[str, list[float | None]] = {}
    for name in needed:
        if name not in raw:
            raise ScenarioError(f"{source}: missing field 'series.{name}'")
    for name, values in raw.items():
        if not isinstance(values, list):
            raise ScenarioError(f"{source}: field 'series.{name}' must be an array")
        for index, value in enumerate(values):
            valid = value is None or (
                isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            )
            if not valid or (value is not None and not math.isfinite(value)):
                where = f"series.{name}[{index}]"
                raise ScenarioError(f"{source}: field '{where}' must be a number >= 0 or null")
        lengths.add(len(values))
        series[name] = values
    if len(lengths) > 1:
        raise ScenarioError(f"{source}: field 'series' arrays differ in length {sorted(lengths)}")
    return series


def parse_scenario(raw: Any, *, source: str = "<scenario>") -> Scenario:
    """Validate a decoded scenario document."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: a scenario must be a JSON object")
    number = (int, float)
    step = float(_field(raw, "step_seconds", source, number))
    start = float(_field(raw, "start", source, number))
    deploy_at = float(_field(raw, "deploy_at", source, number))
    sustain = float(_field(raw, "min_sustain_seconds", source, number))
    if step <= 0:
        raise ScenarioError(f"{source}: field 'step_seconds' must be positive")
    if sustain < 0:
        raise ScenarioError(f"{source}: field 'min_sustain_seconds' must not be negative")
    offset = (deploy_at - start) / step
    if offset < 1 or abs(offset - round(offset)) > 1e-9:
        raise ScenarioError(f"{source}: field 'deploy_at' must fall on a step after 'start'")
    boundaries = _boundaries(raw.get("boundaries"), source)
    needed = {"requests", "errors"} if "error_rate" in boundaries else set()
    needed |= {name for name in boundaries if name != "error_rate"}
    series = _series(_field(raw, "series", source, (dict,)), source, sorted(needed))
    if max((len(v) for v in series.values()), default=0) <= round(offset):
        raise ScenarioError(f"{source}: field 'series' has no samples after 'deploy_at'")
    return Scenario(
        name=str(_field(raw, "name", source, (str,))),
        kind=str(raw.get("kind", "")),
        step_seconds=step,
        start=start,
        deploy_at=deploy_at,
        boundaries=boundaries,
        min_sustain_seconds=sustain,
        series=series,
        baseline_version=str(raw.get("baseline_version", "")),
        candidate_version=str(raw.get("candidate_version", "")),
        degraded_from=_degraded_from(raw, source),
        source=source,
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file."""
    source = str(path)
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{source}: cannot read file ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{source}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    return parse_scenario(raw, source=source)


@dataclass(frozen=True)
class ReplayResult:
    """What a live watch would have done over the scenario."""

    name: str
    proposed_at: float | None
    decision: Decision
    evaluations: int
    degraded_from: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """One JSON object for ``rollbot replay --json``."""
        return {
            "name": self.name,
            "proposed_at": None if self.proposed_at is None else int(self.proposed_at),
            "state": self.decision.state.value,
            "explanation": self.decision.explain(),
            "decided_at": int(self.decision.evaluated_at),
            "evaluations": self.evaluations,
        }


def replay(
    scenario: Scenario,
    *,
    evaluation_interval_seconds: float = DEFAULT_EVALUATION_INTERVAL_SECONDS,
    policy: WatchPolicy | None = None,
    settings: DetectorSettings = DEFAULT_SETTINGS,
) -> ReplayResult:
    """Evaluate at a fixed interval from the deploy, as a live watch would, until it proposes."""
    if evaluation_interval_seconds <= 0:
        raise ValueError("evaluation_interval_seconds must be positive")
    watch_policy = policy or WatchPolicy()
    baseline, candidate, rules = scenario.baseline(), scenario.candidate(), scenario.rules()
    state = WatchState()
    decision = Decision(state=DetectionState.INCONCLUSIVE, evaluated_at=scenario.deploy_at)
    evaluations = 0
    now = scenario.deploy_at + evaluation_interval_seconds
    while now <= scenario.end + 1e-9:
        decision = detect(
            baseline=baseline,
            candidate=candidate,
            rules=rules,
            now=now,
            min_sustain_seconds=scenario.min_sustain_seconds,
            settings=settings,
        )
        evaluations += 1
        outcome = state.observe(decision.state, now=now, policy=watch_policy)
        state = outcome.state
        if outcome.propose:
            return ReplayResult(scenario.name, now, decision, evaluations, scenario.degraded_from)
        now += evaluation_interval_seconds
    return ReplayResult(scenario.name, None, decision, evaluations, scenario.degraded_from)


def replay_files(
    paths: Iterable[str | Path],
    *,
    evaluation_interval_seconds: float = DEFAULT_EVALUATION_INTERVAL_SECONDS,
) -> Iterator[dict[str, Any]]:
    """Replay each file in turn and yield its JSON object.

    Every file is read and checked before the first is replayed, so a bad file raises
    ScenarioError before any result is printed instead of after half of them.
    """
    scenarios = [load_scenario(path) for path in paths]
    for scenario in scenarios:
        result = replay(scenario, evaluation_interval_seconds=evaluation_interval_seconds)
        yield result.to_json_dict()
