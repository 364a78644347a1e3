"""``rollbot drill`` as a user runs it: a real process, local integrations, a real database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.store import session_scope
from bot.store.models import DeploymentRecord, RunbookRun
from integrations.deployers.local import LocalDeployer
from integrations.registry.local import LocalRegistry
from tests.support.processes import rollbot_env, run_rollbot

CONFIG = """
version: 1
registries: {local: {kind: local, path: registry.json}}
deployers: {local: {kind: local, path: deployer.json}}
models:
  fraud-detector:
    registry: local
    deployer: local
    target: {name: fraud-detector, initial_version: "4"}
"""
TARGET = {"name": "fraud-detector"}


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """A configuration with a local registry (versions 3 and 4) and deployer serving 4."""
    config = tmp_path / "rollbot.yaml"
    config.write_text(CONFIG)
    registry = LocalRegistry(tmp_path / "registry.json")
    for version in ("3", "4"):
        registry.register_version("fraud-detector", version, source=f"s3://fraud/{version}")
    registry.set_alias("fraud-detector", "production", "4", idempotency_key="seed")
    return rollbot_env(database_url, config)


def test_a_drill_restores_the_model_and_says_so(
    env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    result = run_rollbot(
        [
            "drill",
            "immediate-rollback",
            "--model",
            "fraud-detector",
            "--to",
            "3",
            "--param",
            "verify=false",
        ],
        env,
    )

    assert result.returncode == 0, result.stderr
    assert "drill run #1: fraud-detector 4 → 3 with runbook immediate-rollback" in result.stdout
    assert "2. shift-traffic (deployer.shift_traffic): succeeded" in result.stdout
    assert "run succeeded" in result.stdout
    assert "restored: fraud-detector serves version 3 at 100%" in result.stdout
    state = LocalDeployer(tmp_path / "deployer.json").current_state(TARGET)
    assert state.serving_percent("3") == 100
    alias = LocalRegistry(tmp_path / "registry.json").get_alias("fraud-detector", "production")
    assert alias is not None and alias.version == "3"
    with session_scope(engine) as session:
        run = session.exec(select(RunbookRun)).one()
        # A rehearsal is not a deployment: the serving history stays untouched.
        assert session.exec(select(DeploymentRecord)).all() == []
    assert (run.drill, run.status, run.approval_request_id) == (True, "succeeded", None)


def test_a_drill_whose_check_fails_keeps_the_rollback_and_exits_1_with_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Verification needs metrics and none are configured: the check after the shift fails,
    # and undoing the rollback would put the version rolled away from back on no evidence.
    result = run_rollbot(
        ["drill", "immediate-rollback", "--model", "fraud-detector", "--to", "3"], env
    )

    assert result.returncode == 1
    assert "run failed: verification 'verify' failed after traffic went back to version 3" in (
        result.stdout
    )
    assert "undo " not in result.stdout  # no compensation step ran
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        "rollbot: drill failed: the run failed: verification 'verify' failed after traffic "
        "went back to version 3: "
    )
    assert line.endswith("; the rollback is kept, not undone")
    state = LocalDeployer(tmp_path / "deployer.json").current_state(TARGET)
    assert state.serving_percent("3") == 100


def test_a_drill_of_an_unknown_model_changes_nothing(
    env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    result = run_rollbot(["drill", "immediate-rollback", "--model", "nope", "--to", "3"], env)

    assert result.returncode == 1
    assert result.stderr.strip() == ("rollbot: unknown model 'nope' (known: fraud-detector)")
    assert not (tmp_path / "deployer.json").exists()
    with session_scope(engine) as session:
        assert session.exec(select(RunbookRun)).all() == []


def test_a_malformed_parameter_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "rollbot.yaml").write_text(CONFIG)
    env = rollbot_env(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "rollbot.yaml")

    result = run_rollbot(
        ["drill", "immediate-rollback", "--model", "fraud-detector", "--param", "verify"], env
    )

    assert result.returncode == 2
    assert "expected KEY=VALUE, got 'verify'" in result.stderr
