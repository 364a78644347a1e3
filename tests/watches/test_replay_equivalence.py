"""A live watch fed a shared scenario proposes exactly when ``rollbot replay`` does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config.watch import WatchConfig
from bot.detection.scenario import DEFAULT_EVALUATION_INTERVAL_SECONDS, Scenario, load_scenario
from bot.detection.scenario import replay as replay_scenario
from bot.detection.watch_state import WatchState
from bot.watches.judging import judge
from bot.watches.reader import read_samples
from bot.watches.targets import WatchTarget
from integrations.metrics.base import Series

SCENARIOS = Path("/work/shared/scenarios")
# Early and late detections, a latency one and a ramp (each runs until replay proposes).
SHARED = ["step-m10-r5", "step-m4-r0.5", "latency-x2-r5", "ramp-to5-30m-r5", "step-m2.5-r50"]
_COLUMNS = {
    "model_errors_total": "errors",
    "model_requests_total": "requests",
    "model_latency_p99_seconds": "latency_p99_seconds",
}


@dataclass
class ScenarioPrometheus:
    """Serves a scenario's samples as grouped range queries would return them."""

    scenario: Scenario
    model: str = "fraud"

    def query(self, promql: str, *, at: datetime | None = None) -> list[Series]:
        """Unused by watches."""
        raise NotImplementedError

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]:
        """Sample ``i`` covers one step, so it is the range point at that step's end."""
        column = next(c for name, c in _COLUMNS.items() if name in promql)
        s = self.scenario
        by_version: dict[str, list[tuple[float, float]]] = {"1": [], "2": []}
        for index, value in enumerate(s.series[column]):
            moment = s.start + (index + 1) * s.step_seconds
            if value is not None and start.timestamp() <= moment <= end.timestamp():
                by_version["1" if index < s.deploy_step else "2"].append((moment, value))
        return [
            Series({"model": self.model, "version": version}, samples)
            for version, samples in by_version.items()
            if samples
        ]


def live_watch(scenario: Scenario) -> WatchTarget:
    """The watch a team would configure with the scenario's boundaries."""
    watch = WatchConfig.model_validate(
        {
            "metrics": {name: dict(limits) for name, limits in scenario.boundaries.items()},
            "sustain": f"{scenario.min_sustain_seconds:g}s",
            "step": f"{scenario.step_seconds:g}s",
        }
    )
    deployed_at = datetime.fromtimestamp(scenario.deploy_at, UTC)
    return WatchTarget("fraud", watch, "2", deployed_at, "1")


def live_proposal(scenario: Scenario) -> float | None:
    """Evaluate as the worker does at every interval since the deploy, until it proposes."""
    target = live_watch(scenario)
    source = ScenarioPrometheus(scenario)
    interval = target.watch.interval.total_seconds()
    state, now = WatchState(), scenario.deploy_at + interval
    while now <= scenario.end:
        at = datetime.fromtimestamp(now, UTC)
        samples = read_samples(source, [target], now=at).get(target.model)
        judgement = judge(target, samples, state, now=now)
        if judgement.step.propose:
            return now
        state, now = judgement.step.state, now + interval
    return None


def test_the_default_interval_is_the_replay_interval_and_the_step_fits_common_scrapes() -> None:
    watch = WatchConfig()
    assert watch.interval == timedelta(seconds=DEFAULT_EVALUATION_INTERVAL_SECONDS)
    # increase() needs two scrapes per step: 1m suits 15 s and 30 s scrape intervals.
    assert watch.step == timedelta(minutes=1)


@pytest.mark.parametrize("name", SHARED)
def test_a_live_watch_proposes_when_replay_does(name: str) -> None:
    path = SCENARIOS / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} not found (shared scenarios absent)")
    scenario = load_scenario(path)

    replayed = replay_scenario(scenario).proposed_at

    assert live_proposal(scenario) == replayed
    if scenario.degraded_from is not None:
        assert replayed is not None  # the comparison covers a real proposal
