"""Scenario files: validation errors, replay as a live watch, and the shared set's scores."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from bot.detection.detector import detect
from bot.detection.evidence import DetectionState
from bot.detection.scenario import (
    DEFAULT_EVALUATION_INTERVAL_SECONDS,
    ScenarioError,
    load_scenario,
    parse_scenario,
    replay,
    replay_files,
)
from bot.detection.synthetic import Recipe, clustered_blip_recipes, generate

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "scenarios"


def _document(**changes: Any) -> dict[str, Any]:
    document = generate(Recipe("step-m10-r5", "step", 5, seed=42, error_multiplier=10.0))
    document.update(changes)
    return document


def _write(tmp_path: Path, document: Any, name: str = "scenario.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_the_watch_looks_at_every_fifteen_second_step_by_default() -> None:
    result = replay(parse_scenario(generate(Recipe("healthy", "healthy", 5, seed=44))))
    assert DEFAULT_EVALUATION_INTERVAL_SECONDS == 15
    assert result.proposed_at is None
    assert result.evaluations == 960


def test_a_strong_step_is_proposed_after_the_sustain_time_and_not_before(tmp_path: Path) -> None:
    result = replay(load_scenario(_write(tmp_path, _document())))
    scenario = parse_scenario(_document())
    assert result.proposed_at is not None
    assert scenario.deploy_at + scenario.min_sustain_seconds < result.proposed_at
    assert result.proposed_at <= scenario.deploy_at + 300
    assert result.decision.state.value == "degraded"


def test_a_strong_step_long_after_deploy_is_proposed_within_five_minutes() -> None:
    recipe = Recipe(
        "step-m10-r50-after1h", "step", 50, seed=45, error_multiplier=10, change_after_seconds=3600
    )
    scenario = parse_scenario(generate(recipe))
    result = replay(scenario)
    assert scenario.degraded_from is not None and result.proposed_at is not None
    assert scenario.degraded_from + scenario.min_sustain_seconds < result.proposed_at
    assert result.proposed_at < scenario.degraded_from + 300


def test_more_generated_history_keeps_the_candidate_and_the_hour_before_the_deploy() -> None:
    recipe = Recipe("diurnal-step", "step", 5, seed=51, error_multiplier=2.0, diurnal_amplitude=0.6)
    hour = generate(recipe)["series"]
    six_hours = generate(dataclasses.replace(recipe, baseline_steps=6 * 240))["series"]
    for column, values in hour.items():
        assert six_hours[column][-len(values) :] == values, column
        assert len(six_hours[column]) == len(values) + 5 * 240


def test_a_weak_step_at_high_traffic_is_degraded_though_noise_makes_some_parts_look_healthy() -> (
    None
):
    # Twice the error rate against a ×1.5 boundary at 50 requests a second: with the
    # overdispersion of real error counts, a third of its minutes look healthy on their own.
    recipe = Recipe("step-m2-r50", "step", 50, seed=50, error_multiplier=2.0)
    scenario = parse_scenario(generate(recipe))
    decision = detect(
        baseline=scenario.baseline(),
        candidate=scenario.candidate(),
        rules=scenario.rules(),
        now=scenario.deploy_at + 7200,
        min_sustain_seconds=scenario.min_sustain_seconds,
    )
    assert decision.state == DetectionState.DEGRADED
    assert "runs evenly through it" in decision.explain()


@pytest.mark.parametrize("recipe", list(clustered_blip_recipes(seed=46)), ids=lambda r: r.name)
def test_clustered_blips_with_healthy_gaps_propose_nothing(recipe: Recipe) -> None:
    scenario = parse_scenario(generate(recipe))
    assert scenario.degraded_from is None
    assert replay(scenario).proposed_at is None


def test_replay_files_yields_one_json_object_per_file(tmp_path: Path) -> None:
    healthy = generate(Recipe("healthy", "healthy", 50, seed=43))
    paths = [_write(tmp_path, _document(), "a.json"), _write(tmp_path, healthy, "b.json")]
    lines = [json.dumps(item) for item in replay_files(paths)]
    objects = [json.loads(line) for line in lines]
    assert [o["name"] for o in objects] == ["step-m10-r5-s42", "healthy-s43"]
    assert objects[0]["proposed_at"] is not None and isinstance(objects[0]["proposed_at"], int)
    assert objects[1]["proposed_at"] is None
    assert objects[1]["state"] in {"healthy", "inconclusive", "suspect"}
    assert objects[1]["explanation"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("step_seconds"), "step_seconds"),
        (lambda d: d.update(boundaries={}), "boundaries"),
        (
            lambda d: d["boundaries"]["error_rate"].update(max_ratio=2),
            "boundaries.error_rate.max_ratio",
        ),
        (lambda d: d["series"].pop("errors"), "series.errors"),
        (lambda d: d["series"]["requests"].__setitem__(3, "many"), "series.requests[3]"),
        (lambda d: d["series"]["errors"].pop(), "series"),
        (lambda d: d.update(deploy_at=d["start"] + 7), "deploy_at"),
        (lambda d: d.update(name=5), "name"),
        (lambda d: d.update(start=float("nan")), "start"),
        (lambda d: d.update(min_sustain_seconds=float("inf")), "min_sustain_seconds"),
        (
            lambda d: d["boundaries"]["error_rate"].update(max_ratio_to_baseline=float("nan")),
            "boundaries.error_rate.max_ratio_to_baseline",
        ),
        (lambda d: d.update(truth={"degraded_from": "soon"}), "truth.degraded_from"),
        (lambda d: d.update(truth=[1]), "truth"),
    ],
)
def test_a_malformed_scenario_names_the_file_and_the_field(
    tmp_path: Path, mutate: Any, field: str
) -> None:
    document = copy.deepcopy(_document())
    mutate(document)
    path = _write(tmp_path, document, "broken.json")
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert str(path) in str(raised.value)
    assert f"'{field}'" in str(raised.value)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "name": "x",\n  oops\n}')
    with pytest.raises(ScenarioError, match=r"bad\.json: line 3"):
        load_scenario(path)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared scenarios not present")
def test_the_shared_scenarios_have_no_false_premature_or_missed_rollback() -> None:
    problems = []
    files = sorted(SHARED.glob("*.json"))
    assert files
    for path in files:
        scenario = load_scenario(path)
        proposed = replay(scenario).proposed_at
        truth = scenario.degraded_from
        if truth is None and proposed is not None:
            problems.append(f"{scenario.name}: false rollback at {proposed}")
        elif truth is not None and proposed is None:
            problems.append(f"{scenario.name}: missed")
        elif truth is not None and proposed is not None and proposed < truth:
            problems.append(f"{scenario.name}: premature by {truth - proposed:.0f}s")
    assert problems == []
