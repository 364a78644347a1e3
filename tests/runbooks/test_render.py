"""Rendering a runbook into a plan: pure, exact, and hashed stably."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config.models import ModelConfig
from bot.errors import RollbotError
from bot.runbooks import ComponentVersions, load_runbooks, render_plan
from bot.runs.actions import ACTIONS
from bot.runs.contracts import Plan
from tests.runbooks.conftest import SHIPPED

RUNBOOKS = load_runbooks(SHIPPED)
MODEL = ModelConfig(registry="local", deployer="local", target={"name": "fraud"})
BUNDLE = ModelConfig.model_validate(
    {
        "registry": "local",
        "deployer": "local",
        "components": [
            {"name": "prep", "deployer": "local", "depends_on": ["features"]},
            {"name": "features", "deployer": "local"},
        ],
    }
)


def _plan(runbook: str = "immediate-rollback", **overrides: Any) -> Plan:
    arguments: dict[str, Any] = {
        "model": "fraud",
        "model_config": MODEL,
        "from_version": "5",
        "to_version": "4",
    }
    arguments.update(overrides)
    return render_plan(RUNBOOKS[runbook], **arguments)


def test_an_immediate_rollback_shifts_everything_then_moves_the_alias() -> None:
    plan = _plan()
    assert (plan.model, plan.runbook, plan.from_version, plan.to_version) == (
        "fraud",
        "immediate-rollback",
        "5",
        "4",
    )
    assert [step.name for step in plan.steps] == [
        "announce",
        "shift-traffic",
        "wait-ready",
        "move-alias",
        "tag-rolled-back",
        "verify",
    ]
    shift = plan.steps[1]
    assert shift.params == {"version": "4", "percent": 100}
    assert shift.timeout_seconds == 120
    assert shift.retry.max_attempts == 5
    assert shift.compensation is not None
    assert shift.compensation.params == {"version": "5", "percent": 100}
    verify = plan.steps[-1].params
    assert verify["max_value"] == 0.05
    assert verify["hold"] == "5m"
    assert 'version="4"' in verify["query"]


def test_every_rendered_step_validates_against_its_action() -> None:
    for name in RUNBOOKS:
        config = BUNDLE if name == "bundle-rollback" else MODEL
        versions = {"prep": ComponentVersions("3", "2"), "features": ComponentVersions("9", "8")}
        plan = _plan(name, model_config=config, component_versions=versions)
        for step in plan.steps:
            ACTIONS[step.action].params_model.model_validate(step.params)


def test_a_staged_rollback_goes_25_50_100_with_a_bake_and_a_check_after_each() -> None:
    plan = _plan("staged-rollback", parameters={"bake": "90s"})
    shifts = [s.params["percent"] for s in plan.steps if s.action == "deployer.shift_traffic"]
    assert shifts == [25, 50, 100]
    assert [s.params["duration"] for s in plan.steps if s.action == "wait"] == ["1m30s", "1m30s"]
    assert [s.name for s in plan.steps if s.action == "verify"] == [
        "verify-25",
        "verify-50",
        "verify-100",
    ]


def test_a_false_when_leaves_the_step_out() -> None:
    plan = _plan(parameters={"verify": False})
    assert "verify" not in [step.name for step in plan.steps]


def test_a_bundle_rolls_components_back_in_dependency_order_before_the_model() -> None:
    versions = {"prep": ComponentVersions("3", "2"), "features": ComponentVersions("9", "8")}
    plan = _plan("bundle-rollback", model_config=BUNDLE, component_versions=versions)
    shifts = [
        (s.name, s.params.get("component"), s.params["version"])
        for s in plan.steps
        if s.action == "deployer.shift_traffic"
    ]
    assert shifts == [
        ("rollback-features", "features", "8"),
        ("rollback-prep", "prep", "2"),
        ("rollback-model", None, "4"),
    ]
    assert plan.steps[1].compensation is not None
    assert plan.steps[1].compensation.params["version"] == "9"


def test_the_same_inputs_give_the_same_hash() -> None:
    assert _plan().hash() == _plan().hash()
    assert _plan().canonical_json() == _plan().canonical_json()


@pytest.mark.parametrize(
    "change",
    [
        {"to_version": "3"},
        {"from_version": "6"},
        {"model": "fraud-2"},
        {"parameters": {"max_error_rate": 0.06}},
        {"parameters": {"verify_hold": "6m"}},
        {"parameters": {"alias": "prod"}},
        {"runbook": "staged-rollback"},
    ],
)
def test_any_change_gives_a_different_hash(change: dict[str, Any]) -> None:
    assert _plan(**change).hash() != _plan().hash()


def test_a_parameter_given_as_text_is_typed_and_hashes_the_same() -> None:
    assert _plan(parameters={"max_error_rate": "0.05"}).hash() == _plan().hash()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"bogus": 1}, "runbook 'immediate-rollback' has no parameter 'bogus' (known: alias, "),
        ({"verify": "maybe"}, "parameter 'verify': expected a boolean, got 'maybe'"),
        ({"verify_hold": "later"}, "parameter 'verify_hold': expected a duration"),
    ],
)
def test_bad_parameters_are_refused(parameters: dict[str, object], message: str) -> None:
    with pytest.raises(RollbotError, match=message.replace("(", r"\(")):
        _plan(parameters=parameters)


def test_a_plan_that_cannot_render_names_file_line_and_field() -> None:
    with pytest.raises(RollbotError) as raised:
        _plan(from_version=None)
    assert str(raised.value).endswith(
        "immediate-rollback.yaml:50: steps[1].compensation.params.version: "
        "Input should be a valid string (model 'fraud')"
    )


def test_a_check_held_longer_than_its_step_may_run_is_refused() -> None:
    with pytest.raises(RollbotError) as raised:
        _plan(parameters={"verify_hold": "20m"})  # the verify step may run 15 minutes
    assert str(raised.value).endswith(
        "immediate-rollback.yaml:91: steps[5].timeout: timeout 15m is not longer than the "
        "step's hold 20m: it could never finish (model 'fraud')"
    )
