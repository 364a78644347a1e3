"""Old deploys and partial metrics outages: the cycle judges what it can read, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from bot.config import parse_config
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest, DeploymentRecord, Incident, TimelineEvent, WatchState
from integrations.errors import IntegrationTimeout
from tests.watches.fakes import FakePrometheus, RecordingNotifier, Serving
from tests.watches.test_evaluate import CONFIG, NOW, rows, run

AGES = {"old": timedelta(days=30), "new": timedelta(minutes=40)}
CONFIG_TWO = (
    CONFIG.split("models:")[0]
    + "models:\n"
    + "".join(
        f"  {m}: {{registry: mlflow, deployer: kserve, watch: {{metrics: [error_rate]}}}}\n"
        for m in AGES
    )
)


def deploy(engine: Engine, model: str, age: timedelta) -> None:
    with session_scope(engine) as session:
        deployed_at = NOW - age
        session.add(
            DeploymentRecord(
                model=model,
                version="1",
                started_at=deployed_at - timedelta(days=2),
                ended_at=deployed_at,
            )
        )
        session.add(DeploymentRecord(model=model, version="2", started_at=deployed_at))


def servings(model: str, age: timedelta, error_rate: float) -> list[Serving]:
    deployed_at = (NOW - age).timestamp()
    return [
        Serving(model, "1", deployed_at - 7200, deployed_at, rps=20, error_rate=0.01),
        Serving(model, "2", deployed_at, NOW.timestamp(), rps=20, error_rate=error_rate),
    ]


def test_a_model_deployed_30_days_ago_is_judged_over_its_lookback(engine: Engine) -> None:
    config = parse_config(CONFIG)
    deploy(engine, "fraud", AGES["old"])
    # Degraded only in the last half hour: the detector sees it within the lookback.
    deployed_at = (NOW - AGES["old"]).timestamp()
    recent = NOW.timestamp() - 1800
    source = FakePrometheus(  # refuses ranges over 11,000 points, as Prometheus does
        [
            Serving("fraud", "1", deployed_at - 7200, deployed_at, rps=20, error_rate=0.01),
            Serving("fraud", "2", deployed_at, recent, rps=20, error_rate=0.01),
            Serving("fraud", "2", recent, NOW.timestamp(), rps=20, error_rate=0.08),
        ]
    )

    [evaluation] = run(engine, config, source)

    assert evaluation.state == "degraded"
    assert "error rate" in evaluation.explanation
    [request] = rows(engine, ApprovalRequest)
    assert request.to_version == "1"
    assert request.evidence["baseline_mode"] == "before_deploy"
    assert request.evidence["metrics"][0]["baseline_value"] is not None
    lookback_start = (NOW - timedelta(hours=6)).timestamp()
    assert min(start for start, _ in source.ranges) < deployed_at < lookback_start
    assert all(end - start <= 11_000 * 60 for start, end in source.ranges)


def test_a_failing_chunk_leaves_the_other_chunks_judged(engine: Engine) -> None:
    config = parse_config(CONFIG_TWO)
    for model, age in AGES.items():
        deploy(engine, model, age)
    # Deploys 30 days apart land in separate chunks; the old one's queries time out.
    source = FakePrometheus(
        [*servings("old", AGES["old"], 0.01), *servings("new", AGES["new"], 0.08)],
        failing_models=frozenset({"old"}),
    )
    notifier = RecordingNotifier()

    evaluations = {e.model: e for e in run(engine, config, source, notifier=notifier)}

    assert evaluations["new"].state == "degraded"
    assert evaluations["old"].state == "inconclusive" and not evaluations["old"].changed
    assert evaluations["old"].explanation == (
        "metrics unavailable: prometheus query_range x: timed out"
    )
    # Nothing is remembered about the unread model, so the next tick tries it again.
    assert {row.model for row in rows(engine, WatchState)} == {"new"}
    assert all(e.details.get("model") != "old" for e in rows(engine, TimelineEvent))
    [incident] = rows(engine, Incident)
    assert incident.model == "new"
    assert notifier.kinds() == ["incident_opened", "evidence_posted", "proposal_created"]

    source.failing_models = frozenset()
    later = {e.model: e for e in run(engine, config, source, now=NOW + timedelta(seconds=15))}
    assert set(later) == {"old"} and later["old"].state == "healthy"


def test_when_no_chunk_can_be_read_the_cycle_changes_nothing(engine: Engine) -> None:
    config = parse_config(CONFIG_TWO)
    for model, age in AGES.items():
        deploy(engine, model, age)
    source = FakePrometheus(
        [*servings("old", AGES["old"], 0.01), *servings("new", AGES["new"], 0.08)],
        failing_models=frozenset(AGES),
    )

    # Raised for evaluate_once to log, as for an outage; the next tick tries every model.
    with pytest.raises(IntegrationTimeout, match="timed out"):
        run(engine, config, source)
    assert rows(engine, WatchState) == [] and rows(engine, Incident) == []
    assert rows(engine, TimelineEvent) == []
