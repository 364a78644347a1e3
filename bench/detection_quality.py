"""Detection quality: Rollbot's detector against rules other tools configure, on the same scenarios.

Usage:
    python bench/detection_quality.py [--scenarios DIR | --no-shared] [--generated REPEATS]
        [--seed SEED] [--baseline-hours HOURS] [--step-factor N] [--interval SECONDS]
        [--per-scenario] [--by-shift]

Prints one Markdown table per scenario set: false rollbacks, premature proposals, misses and
the median / p90 delay of the detected ones. Rollbot is evaluated at ``--interval`` (the live
watch's default unless given), the other tools' rules every minute, all from the deploy and
using only the samples complete at each evaluation.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.detection.scenario import (  # noqa: E402
    DEFAULT_EVALUATION_INTERVAL_SECONDS,
    Scenario,
    parse_scenario,
    replay,
)
from bot.detection.synthetic import (  # noqa: E402
    STEP_SECONDS,
    clustered_blip_recipes,
    generate,
    recipes,
)

DEFAULT_SCENARIOS = ROOT.parent / "shared" / "scenarios"
ERROR_BOUNDARY, LATENCY_BOUNDARY = "error_rate", "latency_p99_seconds"


@dataclass(frozen=True)
class _Rates:
    """Cumulative sums so any window's error rate and mean p99 is O(1)."""

    requests: list[float]
    errors: list[float]
    latency: list[float]
    latency_count: list[int]

    @classmethod
    def of(cls, scenario: Scenario) -> _Rates:
        requests, errors, latency, count = [0.0], [0.0], [0.0], [0]
        series = scenario.series
        for r, e, lat in zip(
            series["requests"], series["errors"], series["latency_p99_seconds"], strict=True
        ):
            present = r is not None and e is not None
            requests.append(requests[-1] + (r or 0.0 if present else 0.0))
            errors.append(errors[-1] + (e or 0.0 if present else 0.0))
            latency.append(latency[-1] + (lat or 0.0))
            count.append(count[-1] + (lat is not None))
        return cls(requests, errors, latency, count)

    def error_rate(self, first: int, end: int) -> float | None:
        served = self.requests[end] - self.requests[first]
        return None if served <= 0 else (self.errors[end] - self.errors[first]) / served

    def mean_latency(self, first: int, end: int) -> float | None:
        count = self.latency_count[end] - self.latency_count[first]
        return None if count == 0 else (self.latency[end] - self.latency[first]) / count


def _over(rates: _Rates, scenario: Scenario, first: int, end: int) -> bool:
    """The classic rule condition: the window's ratio to the baseline hour exceeds a boundary."""
    # Prometheus sees the model's series, not the version's: windows reach back over the deploy.
    deploy = scenario.deploy_step
    if end <= first:
        return False
    over = False
    error_limit = scenario.boundaries.get(ERROR_BOUNDARY, {}).get("max_ratio_to_baseline")
    base_rate, rate = rates.error_rate(0, deploy), rates.error_rate(first, end)
    if error_limit and base_rate is not None and rate is not None:
        over |= rate > error_limit * base_rate
    latency_limit = scenario.boundaries.get(LATENCY_BOUNDARY, {}).get("max_ratio_to_baseline")
    base_lat, lat = rates.mean_latency(0, deploy), rates.mean_latency(first, end)
    if latency_limit and base_lat is not None and lat is not None:
        over |= lat > latency_limit * base_lat
    return over


RuleDetector = Callable[[Scenario, float], float | None]


