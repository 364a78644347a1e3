"""LocalDeployer: file-backed state for demos and drills."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from integrations.deployers.base import Deployer, DeploymentState
from integrations.deployers.local import AppliedOperation, LocalDeployer
from integrations.errors import InvalidRequest

TARGET = {"name": "fraud", "initial_version": "6"}
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def deployer(tmp_path: Path) -> LocalDeployer:
    return LocalDeployer(tmp_path / "deploy" / "state.json", clock=lambda: NOW)


def shift(deployer: LocalDeployer, version: str, percent: int, key: str) -> DeploymentState:
    return deployer.shift_traffic(
        TARGET, version=version, source=f"s3://m/{version}", percent=percent, idempotency_key=key
    )


def test_is_a_deployer(deployer: LocalDeployer) -> None:
    assert isinstance(deployer, Deployer)
    assert deployer.current_state(TARGET) == DeploymentState(target="local fraud", version="6")


def test_shift_25_50_100(deployer: LocalDeployer) -> None:
    assert shift(deployer, "7", 25, "a").serving_percent("7") == 25
    assert shift(deployer, "7", 50, "b") == DeploymentState(
        target="local fraud", version="6", canary_version="7", canary_percent=50
    )
    assert shift(deployer, "7", 100, "c") == DeploymentState(target="local fraud", version="7")
    assert [op.percent for op in deployer.applied_operations(TARGET)] == [25, 50, 100]


def test_repeated_key_is_a_no_op(deployer: LocalDeployer) -> None:
    shift(deployer, "7", 25, "a")

    state = shift(deployer, "7", 25, "a")

    assert state.serving_percent("7") == 25
    assert deployer.applied_operations(TARGET) == [AppliedOperation("a", "7", "s3://m/7", 25, NOW)]


def test_state_survives_a_new_instance(deployer: LocalDeployer, tmp_path: Path) -> None:
    shift(deployer, "7", 100, "a")

    reopened = LocalDeployer(tmp_path / "deploy" / "state.json")

    assert reopened.current_state(TARGET).version == "7"
    assert len(reopened.applied_operations(TARGET)) == 1
    assert {p.name for p in (tmp_path / "deploy").iterdir()} == {"state.json", "state.json.lock"}


def test_partial_shift_back_to_stable_shrinks_the_canary(deployer: LocalDeployer) -> None:
    shift(deployer, "7", 25, "a")

    state = shift(deployer, "6", 90, "b")

    assert (state.version, state.canary_version, state.canary_percent) == ("6", "7", 10)
    assert shift(deployer, "6", 100, "c") == DeploymentState(target="local fraud", version="6")


def test_concurrent_shifts_lose_no_record(deployer: LocalDeployer) -> None:
    keys = [f"key-{n}" for n in range(40)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: shift(deployer, "7", 100, key), keys))

    assert sorted(op.idempotency_key for op in deployer.applied_operations(TARGET)) == sorted(keys)


def test_targets_are_independent(deployer: LocalDeployer) -> None:
    shift(deployer, "7", 100, "a")

    other = {"name": "churn"}
    assert deployer.current_state(other).version is None
    assert deployer.applied_operations(other) == []


def test_corrupt_state_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json", encoding="utf-8")

    with pytest.raises(InvalidRequest, match=r"^local current_state local fraud: state file .*"):
        LocalDeployer(path).current_state(TARGET)
    assert path.read_text(encoding="utf-8") == "{not json"


def test_invalid_target_and_percent(deployer: LocalDeployer, tmp_path: Path) -> None:
    assert deployer.validate_target({}) == ["target is missing 'name'"]
    assert deployer.validate_target({"name": 5}) == ["target 'name' must be text, got 5"]
    with pytest.raises(InvalidRequest, match="target is missing 'name'"):
        deployer.current_state({})
    with pytest.raises(InvalidRequest, match="percent must be between 0 and 100, got -1"):
        shift(deployer, "7", -1, "a")
    assert not (tmp_path / "deploy" / "state.json").exists()


def test_file_is_readable_json(deployer: LocalDeployer, tmp_path: Path) -> None:
    shift(deployer, "7", 25, "a")

    data = json.loads((tmp_path / "deploy" / "state.json").read_text(encoding="utf-8"))

    assert data["targets"]["fraud"]["canary_version"] == "7"
    assert data["targets"]["fraud"]["operations"][0]["applied_at"] == NOW.isoformat()
