"""Prometheus rule fires → Alertmanager → POST /alerts/alertmanager → incident and proposal.

Everything is real except Slack: Prometheus over backfilled history (a healthy and a degraded
deploy), Alertmanager with a webhook receiver, the Rollbot web app served by uvicorn, the
production proposal path (runbooks, a local registry and deployer) and the Slack notifier
talking to the fake Slack Web API over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.config import parse_config
from bot.config.models import RollbotConfig
from bot.slack.notifier import SlackNotifier
from bot.store.db import session_scope
from bot.store.models import Alert, ApprovalRequest, DeploymentRecord, Incident
from bot.web.app import create_app
from integrations.deployers.local import LocalDeployer
from integrations.registry.local import LocalRegistry
from tests.alerts.server import serving
from tests.support.alertmanager import Alertmanager, running_alertmanager
from tests.support.fake_slack import FakeSlack, running_fake_slack
from tests.support.processes import wait_until
from tests.support.prometheus import (
    ERROR_RATE_ALERT_RULES,
    Prometheus,
    ServedVersion,
    prometheus_missing_reason,
    running_prometheus,
)
from tests.support.services import unavailable

pytestmark = pytest.mark.prometheus

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
MODELS = ("broken", "steady")
WAIT_SECONDS = 45


@dataclass(frozen=True)
class Stack:
    """The running pieces one test talks to."""

    engine: Engine
    slack: FakeSlack
    prometheus: Prometheus
    alertmanager: Alertmanager


def rollbot_config(state: Path) -> RollbotConfig:
    """Both models watched and served by file-backed integrations; alerts may propose."""
    model = (
        "{registry: local, deployer: local, target: {name: %s}, watch: {},"
        " runbook_parameters: {verify: false}}"
    )
    models = "\n".join(f"  {name}: {model % name}" for name in MODELS)
    return parse_config(
        f"""
runbooks_dir: {RUNBOOKS}
registries: {{local: {{kind: local, path: {state / "registry.json"}}}}}
deployers: {{local: {{kind: local, path: {state / "deployments.json"}}}}}
alertmanager: {{propose_rollback: true}}
models:
{models}
"""
    )


def seed_history(engine: Engine, state: Path, deployed: datetime) -> None:
    """Version 1 served for a day without trouble; version 2 serves since ``deployed``."""
    registry = LocalRegistry(state / "registry.json")
    deployer = LocalDeployer(state / "deployments.json")
    with session_scope(engine) as session:
        for name in MODELS:
            for version in ("1", "2"):
                registry.register_version(name, version, source=f"s3://{name}/{version}")
            deployer.shift_traffic(
                {"name": name}, version="2", source=None, percent=100, idempotency_key=name
            )
            session.add(
                DeploymentRecord(
                    model=name,
                    version="1",
                    started_at=deployed - timedelta(days=1),
                    ended_at=deployed,
                )
            )
            session.add(DeploymentRecord(model=name, version="2", started_at=deployed))


ALERTS_TOKEN = "am-token-1"


@pytest.fixture
def stack(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    reason = prometheus_missing_reason()
    if reason:
        unavailable(reason)
    # Alertmanager must send the token the endpoint asks for, as operators configure it.
    monkeypatch.setenv("ROLLBOT_ALERTMANAGER_TOKEN", ALERTS_TOKEN)
    # Timestamps from when the test runs, so the rule's window still covers the history.
    now = time.time()
    deployed = now - 30 * 60
    served = [
        ServedVersion("steady", "1", deployed - 7200, deployed),
        ServedVersion("steady", "2", deployed, now),
        ServedVersion("broken", "1", deployed - 7200, deployed),
        ServedVersion("broken", "2", deployed, now, error_rate=0.12),
    ]
    config = rollbot_config(tmp_path)
    seed_history(engine, tmp_path, datetime.fromtimestamp(deployed, UTC))
    with running_fake_slack() as slack:
        app = create_app(engine)
        app.state.config = config
        client = WebClient(token="xoxb-test", base_url=slack.api_url)
        app.state.notifier = SlackNotifier(client, engine=engine, config=config)
        with (
            serving(app) as web,
            running_alertmanager(
                tmp_path, webhook_url=f"{web}/alerts/alertmanager", bearer_token=ALERTS_TOKEN
            ) as am,
            running_prometheus(
                tmp_path, served, rules=ERROR_RATE_ALERT_RULES, alertmanager_url=am.url
            ) as prom,
        ):
            yield Stack(engine, slack, prom, am)


def rows(engine: Engine, model: type[Any]) -> list[Any]:
    with Session(engine) as session:
        return list(session.exec(select(model)).all())


def test_a_firing_rule_opens_the_incident_and_posts_the_proposal(stack: Stack) -> None:
    def card_posted() -> bool:
        return any("Rollback #" in str(c.args.get("text")) for c in _posts(stack.slack))

    assert wait_until(lambda: _prometheus_knows_alertmanager(stack), timeout=15, interval=0.5)
    arrived = wait_until(card_posted, timeout=WAIT_SECONDS, interval=0.5)

    assert arrived, _diagnosis(stack)
    [incident] = rows(stack.engine, Incident)
    assert (incident.model, incident.title) == ("broken", "ModelErrorRateHigh on broken")
    assert (incident.from_version, incident.to_version) == ("2", "1")
    [alert] = rows(stack.engine, Alert)
    assert (alert.model, alert.status, alert.incident_id) == ("broken", "firing", incident.id)
    assert alert.labels["version"] == "2" and "error rate" in alert.annotations["summary"]
    [request] = rows(stack.engine, ApprovalRequest)
    assert (request.model, request.from_version, request.to_version) == ("broken", "2", "1")
    assert (request.incident_id, request.requested_by, request.status) == (
        incident.id,
        "alertmanager",
        "pending",
    )
    assert request.evidence["alerts"][0]["fingerprint"] == alert.fingerprint
    [card] = [c for c in _posts(stack.slack) if "Rollback #" in str(c.args.get("text"))]
    assert card.args["channel"] == incident.channel_id
    assert "`broken` 2 → 1" in str(card.args["text"])
    assert "immediate-rollback" in str(card.args["blocks"])


def _prometheus_knows_alertmanager(stack: Stack) -> bool:
    answer = httpx.get(f"{stack.prometheus.url}/api/v1/alertmanagers", timeout=5).json()
    return bool(answer["data"]["activeAlertmanagers"])


def _posts(slack: FakeSlack) -> list[Any]:
    return slack.calls_to("chat.postMessage")


def _diagnosis(stack: Stack) -> str:
    """What each hop saw, so a timeout says where the alert got stuck."""
    held = [a["labels"] for a in stack.alertmanager.alerts()]
    return (
        f"no proposal card within {WAIT_SECONDS}s; alertmanager holds {held}; "
        f"incidents {[(i.model, i.status) for i in rows(stack.engine, Incident)]}; "
        f"slack calls {[c.method for c in stack.slack.calls]}; "
        f"alertmanager log tail: {stack.alertmanager.log_path.read_text()[-800:]}"
    )
