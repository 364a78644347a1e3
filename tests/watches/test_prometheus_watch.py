"""Watches against a real Prometheus with backfilled deploy history."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.config import parse_config
from bot.config.models import RollbotConfig
from bot.incidents import service as incidents
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest, DeploymentRecord, Incident, TimelineEvent
from bot.watches.evaluate import Evaluation, evaluate_watches
from integrations.metrics.prometheus import PrometheusSource
from tests.support.prometheus import (
    Prometheus,
    ServedVersion,
    prometheus_missing_reason,
    running_prometheus,
)
from tests.support.services import unavailable
from tests.watches.fakes import RecordingNotifier, proposer

pytestmark = pytest.mark.prometheus

NOW = time.time()
DEPLOY = NOW - 40 * 60
ROLLBACK = NOW - 20 * 60
# The history is scraped every 15 s, and increase() needs two scrapes inside a step, so these
# watches widen the default 15 s step.
CONFIG = """
registries: {mlflow: {kind: local}}
deployers: {kserve: {kind: local}}
models:
  steady: &watched
    registry: mlflow
    deployer: kserve
    watch: {metrics: [error_rate, latency_p99_seconds], step: 1m}
  broken: *watched
"""


# Label values PromQL must escape: a backslash, a quote, regex characters, a placeholder.
ODD_NAMES = ("we\\ird", 'q"uote', "a.b+c", "x$step")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    reason = prometheus_missing_reason()
    if reason:
        unavailable(reason)
    served = [
        ServedVersion("steady", "1", DEPLOY - 7200, DEPLOY),
        ServedVersion("steady", "2", DEPLOY, NOW),
        ServedVersion("broken", "1", DEPLOY - 7200, DEPLOY),
        ServedVersion("broken", "2", DEPLOY, NOW, error_rate=0.06),
        ServedVersion("vlabel", "v1", DEPLOY - 7200, DEPLOY),
        ServedVersion("vlabel", "v2", DEPLOY, NOW, error_rate=0.06),
        # Rolled back from 2 to 1 at ROLLBACK: "relapse" stays bad on 1, "recovered" does not.
        *[
            ServedVersion(name, version, start, end, error_rate=rate)
            for name, after in (("relapse", 0.06), ("recovered", 0.01))
            for version, start, end, rate in (
                ("1", DEPLOY - 7200, DEPLOY, 0.01),
                ("2", DEPLOY, ROLLBACK, 0.06),
                ("1", ROLLBACK + 15, NOW, after),
            )
        ],
        *[
            ServedVersion(name, version, start, end, error_rate=rate)
            for name in ODD_NAMES
            for version, start, end, rate in (
                ("1", DEPLOY - 7200, DEPLOY, 0.01),
                ("2", DEPLOY, NOW, 0.06),
            )
        ],
    ]
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), served) as server:
        yield server


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def rows(engine: Engine, model: type[Any]) -> list[Any]:
    with Session(engine) as session:
        return list(session.exec(select(model)).all())


def evaluate(
    prometheus: Prometheus,
    engine: Engine,
    config: RollbotConfig,
    *,
    moment: float = NOW,
    notifier: RecordingNotifier | None = None,
) -> list[Evaluation]:
    """One evaluation cycle at ``moment`` against the real Prometheus."""
    return evaluate_watches(
        engine,
        config=config,
        source=PrometheusSource(prometheus.url),
        proposer=proposer(config),
        notifier=notifier or RecordingNotifier(),
        now=at(moment),
    )


def rolled_back(engine: Engine, model: str) -> int:
    """1 served a day, 2 from DEPLOY until a rollback to 1 at ROLLBACK for an open incident."""
    with session_scope(engine) as session:
        incident, _ = incidents.open_or_join(
            session, model=model, title=f"{model} 2 degraded", actor="rollbot", source="watch"
        )
        incidents.mark_time(session, incident=incident, key="mitigated_at", at=at(ROLLBACK))
        for version, start, end, reason in (
            ("1", DEPLOY - 86400, DEPLOY, "deploy"),
            ("2", DEPLOY, ROLLBACK, "deploy"),
            ("1", ROLLBACK, None, "rollback"),
        ):
            session.add(
                DeploymentRecord(
                    model=model,
                    version=version,
                    started_at=at(start),
                    ended_at=at(end) if end else None,
                    reason=reason,
                    incident_id=incident.id if reason == "rollback" else None,
                )
            )
        assert incident.id is not None
        return incident.id


def test_a_healthy_deploy_stays_quiet_and_a_degraded_one_gets_a_proposal(
    prometheus: Prometheus, engine: Engine
) -> None:
    config = parse_config(CONFIG)
    _deployed(engine, ["steady", "broken"])
    notifier = RecordingNotifier()

    evaluations = evaluate(prometheus, engine, config, notifier=notifier)

    states = {e.model: e.state for e in evaluations}
    assert states == {"steady": "healthy", "broken": "degraded"}
    [incident] = rows(engine, Incident)
    assert incident.model == "broken"
    [request] = rows(engine, ApprovalRequest)
    assert (request.model, request.incident_id) == ("broken", incident.id)
    decisions = {
        e.details["model"]: e for e in rows(engine, TimelineEvent) if e.kind == "detection.decision"
    }
    assert decisions["broken"].incident_id == incident.id
    assert decisions["steady"].incident_id is None
    broken_error = decisions["broken"].details["metrics"][0]
    assert broken_error["metric"] == "error_rate" and broken_error["ratio_to_baseline"] > 3
    assert notifier.kinds() == ["incident_opened", "evidence_posted", "proposal_created"]
    marked = {(r.model, r.version): r.had_incident for r in rows(engine, DeploymentRecord)}
    assert marked == {
        ("steady", "1"): False,
        ("steady", "2"): False,
        ("broken", "1"): False,
        ("broken", "2"): True,  # degraded: never a safe version to roll back to
    }


def _deployed(engine: Engine, models: list[str]) -> None:
    with session_scope(engine) as session:
        for model in models:
            session.add(
                DeploymentRecord(
                    model=model, version="1", started_at=at(DEPLOY - 86400), ended_at=at(DEPLOY)
                )
            )
            session.add(DeploymentRecord(model=model, version="2", started_at=at(DEPLOY)))


def test_model_names_that_need_escaping_are_read(prometheus: Prometheus, engine: Engine) -> None:
    watch = "{metrics: [error_rate], step: 1m, metrics_name: %s}"
    models = "\n".join(
        f"  odd{index}: {{registry: mlflow, deployer: kserve, watch: {watch % json.dumps(name)}}}"
        for index, name in enumerate(ODD_NAMES)
    )
    config = parse_config(
        "registries: {mlflow: {kind: local}}\ndeployers: {kserve: {kind: local}}\n"
        f"models:\n{models}\n"
    )
    _deployed(engine, list(config.models))

    evaluations = evaluate(prometheus, engine, config)

    assert {e.model: e.state for e in evaluations} == {f"odd{i}": "degraded" for i in range(4)}


def test_a_template_prometheus_refuses_costs_only_its_models(
    prometheus: Prometheus, engine: Engine
) -> None:
    config = parse_config(
        CONFIG
        + """
  typo:
    registry: mlflow
    deployer: kserve
    watch:
      step: 1m
      metrics:
        queue: {kind: gauge, query: "max_over_tme(queue_depth{$selector}[$step])", max_value: 5}
