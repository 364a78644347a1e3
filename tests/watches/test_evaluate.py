"""The evaluation job on both databases: verdicts stored, incidents opened, proposals made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.config import parse_config
from bot.config.models import RollbotConfig
from bot.store.db import session_scope
from bot.store.models import (
    ApprovalRequest,
    DeploymentRecord,
    Incident,
    TimelineEvent,
    WatchState,
)
from bot.watches.evaluate import evaluate_once, evaluate_watches
from tests.watches.fakes import FakePrometheus, RecordingNotifier, Serving, proposer

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DEPLOY = NOW - timedelta(minutes=40)

CONFIG = """
registries: {mlflow: {kind: local}}
deployers: {kserve: {kind: local}}
models:
  fraud:
    registry: mlflow
    deployer: kserve
    watch:
      metrics: [error_rate]
"""


@pytest.fixture
def config() -> RollbotConfig:
    return parse_config(CONFIG)


@pytest.fixture
def deployed(engine: Engine) -> Engine:
    with session_scope(engine) as session:
        session.add(
            DeploymentRecord(
                model="fraud",
                version="1",
                started_at=DEPLOY - timedelta(days=2),
                ended_at=DEPLOY,
            )
        )
        session.add(DeploymentRecord(model="fraud", version="2", started_at=DEPLOY))
    return engine


def prometheus(candidate_error_rate: float) -> FakePrometheus:
    deploy = DEPLOY.timestamp()
    return FakePrometheus(
        [
            Serving("fraud", "1", deploy - 7200, deploy, rps=20, error_rate=0.01),
            Serving(
                "fraud",
                "2",
                deploy,
                NOW.timestamp() + 3600,
                rps=20,
                error_rate=candidate_error_rate,
            ),
        ]
    )


def rows(engine: Engine, model: type[Any]) -> list[Any]:
    with Session(engine) as session:
        return list(session.exec(select(model)).all())


def decisions(engine: Engine) -> list[TimelineEvent]:
    with Session(engine) as session:
        query = select(TimelineEvent).where(TimelineEvent.kind == "detection.decision")
        return list(session.exec(query.order_by(col(TimelineEvent.id))).all())


def run(engine: Engine, config: RollbotConfig, source: FakePrometheus, **kwargs: Any) -> Any:
    notifier = kwargs.pop("notifier", RecordingNotifier())
    return evaluate_watches(
        engine,
        config=config,
        source=source,
        proposer=kwargs.pop("proposer", proposer(config)),
        notifier=notifier,
        now=kwargs.pop("now", NOW),
    )


def test_a_healthy_deploy_is_remembered_and_proposes_nothing(
    deployed: Engine, config: RollbotConfig
) -> None:
    notifier = RecordingNotifier()
    [evaluation] = run(deployed, config, prometheus(0.01), notifier=notifier)

    assert evaluation.state == "healthy"
    assert rows(deployed, Incident) == [] and rows(deployed, ApprovalRequest) == []
    assert notifier.posts == []
    [state] = rows(deployed, WatchState)
    assert state.last_decision["state"] == "healthy"
    assert state.state["candidate_version"] == "2"
    [event] = decisions(deployed)
    assert event.incident_id is None and event.details["baseline_version"] == "1"

    # Same verdict a minute later: remembered, but no new timeline event.
    run(deployed, config, prometheus(0.01), now=NOW + timedelta(minutes=1))
    assert len(decisions(deployed)) == 1


def test_a_degraded_deploy_opens_an_incident_and_proposes_the_rollback(
    deployed: Engine, config: RollbotConfig
) -> None:
    notifier = RecordingNotifier()
    [evaluation] = run(deployed, config, prometheus(0.08), notifier=notifier)

    assert evaluation.state == "degraded"
    [incident] = rows(deployed, Incident)
    assert incident.model == "fraud" and incident.detected_at == NOW
    assert incident.degraded_at is not None and DEPLOY <= incident.degraded_at < NOW
    [request] = rows(deployed, ApprovalRequest)
    assert (request.incident_id, request.to_version, request.requested_by) == (
        incident.id,
        "1",
        "rollbot",
    )
    assert (
        request.evidence["state"] == "degraded" and "error rate" in request.evidence["explanation"]
    )
    [event] = decisions(deployed)
    assert event.incident_id == incident.id
    assert event.details["metrics"][0]["ratio_to_baseline"] > 1.5
    assert notifier.kinds() == ["incident_opened", "evidence_posted", "proposal_created"]
    assert "degraded" in str(notifier.posts[1][1]["summary"])


def test_the_cooldown_stops_a_second_proposal(deployed: Engine, config: RollbotConfig) -> None:
    run(deployed, config, prometheus(0.08))
    [again] = run(deployed, config, prometheus(0.08), now=NOW + timedelta(minutes=1))

    assert again.state == "degraded" and again.detection is None
    assert len(rows(deployed, ApprovalRequest)) == 1
    assert len(rows(deployed, Incident)) == 1


def test_without_a_safe_version_the_incident_says_so_and_nothing_is_proposed(
    deployed: Engine, config: RollbotConfig
) -> None:
    notifier = RecordingNotifier()
    run(deployed, config, prometheus(0.08), notifier=notifier, proposer=proposer(config, None))

    assert rows(deployed, ApprovalRequest) == []
    [incident] = rows(deployed, Incident)
    kinds = [e.kind for e in rows(deployed, TimelineEvent) if e.incident_id == incident.id]
    assert "detection.no_proposal" in kinds
    assert "No rollback proposed: no safe version of fraud" in str(notifier.posts[1][1]["summary"])
    assert "proposal_created" not in notifier.kinds()


def test_metrics_source_down_changes_nothing(deployed: Engine, config: RollbotConfig) -> None:
    source = prometheus(0.08)
    source.down = True

    result = evaluate_once(
        deployed,
        config=config,
        source=source,
        proposer=proposer(config),
        notifier=RecordingNotifier(),
    )

    assert list(result) == []
    assert rows(deployed, WatchState) == [] and rows(deployed, Incident) == []
    assert rows(deployed, TimelineEvent) == []


def test_a_first_deploy_has_nothing_to_compare_with(engine: Engine, config: RollbotConfig) -> None:
    with session_scope(engine) as session:
        session.add(DeploymentRecord(model="fraud", version="1", started_at=DEPLOY))

    [evaluation] = run(engine, config, prometheus(0.5))

    assert evaluation.state == "inconclusive"
    assert rows(engine, Incident) == []


def test_a_watch_is_not_evaluated_again_before_its_interval(
    deployed: Engine, config: RollbotConfig
) -> None:
    run(deployed, config, prometheus(0.01))
    assert run(deployed, config, prometheus(0.01), now=NOW + timedelta(seconds=10)) == []


def test_after_a_rollback_the_restored_version_is_not_judged_against_the_bad_one(
    deployed: Engine, config: RollbotConfig
) -> None:
    run(deployed, config, prometheus(0.08))
    later = NOW + timedelta(minutes=5)
    with session_scope(deployed) as session:
        bad = session.exec(select(DeploymentRecord).where(DeploymentRecord.version == "2")).one()
        bad.ended_at, bad.had_incident = later, True
        session.add(
            DeploymentRecord(model="fraud", version="1", started_at=later, reason="rollback")
        )

    [evaluation] = run(deployed, config, prometheus(0.08), now=later + timedelta(minutes=10))

    # Version 1 had no earlier safe version besides itself: nothing to compare, no proposal.
    assert evaluation.state == "inconclusive"
    assert len(rows(deployed, ApprovalRequest)) == 1


def test_without_a_new_complete_step_a_watch_is_not_judged_again(
    deployed: Engine, config: RollbotConfig
) -> None:
    slow = parse_config(
        CONFIG.replace("metrics: [error_rate]", "{metrics: [error_rate], step: 1m}")
    )
    run(deployed, slow, prometheus(0.01))
    source = prometheus(0.01)

    assert run(deployed, slow, source, now=NOW + timedelta(seconds=30)) == []
    assert source.queries == []
    assert len(run(deployed, slow, source, now=NOW + timedelta(seconds=60))) == 1


def test_many_models_are_stored_in_chunks_with_every_verdict(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.watches.evaluate.WRITE_CHUNK", 2)
    names = [f"m{i}" for i in range(5)]
    models = "".join(f"  {n}: {{registry: mlflow, deployer: kserve, watch: {{}}}}\n" for n in names)
    config = parse_config(CONFIG.split("models:")[0] + "models:\n" + models)
    deploy = DEPLOY.timestamp()
    servings = []
    with session_scope(engine) as session:
        for i, name in enumerate(names):
            session.add(
                DeploymentRecord(
                    model=name, version="1", started_at=DEPLOY - timedelta(days=2), ended_at=DEPLOY
                )
            )
            session.add(DeploymentRecord(model=name, version="2", started_at=DEPLOY))
            bad = 0.08 if i == 3 else 0.01
            servings += [
                Serving(name, "1", deploy - 7200, deploy, rps=20),
                Serving(name, "2", deploy, NOW.timestamp(), rps=20, error_rate=bad),
            ]

    evaluations = run(engine, config, FakePrometheus(servings))

    assert {e.model: e.state for e in evaluations} == {
        "m0": "healthy",
        "m1": "healthy",
        "m2": "healthy",
        "m3": "degraded",
        "m4": "healthy",
    }
    assert {row.model for row in rows(engine, WatchState)} == set(names)
    assert len(decisions(engine)) == 5
    [request] = rows(engine, ApprovalRequest)
    assert request.model == "m3"