def prometheus_rule(window_seconds: float, for_seconds: float) -> RuleDetector:
    """`expr: ratio over window > boundary` with `for:`; no data resets the pending alert."""

    def run(scenario: Scenario, interval: float) -> float | None:
        rates, step = _Rates.of(scenario), scenario.step_seconds
        pending_since: float | None = None
        now = scenario.deploy_at + interval
        while now <= scenario.end:
            end = int((now - scenario.start) // step)
            if _over(rates, scenario, end - round(window_seconds / step), end):
                pending_since = now if pending_since is None else pending_since
                if now - pending_since >= for_seconds:
                    return now
            else:
                pending_since = None
            now += interval
        return None

    return run


def flagger_checks(check_seconds: float = 60.0, threshold: int = 5) -> RuleDetector:
    """Flagger's analysis: a failed 1m check counts towards the threshold until promotion."""

    def run(scenario: Scenario, interval: float) -> float | None:
        rates, step = _Rates.of(scenario), scenario.step_seconds
        failed = 0
        now = scenario.deploy_at + check_seconds
        while now <= scenario.end:
            end = int((now - scenario.start) // step)
            failed += _over(rates, scenario, end - round(check_seconds / step), end)
            if failed >= threshold:
                return now
            now += check_seconds
        return None

    return run


def multiwindow_rule(short_seconds: float = 300.0, long_seconds: float = 1800.0) -> RuleDetector:
    """The SRE-book multiwindow alert: both the short and the long window over the boundary."""

    def run(scenario: Scenario, interval: float) -> float | None:
        rates, step = _Rates.of(scenario), scenario.step_seconds
        now = scenario.deploy_at + interval
        while now <= scenario.end:
            end = int((now - scenario.start) // step)
            short = _over(rates, scenario, end - round(short_seconds / step), end)
            if short and _over(rates, scenario, end - round(long_seconds / step), end):
                return now
            now += interval
        return None

    return run


def rollbot(scenario: Scenario, interval: float) -> float | None:
    """Rollbot's detector and watch state, exactly as `rollbot replay` runs them."""
    return replay(scenario, evaluation_interval_seconds=interval).proposed_at


DETECTORS: dict[str, RuleDetector] = {
    "Rollbot detector": rollbot,
    "Prometheus rule, 5m ratio, `for: 5m`": prometheus_rule(300, 300),
    "Prometheus rule, 5m ratio, `for: 10m`": prometheus_rule(300, 600),
    "Flagger-style, 1m checks, threshold 5": flagger_checks(),
    "multiwindow 5m + 30m": multiwindow_rule(),
}


# The other tools' rules are evaluated every minute, as they are usually configured.
RULE_EVALUATION_SECONDS = 60.0


def _run_one(job: tuple[str, Scenario, float]) -> tuple[str, str, float | None, float | None]:
    name, scenario, interval = job
    if DETECTORS[name] is not rollbot:
        interval = RULE_EVALUATION_SECONDS
    return name, scenario.name, scenario.degraded_from, DETECTORS[name](scenario, interval)


Outcome = tuple[str, str, float | None, float | None]


def run_all(scenarios: Sequence[Scenario], interval: float, workers: int) -> list[Outcome]:
    """(detector, scenario, truth, proposed at) for every detector on every scenario."""
    jobs = [(name, scenario, interval) for name in DETECTORS for scenario in scenarios]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run_one, jobs, chunksize=4))


@dataclass
class _Tally:
    """False rollbacks, premature proposals, misses and delays of one detector on a set."""

    healthy: int = 0
    degraded: int = 0
    false: int = 0
    premature: int = 0
    misses: int = 0
    delays: list[float] = dataclasses.field(default_factory=list)

    def add(self, truth: float | None, proposed: float | None) -> None:
        if truth is None:
            self.healthy += 1
            self.false += proposed is not None
            return
        self.degraded += 1
        if proposed is None:
            self.misses += 1
        elif proposed < truth:
            self.premature += 1
        else:
            self.delays.append(proposed - truth)

    def median(self) -> str:
        return f"{statistics.median(self.delays):.0f} s" if self.delays else "—"

    def p90(self) -> str:
        delays = sorted(self.delays)
        return f"{delays[min(len(delays) - 1, int(0.9 * len(delays)))]:.0f} s" if delays else "—"


def score(outcomes: Sequence[Outcome]) -> list[str]:
    """Markdown table rows, one per detector."""
    tallies = {name: _Tally() for name in DETECTORS}
    for detector, _scenario, truth, proposed in outcomes:
        tallies[detector].add(truth, proposed)
    rows = [
        "| detector | false rollbacks | premature | misses | median delay | p90 delay |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in tallies.items():
        rows.append(
            f"| {name} | {t.false}/{t.healthy} | {t.premature}/{t.degraded} "
            f"| {t.misses}/{t.degraded} | {t.median()} | {t.p90()} |"
        )
    return rows


def shift_of(scenario_name: str) -> str:
    """A degraded scenario's kind and strength, without its traffic: `step-m4.0-r5` → `step ×4`."""
    kind, _, rest = scenario_name.partition("-")
    if kind == "step" and (found := re.match(r"m([0-9.]+)", rest)):
        later = " later" if "after" in rest else ""
        return f"step ×{float(found.group(1)):g}{later}"
    if kind == "latency" and (found := re.match(r"x([0-9.]+)", rest)):
        return f"latency ×{float(found.group(1)):g}"
    if kind == "ramp" and (found := re.match(r"to([0-9.]+)-(\w+?)-", rest)):
        return f"ramp to ×{float(found.group(1)):g} over {found.group(2)}"
    return kind


def traffic_of(scenario_name: str) -> float | None:
    """The requests per second a scenario's name gives (`-r5`), if any."""
    found = re.search(r"-r([0-9.]+)(?:-|$)", scenario_name)
    return float(found.group(1)) if found else None


def by_shift(outcomes: Sequence[Outcome]) -> list[str]:
    """Markdown rows of Rollbot's median delay on degraded scenarios, per shift and traffic.

    A cell is the median delay of that shift at that traffic, with its misses and premature
    proposals when there are any.
    """
    tallies: dict[tuple[str, float | None], _Tally] = {}
    for detector, scenario, truth, proposed in outcomes:
        if detector == "Rollbot detector" and truth is not None:
            key = (shift_of(scenario), traffic_of(scenario))
            tallies.setdefault(key, _Tally()).add(truth, proposed)
    shifts = sorted({shift for shift, _ in tallies})
    rates = sorted({rate for _, rate in tallies if rate is not None})

    def cell(tally: _Tally | None) -> str:
        if tally is None:
            return ""
        faults = [f"{tally.misses} missed" if tally.misses else ""]
        faults.append(f"{tally.premature} premature" if tally.premature else "")
        shown = ", ".join(fault for fault in faults if fault)
        return f"{tally.median()} ({shown})" if shown else tally.median()

    rows = [
        "| shift | " + " | ".join(f"{rate:g} rps" for rate in rates) + " |",
        "|---|" + "---|" * len(rates),
    ]
    for shift in shifts:
        cells = [cell(tallies.get((shift, rate))) for rate in rates]
        rows.append(f"| {shift} | " + " | ".join(cells) + " |")
    return rows


def _replay_row(scenario: Scenario) -> str:
    """One scenario as `rollbot replay` decides it, times in seconds after the deploy."""
    result = replay(scenario)
    deploy = scenario.deploy_at

    def after(moment: float | None) -> str:
        return "—" if moment is None else f"{moment - deploy:.0f}"

    truth, proposed = scenario.degraded_from, result.proposed_at
    delay = "—" if truth is None or proposed is None else f"{proposed - truth:.0f}"
    return (
        f"| {scenario.name} | {scenario.kind} | {after(truth)} | {after(proposed)} "
        f"| {delay} | {result.decision.state.value} |"
    )


def per_scenario(scenarios: Sequence[Scenario], workers: int) -> list[str]:
    """Markdown table rows, one per scenario, of Rollbot's replay."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(_replay_row, scenarios))
    return [
        "| scenario | kind | degraded from (s) | proposed at (s) | delay (s) | last verdict |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def coarsen(document: dict[str, Any], factor: int) -> dict[str, Any]:
    """The same deploy seen at ``factor`` times the step, as a watch with a longer step reads it.

    Counts are summed (a missing sub-step leaves the whole step missing); p99 latency takes
    the largest of the sub-steps', which bounds the longer step's p99 from above.
    """
    if factor == 1:
        return document
    coarse: dict[str, list[float | None]] = {}
    for name, values in document["series"].items():
        merged: list[float | None] = []
        for first in range(0, len(values) - len(values) % factor, factor):
            chunk = values[first : first + factor]
            present = [value for value in chunk if value is not None]
            if name == LATENCY_BOUNDARY:
                merged.append(max(present) if present else None)
            else:
                merged.append(sum(present) if len(present) == factor else None)
        coarse[name] = merged
    return {**document, "series": coarse, "step_seconds": document["step_seconds"] * factor}


def _generated(repeats: int, seed: int, baseline_hours: float, factor: int) -> Iterable[Scenario]:
    mix = itertools.chain(
        recipes(seed=seed, repeats=repeats),
        clustered_blip_recipes(seed=seed + 100_000, repeats=repeats),
    )
    baseline_steps = round(baseline_hours * 3600 / STEP_SECONDS)
    for recipe in mix:
        recipe = dataclasses.replace(recipe, baseline_steps=baseline_steps)
        document = coarsen(generate(recipe), factor)
        yield parse_scenario(document, source=f"generated:{recipe.name}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=Path, default=DEFAULT_SCENARIOS)
    parser.add_argument("--no-shared", action="store_true", help="only the generated mix")
    parser.add_argument("--generated", type=int, default=0, help="repeats of the generated mix")
    parser.add_argument("--seed", type=int, default=7000)
    parser.add_argument(
        "--baseline-hours",
        type=float,
        default=1.0,
        help="safe-version history before each generated deploy (the shared set has 1)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_EVALUATION_INTERVAL_SECONDS,
        help="evaluation interval, s (default: the live watch's)",
    )
    parser.add_argument(
        "--step-factor",
        type=int,
        default=1,
        help="judge every scenario at this many times its step (4: 15 s steps as minutes)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--per-scenario",
        action="store_true",
        help="also print Rollbot's replay of each shared scenario",
    )
    parser.add_argument(
        "--by-shift",
        action="store_true",
        help="also print Rollbot's delays per kind and strength of degradation",
    )
    args = parser.parse_args(argv)
    factor = args.step_factor
    shared = [] if args.no_shared else sorted(args.scenarios.glob("*.json"))
    if not args.no_shared and not shared:
        parser.error(f"no scenario files (*.json) in {args.scenarios}; pass --scenarios DIR")
    if shared:
        scenarios = [
            parse_scenario(coarsen(json.loads(path.read_text()), factor), source=str(path))
            for path in shared
        ]
        coarser = f", judged at {factor}× their step" if factor != 1 else ""
        print(f"### Shared scenarios ({len(scenarios)} files in {args.scenarios.name}/{coarser})\n")
        outcomes = run_all(scenarios, args.interval, args.workers)
        print("\n".join(score(outcomes)))
        if args.by_shift:
            print(f"\n### Rollbot on the degraded files in {args.scenarios.name}/, by shift\n")
            print("\n".join(by_shift(outcomes)))
        if args.per_scenario:
            print(f"\n### Rollbot's replay of each file in {args.scenarios.name}/\n")
            print("\n".join(per_scenario(scenarios, args.workers)))
    if args.generated:
        scenarios = list(_generated(args.generated, args.seed, args.baseline_hours, factor))
        history = f", {args.baseline_hours:g} h of baseline" if args.baseline_hours != 1 else ""
        history += f", judged at {factor}× their step" if factor != 1 else ""
        print(f"\n### Generated scenarios ({len(scenarios)}, seed {args.seed}{history})\n")
        outcomes = run_all(scenarios, args.interval, args.workers)
        print("\n".join(score(outcomes)))
        if args.by_shift:
            print("\n### Rollbot on the generated degraded scenarios, by shift\n")
            print("\n".join(by_shift(outcomes)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