"""
    )
    _deployed(engine, ["broken", "typo"])

    evaluations = evaluate(prometheus, engine, config)

    by_model = {e.model: e for e in evaluations}
    assert by_model["broken"].state == "degraded"
    assert by_model["typo"].state == "inconclusive"
    assert by_model["typo"].explanation.startswith("metrics unavailable: ")
    assert "parse error" in by_model["typo"].explanation


def test_after_a_rollback_the_watch_verifies_recovery_or_escalates(
    prometheus: Prometheus, engine: Engine
) -> None:
    config = parse_config(
        "registries: {mlflow: {kind: local}}\ndeployers: {kserve: {kind: local}}\nmodels:\n"
        + "".join(
            f"  {name}: {{registry: mlflow, deployer: kserve,"
            " watch: {metrics: [error_rate], step: 1m}}\n"
            for name in ("relapse", "recovered")
        )
    )
    incident_ids = {model: rolled_back(engine, model) for model in ("relapse", "recovered")}
    notifier = RecordingNotifier()

    evaluations = evaluate(prometheus, engine, config, notifier=notifier)
    again = evaluate(prometheus, engine, config, moment=NOW + 120, notifier=notifier)

    by_model = {e.model: e for e in evaluations}
    assert by_model["relapse"].state == "degraded" and by_model["recovered"].state == "healthy"
    assert {e.model: e.recovery for e in again} == {"relapse": None, "recovered": None}
    assert rows(engine, ApprovalRequest) == []  # no second rollback: a person must look
    with Session(engine) as session:
        relapse = session.get(Incident, incident_ids["relapse"])
        recovered = session.get(Incident, incident_ids["recovered"])
        kinds = {
            (e.incident_id, e.kind)
            for e in session.exec(select(TimelineEvent)).all()
            if e.kind in ("incident.escalated", "incident.verified")
        }
    assert relapse is not None and recovered is not None
    assert (relapse.severity, relapse.verified_at) == ("sev2", None)
    assert recovered.severity == "sev3" and recovered.verified_at == at(NOW)
    assert kinds == {
        (incident_ids["relapse"], "incident.escalated"),
        (incident_ids["recovered"], "incident.verified"),
    }
    assert notifier.kinds().count("incident_updated") == 2


def test_versions_labelled_otherwise_than_the_registry_are_named_in_the_verdict(
    prometheus: Prometheus, engine: Engine
) -> None:
    config = parse_config(
        "registries: {mlflow: {kind: local}}\ndeployers: {kserve: {kind: local}}\nmodels:\n"
        "  vlabel: {registry: mlflow, deployer: kserve, watch: {step: 1m}}\n"
        "  newcomer: {registry: mlflow, deployer: kserve, watch: {step: 1m}}\n"
    )
    _deployed(engine, ["vlabel"])
    with session_scope(engine) as session:
        session.add(DeploymentRecord(model="newcomer", version="7", started_at=at(DEPLOY)))

    evaluations = evaluate(prometheus, engine, config)

    by_model = {e.model: e for e in evaluations}
    assert by_model["vlabel"].state == "inconclusive"
    assert by_model["vlabel"].explanation.startswith(
        "Prometheus has no samples of version 2 or 1 of vlabel but has v1, v2: check the "
        "watch's version_label"
    )
    assert by_model["newcomer"].explanation == (
        "no earlier version of newcomer without an incident to compare 7 with → inconclusive"
    )


def test_escalation_after_a_rollback_waits_for_the_watchs_confirmations(
    prometheus: Prometheus, engine: Engine
) -> None:
    config = parse_config(
        "registries: {mlflow: {kind: local}}\ndeployers: {kserve: {kind: local}}\nmodels:\n"
        "  relapse: {registry: mlflow, deployer: kserve,"
        " watch: {metrics: [error_rate], step: 1m, confirmations: 2}}\n"
    )
    rolled_back(engine, "relapse")
    [first] = evaluate(prometheus, engine, config)
    [second] = evaluate(prometheus, engine, config, moment=NOW + 60)

    assert first.state == second.state == "degraded"
    assert first.recovery is None
    assert second.recovery is not None and second.recovery.kind == "incident.escalated"
