"""Each action against the local registry and deployer: execute, then reconcile from live state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.errors import NotFoundError
from bot.runs.actions import ACTIONS, VerificationFailed
from bot.runs.contracts import StepContext
from integrations.deployers.local import LocalDeployer
from integrations.errors import IntegrationError, IntegrationTimeout, NotFound
from integrations.metrics.base import Series
from integrations.registry.local import LocalRegistry
from tests.runbooks.conftest import Clock, FakeMetrics

TARGET = {"name": "fraud-detector", "initial_version": "5"}


def _run(
    context: StepContext, action: str, idempotency_key: str = "run-1:step-1", **params: object
) -> dict[str, Any]:
    implementation = ACTIONS[action]
    parsed = implementation.params_model.model_validate(params)
    return implementation.execute(context, parsed, idempotency_key=idempotency_key)


def _reconcile(context: StepContext, action: str, **params: object) -> dict[str, Any] | None:
    implementation = ACTIONS[action]
    return implementation.reconcile(context, implementation.params_model.model_validate(params))


def test_every_action_declares_a_strict_params_model() -> None:
    for name, action in ACTIONS.items():
        assert action.name == name
        assert action.description
        assert action.params_model.model_config.get("extra") == "forbid"


def test_shift_traffic_sends_the_registry_source_and_the_idempotency_key(
    context: StepContext, deployer: LocalDeployer
) -> None:
    assert _reconcile(context, "deployer.shift_traffic", version="4", percent=25) is None
    output = _run(
        context, "deployer.shift_traffic", idempotency_key="run-7:shift-25", version="4", percent=25
    )
    assert output["state"]["canary_version"] == "4"
    assert output["state"]["canary_percent"] == 25
    (applied,) = deployer.applied_operations(TARGET)
    assert (applied.idempotency_key, applied.source, applied.percent) == (
        "run-7:shift-25",
        "s3://fraud/4",
        25,
    )
    again = _reconcile(context, "deployer.shift_traffic", version="4", percent=25)
    assert again is not None and again["percent"] == 25
    assert _reconcile(context, "deployer.shift_traffic", version="4", percent=50) is None


def test_shift_traffic_to_an_unknown_version_changes_nothing(
    context: StepContext, deployer: LocalDeployer
) -> None:
    with pytest.raises(NotFound) as raised:
        _run(context, "deployer.shift_traffic", version="99", percent=100)
    assert not raised.value.retryable
    assert "fraud-detector version 99" in str(raised.value)
    assert deployer.applied_operations(TARGET) == []
    assert deployer.current_state(TARGET).version == "5"


def test_an_unknown_component_is_a_clear_error(context: StepContext) -> None:
    with pytest.raises(NotFoundError, match=r"unknown component 'nope' of model 'fraud-detector'"):
        _run(context, "deployer.shift_traffic", version="4", component="nope")


def test_a_component_step_acts_on_the_component(
    context: StepContext, deployer: LocalDeployer
) -> None:
    _run(context, "deployer.shift_traffic", version="12", component="fraud-features")
    features = {"name": "fraud-features", "initial_version": "13"}
    assert deployer.current_state(features).version == "12"
    assert deployer.current_state(TARGET).version == "5"


def test_set_alias_moves_the_alias_and_reconciles_from_the_registry(
    context: StepContext, registry: LocalRegistry
) -> None:
    assert _reconcile(context, "registry.set_alias", alias="production", version="4") is None
    output = _run(context, "registry.set_alias", alias="production", version="4")
    assert output["previous"] == "5"
    alias = registry.get_alias("fraud-detector", "production")
    assert alias is not None and alias.version == "4"
    assert _reconcile(context, "registry.set_alias", alias="production", version="4") is not None


def test_tag_version_sets_the_tag_and_reconciles(
    context: StepContext, registry: LocalRegistry
) -> None:
    params = {"version": "5", "key": "rollbot.rolled_back", "value": "true"}
    assert _reconcile(context, "registry.tag_version", **params) is None
    _run(context, "registry.tag_version", **params)
    assert registry.get_version("fraud-detector", "5").tags["rollbot.rolled_back"] == "true"
    assert _reconcile(context, "registry.tag_version", **params) is not None


def test_wait_ready_returns_once_the_version_serves(context: StepContext) -> None:
    output = _run(context, "deployer.wait_ready", version="5")
    assert output["polls"] == 1
    assert _reconcile(context, "deployer.wait_ready", version="5") is not None


def test_wait_ready_times_out_retryably_with_the_target_named(
    context: StepContext, clock: Clock
) -> None:
    with pytest.raises(IntegrationTimeout) as raised:
        _run(context, "deployer.wait_ready", version="4", timeout="20s", interval="5s")
    assert raised.value.retryable
    assert str(raised.value) == "local wait_ready local fraud-detector: not ready after 20s"
    assert sum(clock.slept) == 20
    assert _reconcile(context, "deployer.wait_ready", version="4") is None


def test_wait_sleeps_for_the_duration(context: StepContext, clock: Clock) -> None:
    assert _run(context, "wait", duration="1m30s") == {"waited": "1m30s"}
    assert clock.slept == [90]
    assert _reconcile(context, "wait", duration="1m30s") is None


def test_notify_records_a_note(context: StepContext) -> None:
    assert _run(context, "notify", message="Rolling back") == {"note": "Rolling back"}
    assert context.notes == ["Rolling back"]


QUERY = "error_rate"


def test_verify_passes_when_every_sample_is_within_limits(
    context: StepContext, clock: Clock
) -> None:
    context.metrics = FakeMetrics({QUERY: [0.01, 0.02, 0.015]})
    output = _run(context, "verify", query=QUERY, max_value=0.05, hold="1m", interval="30s")
    assert output["values"] == [0.01, 0.02, 0.015]
    assert output["max_seen"] == 0.02
    assert clock.slept == [30, 30]


def test_verify_fails_with_the_numbers(context: StepContext) -> None:
    context.metrics = FakeMetrics({QUERY: [0.01, 0.083]})
    with pytest.raises(VerificationFailed) as raised:
        _run(context, "verify", query=QUERY, max_value=0.05, hold="1m", interval="30s")
    assert str(raised.value) == (
        "verify: 0.083 is above max_value 0.05 (sample 2 of 3, query 'error_rate')"
    )


def test_verify_against_a_baseline_query(context: StepContext) -> None:
    context.metrics = FakeMetrics({QUERY: [0.09], "baseline": [0.03]})
    with pytest.raises(VerificationFailed) as raised:
        _run(
            context,
            "verify",
            query=QUERY,
            baseline_query="baseline",
            max_ratio_to_baseline=1.5,
        )
    assert str(raised.value) == (
        "verify: 0.09 is 3× the baseline 0.03, above max_ratio_to_baseline 1.5 "
        "(sample 1 of 1, query 'error_rate')"
    )


def test_verify_within_the_baseline_ratio_passes(context: StepContext) -> None:
    context.metrics = FakeMetrics({QUERY: [0.04]})
    output = _run(context, "verify", query=QUERY, baseline_value=0.03, max_ratio_to_baseline=1.5)
    assert output["baseline"] == 0.03


def test_verify_without_any_data_fails_rather_than_passing(context: StepContext) -> None:
    context.metrics = FakeMetrics({QUERY: [None]})
    with pytest.raises(VerificationFailed, match="no data for 'error_rate' in 3 sample"):
        _run(context, "verify", query=QUERY, max_value=0.05, hold="1m", interval="30s")


def test_verify_without_a_metrics_source_says_how_to_configure_one(context: StepContext) -> None:
    with pytest.raises(VerificationFailed, match="no metrics source configured"):
        _run(context, "verify", query=QUERY, max_value=0.05)


def test_verify_passes_metrics_errors_through_for_the_engine_to_retry(
    context: StepContext,
) -> None:
    class Down(FakeMetrics):
        def query(self, promql: str, *, at: datetime | None = None) -> list[Series]:
            raise IntegrationTimeout(
                "timed out", integration="prometheus", operation="query", target=promql
            )

    context.metrics = Down({})
    with pytest.raises(IntegrationError) as raised:
        _run(context, "verify", query=QUERY, max_value=0.05)
    assert raised.value.retryable


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"query": QUERY}, "set max_value and/or max_ratio_to_baseline"),
        ({"query": QUERY, "max_ratio_to_baseline": 2}, "needs exactly one of baseline_query"),
        ({"query": QUERY, "max_value": 1, "interval": "0s"}, "interval must be positive"),
    ],
)
def test_verify_params_that_cannot_work_are_refused(
    params: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ACTIONS["verify"].params_model.model_validate(params)


def test_hold_and_interval_decide_the_number_of_samples() -> None:
    model = ACTIONS["verify"].params_model
    params = model.model_validate({"query": QUERY, "max_value": 1, "hold": "5m"})
    assert params.samples() == 11  # type: ignore[attr-defined]
    assert params.interval == timedelta(seconds=30)  # type: ignore[attr-defined]


def test_a_registry_that_is_down_fails_retryably_and_changes_nothing(
    context: StepContext, deployer: LocalDeployer
) -> None:
    import dataclasses

    import httpx

    from integrations.registry.mlflow import MLflowRegistry

    down = MLflowRegistry("http://127.0.0.1:9", client=httpx.Client(timeout=2))
    main = context.components["fraud-detector"]
    context.components = {"fraud-detector": dataclasses.replace(main, registry=down)}
    with pytest.raises(IntegrationError) as raised:
        _run(context, "deployer.shift_traffic", version="4")
    assert raised.value.retryable
    assert deployer.applied_operations(TARGET) == []
