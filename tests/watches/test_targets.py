"""Which version a watch judges, and against what: after a deploy and after a rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from bot.config import parse_config
from bot.detection.evidence import DetectionState
from bot.detection.watch_state import WatchPolicy, WatchState
from bot.incidents import service as incidents
from bot.safe_versions import mark_incident
from bot.store import session_scope
from bot.store.models import DeploymentRecord
from bot.watches.targets import watch_targets

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CONFIG = parse_config(
    """
registries: {mlflow: {kind: local}}
deployers: {kserve: {kind: local}}
models:
  fraud: {registry: mlflow, deployer: kserve, watch: {}}
"""
)


def served(
    engine: Engine, *history: tuple[str, float, float | None, str], resolved: bool = False
) -> int:
    """(version, from hour, to hour or None, reason); rollbacks belong to one incident."""
    with session_scope(engine) as session:
        incident, _ = incidents.open_or_join(
            session, model="fraud", title="fraud degraded", actor="rollbot", source="watch"
        )
        assert incident.id is not None
        for version, start, end, reason in history:
            session.add(
                DeploymentRecord(
                    model="fraud",
                    version=version,
                    started_at=T0 + timedelta(hours=start),
                    ended_at=T0 + timedelta(hours=end) if end is not None else None,
                    reason=reason,
                    incident_id=incident.id if reason == "rollback" else None,
                )
            )
        if resolved:
            incidents.resolve(session, incident=incident, actor="UALICE", source="slack")
        return incident.id


def test_a_deploy_is_judged_against_the_version_before_it(engine: Engine) -> None:
    served(engine, ("4", 0, 10, "deploy"), ("5", 10, None, "deploy"))

    with session_scope(engine) as session:
        [target] = watch_targets(session, config=CONFIG)

    assert (target.candidate_version, target.baseline_version) == ("5", "4")
    assert target.baseline_until is None and not target.checks_recovery


def test_a_restored_version_is_judged_against_itself_before_the_bad_deploy(
    engine: Engine,
) -> None:
    served(engine, ("4", 0, 10, "deploy"), ("5", 10, 11, "deploy"), ("4", 11, None, "rollback"))

    with session_scope(engine) as session:
        [target] = watch_targets(session, config=CONFIG)

    assert (target.candidate_version, target.baseline_version) == ("4", "4")
    assert target.baseline_until == T0 + timedelta(hours=10)
    assert target.deployed_at == T0 + timedelta(hours=11)
    assert target.checks_recovery


def test_once_the_rollbacks_incident_is_resolved_the_watch_proposes_again(
    engine: Engine,
) -> None:
    served(
        engine,
        ("4", 0, 10, "deploy"),
        ("5", 10, 11, "deploy"),
        ("4", 11, None, "rollback"),
        resolved=True,
    )

    with session_scope(engine) as session:
        [target] = watch_targets(session, config=CONFIG)

    assert (target.candidate_version, target.baseline_version) == ("4", "4")
    assert not target.checks_recovery  # a new degradation is proposed for as usual


def test_the_restored_versions_own_last_hour_is_its_baseline_however_long_ago(
    engine: Engine,
) -> None:
    served(
        engine,
        ("1", 0, 10, "deploy"),
        ("3", 10, 40, "deploy"),
        ("2", 40, 41, "deploy"),
        ("1", 41, None, "rollback"),
    )

    with session_scope(engine) as session:
        [target] = watch_targets(session, config=CONFIG)

    assert target.baseline_until == T0 + timedelta(hours=10) and target.checks_recovery


def test_a_rollback_to_a_version_without_history_keeps_the_usual_baseline(
    engine: Engine,
) -> None:
    served(engine, ("3", 0, 10, "deploy"), ("5", 10, 11, "deploy"), ("4", 11, None, "rollback"))
    with session_scope(engine) as session:
        mark_incident(session, model="fraud", version="5")

    with session_scope(engine) as session:
        [target] = watch_targets(session, config=CONFIG)

    assert (target.candidate_version, target.baseline_version) == ("4", "3")
    assert not target.checks_recovery


def test_a_watch_checking_a_rollback_never_proposes_another() -> None:
    policy = WatchPolicy(cooldown_seconds=0, proposes=False)

    step = WatchState().observe(DetectionState.DEGRADED, now=100.0, policy=policy)

    assert not step.propose and step.state.last_proposal_at is None
    assert step.reason == "degraded after the rollback: escalate instead"
