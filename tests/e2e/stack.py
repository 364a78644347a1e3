"""The running pieces of a whole incident: Prometheus, Alertmanager, the web app, fake Slack.

Everything is real except Slack itself: Prometheus serves a backfilled history in which
version 2 of ``broken`` runs as a 50% canary beside version 1 and fails 12% of its
requests; a Prometheus rule fires, Alertmanager posts to the running web app, and people
act through signed Slack requests to the same app.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot.config import parse_config
from bot.config.models import RollbotConfig
from bot.config.settings import Settings
from bot.proposals import default_tools, propose_with
from bot.safe_versions import MODEL_COMPONENT
from bot.serving import Served, ServingPoller
from bot.slack.app import create_slack_app
from bot.slack.ids import ActionId
from bot.slack.notifier import SlackNotifier
from bot.slack.surface import Surface
from bot.slack.usergroups import UsergroupDirectory
from bot.web.app import create_app
from integrations.deployers.local import LocalDeployer
from integrations.registry.local import LocalRegistry
from tests.alerts.server import serving
from tests.support.alertmanager import Alertmanager, running_alertmanager
from tests.support.fake_slack import FakeSlack, running_fake_slack
from tests.support.prometheus import (
    ERROR_RATE_ALERT_RULES,
    Prometheus,
    ServedVersion,
    prometheus_missing_reason,
    running_prometheus,
)
from tests.support.services import unavailable
from tests.support.slack_signing import SIGNING_SECRET, block_action, signed_headers, slash_command

MODEL = "broken"
APPROVERS = "SAPPROVERS"
RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
CANARY_RPS = 5.0
_names = itertools.count(1)


@dataclass(frozen=True)
class Stack:
    """Handles a test drives the incident through."""

    engine: Engine
    config: RollbotConfig
    settings: Settings
    slack: FakeSlack
    prometheus: Prometheus
    alertmanager: Alertmanager
    web_url: str
    deployed_at: datetime
    history_end: datetime

    def command(self, text: str, *, user: str, channel: str) -> str:
        """Run `/rollbot TEXT` as ``user`` in ``channel``; the reply."""
        name = f"cmd{next(_names)}"
        body, kind = slash_command(
            text, user=user, channel=channel, response_url=self.slack.response_url(name)
        )
        self._send(body, kind)
        return self.slack.reply_to(name, timeout=20)

    def click(self, request_id: int, *, user: str, channel: str) -> str:
        """Click Approve on the proposal card; the ephemeral reply."""
        name = f"click{next(_names)}"
        body, kind = block_action(
            action_id=ActionId.APPROVE,
            value=str(request_id),
            user=user,
            channel=channel,
            response_url=self.slack.response_url(name),
        )
        self._send(body, kind)
        return self.slack.reply_to(name, timeout=20)

    def _send(self, body: str, content_type: str) -> None:
        headers = signed_headers(body, content_type=content_type)
        response = httpx.post(f"{self.web_url}/slack/events", content=body, headers=headers)
        assert response.status_code == 200, response.text


def rollbot_config(state: Path) -> RollbotConfig:
    """One watched model on file-backed integrations, rolled back in stages after two clicks."""
    return parse_config(
        f"""
runbooks_dir: {RUNBOOKS}
registries: {{local: {{kind: local, path: {state / "registry.json"}}}}}
deployers: {{local: {{kind: local, path: {state / "deployments.json"}}}}}
alertmanager: {{propose_rollback: true}}
approval_policies:
  default: {{approvals: 2, approver_groups: [{APPROVERS}], expires_after: 30m}}
models:
  {MODEL}:
    registry: local
    deployer: local
    target: {{name: {MODEL}}}
    runbook: staged-rollback
    # Seconds instead of minutes; the approval re-renders the plan with these too.
    runbook_parameters: {{bake: 1s, verify_hold: 0s, verify_interval: 1s}}
    watch: {{}}
"""
    )


def seed_deploys(engine: Engine, state: Path, deployed: datetime) -> None:
    """Version 1 has served for a day; version 2 is a 50% canary since ``deployed``.

    Rollbot learns both as it does live: its serving poll reads them at the deployer.
    """
    registry = LocalRegistry(state / "registry.json")
    deployer = LocalDeployer(state / "deployments.json")
    for version in ("1", "2"):
        registry.register_version(MODEL, version, source=f"s3://{MODEL}/{version}")
    target = {"name": MODEL}
    served = [Served(MODEL, MODEL_COMPONENT, deployer, target)]
    deployer.shift_traffic(target, version="1", source=None, percent=100, idempotency_key="v1")
    ServingPoller(engine, served, clock=lambda: deployed - timedelta(days=1)).poll()
    deployer.shift_traffic(target, version="2", source=None, percent=50, idempotency_key="v2")
    ServingPoller(engine, served, clock=lambda: deployed).poll()


@contextmanager
def running_stack(engine: Engine, workdir: Path, *, canary_minutes: float) -> Iterator[Stack]:
    """Start everything; the canary's history ends when Prometheus starts serving it."""
    reason = prometheus_missing_reason()
    if reason:
        unavailable(reason)
    now = time.time()
    deployed = now - canary_minutes * 60
    served = [
        ServedVersion(MODEL, "1", deployed - 7200, now, rps=CANARY_RPS),
        ServedVersion(MODEL, "2", deployed, now, rps=CANARY_RPS, error_rate=0.12),
    ]
    config = rollbot_config(workdir)
    deployed_at = datetime.fromtimestamp(deployed, UTC)
    seed_deploys(engine, workdir, deployed_at)
    with running_fake_slack() as slack:
        slack.state.usergroups[APPROVERS] = ["UALICE", "UBOB", "UCAROL"]
        client = WebClient(token="xoxb-test", base_url=slack.api_url)
        settings = Settings(rollbot_config=str(workdir / "rollbot.yaml"))
        directory = UsergroupDirectory(client)
        notifier = SlackNotifier(client, engine=engine, config=config, directory=directory)
        tools = default_tools(config, settings)
        surface = Surface(
            engine=engine,
            config=config,
            notifier=notifier,
            members_of=directory,
            tools_factory=lambda: tools,
        )
        bolt = create_slack_app(surface, client=client, signing_secret=SIGNING_SECRET)
        app = create_app(engine, slack_app=bolt)
        _wire_alerts(app.state, config, notifier, tools)
        with (
            closing(bolt),
            serving(app) as web,
            running_alertmanager(workdir, webhook_url=f"{web}/alerts/alertmanager") as am,
            running_prometheus(
                workdir, served, rules=ERROR_RATE_ALERT_RULES, alertmanager_url=am.url
            ) as prom,
        ):
            yield Stack(
                engine=engine,
                config=config,
                settings=settings.model_copy(update={"prometheus_url": prom.url}),
                slack=slack,
                prometheus=prom,
                alertmanager=am,
                web_url=web,
                deployed_at=deployed_at,
                history_end=datetime.fromtimestamp(now, UTC),
            )


def _wire_alerts(state: Any, config: RollbotConfig, notifier: Any, tools: Any) -> None:
    # What the app builds from ROLLBOT_CONFIG in production, handed over directly.
    state.config = config
    state.notifier = notifier
    state.rollback_proposer = functools.partial(propose_with, tools=tools)
