"""A running Rollbot web app with its Slack surface, talking to a fake Slack over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config.models import ApprovalPolicy, IntegrationConfig, ModelConfig, RollbotConfig
from bot.errors import RollbotError
from bot.proposals import RollbackTools
from bot.runs.contracts import Plan, PlanStep
from bot.runs.service import create_run
from bot.slack.app import create_slack_app
from bot.slack.notifier import SlackNotifier
from bot.slack.surface import Surface
from bot.slack.usergroups import UsergroupDirectory
from bot.web.app import create_app
from tests.support.fake_slack import FakeSlack, running_fake_slack
from tests.support.postgres import free_port
from tests.support.processes import wait_for_http
from tests.support.slack_signing import SIGNING_SECRET, signed_headers

MODEL = "fraud-detector"
APPROVERS = "SAPPROVERS"


def rollbot_config(*, approvals: int = 2, allow_self: bool = False) -> RollbotConfig:
    """Two approvals from the approver group (or the listed lead), requester excluded."""
    local = IntegrationConfig(kind="local", path="unused.json")
    return RollbotConfig(
        registries={"local": local},
        deployers={"local": local},
        approval_policies={
            "default": ApprovalPolicy(
                approvals=approvals,
                approver_groups=[APPROVERS],
                approvers=["ULEAD"],
                allow_self_approval=allow_self,
                expires_after=timedelta(minutes=30),
            )
        },
        models={MODEL: ModelConfig(registry="local", deployer="local")},
    )


@dataclass
class World:
    """What the fake planner sees: change it to make the plan render differently."""

    serving: str = "5"
    safe: str | None = "4"
    registry_down: bool = False
    plans: list[tuple[str, str | None]] = field(default_factory=list)

    def components_for(self, model: str) -> dict[str, Any]:
        """No registry here: what `models` sees when the registry is unreachable."""
        from integrations.errors import IntegrationUnavailable

        raise IntegrationUnavailable(
            "connection refused", integration="local", operation="list_versions", target=model
        )

    def plan_rollback(
        self,
        *,
        config: RollbotConfig,
        runbooks: Mapping[str, Any],
        session: Session,
        components_for: Any,
        model: str,
        to_version: str | None = None,
        runbook: str | None = None,
    ) -> Plan:
        self.plans.append((model, to_version))
        if self.registry_down:
            from integrations.errors import IntegrationUnavailable

            raise IntegrationUnavailable(
                "connection refused", integration="mlflow", operation="list_versions", target=model
            )
        if self.safe is None:
            raise RollbotError(f"no safe version of {model} to roll back to: 4 had an incident")
        target = to_version or self.safe
        return Plan(
            model=model,
            runbook=runbook or "immediate-rollback",
            from_version=self.serving,
            to_version=target,
            steps=[
                PlanStep(name="announce", action="notify", params={"message": f"to {target}"}),
                PlanStep(name="settle", action="wait", params={"duration": "1s"}),
            ],
        )


@dataclass
class Rollbot:
    """The app under test and the handles tests poke at."""

    base_url: str
    engine: Engine
    fake: FakeSlack
    world: World
    surface: Surface

    def send(self, body: str, content_type: str, **headers: str) -> httpx.Response:
        """POST a correctly signed body to /slack/events."""
        signed = signed_headers(body, content_type=content_type)
        signed.update(headers)
        return httpx.post(f"{self.base_url}/slack/events", content=body, headers=signed)


def build_surface(
    engine: Engine, client: WebClient, world: World, config: RollbotConfig
) -> Surface:
    """The Slack surface over the fake planner and the real run service."""
    directory = UsergroupDirectory(client)
    tools = RollbackTools(
        config=config,
        runbooks={"immediate-rollback": object()},
        components_for=world.components_for,
        planner=world.plan_rollback,
        start_run=create_run,
    )
    return Surface(
        engine=engine,
        config=config,
        notifier=SlackNotifier(client, engine=engine, config=config, directory=directory),
        members_of=directory,
        tools_factory=lambda: tools,
    )


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with running_fake_slack() as fake:
        fake.state.usergroups[APPROVERS] = ["UALICE", "UBOB", "UCAROL"]
        yield fake


@pytest.fixture
def rollbot(engine: Engine, fake_slack: FakeSlack) -> Iterator[Rollbot]:
    world = World()
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    surface = build_surface(engine, client, world, rollbot_config())
    bolt = create_slack_app(surface, client=client, signing_secret=SIGNING_SECRET)
    try:
        with serving(create_app(engine, slack_app=bolt)) as base_url:
            yield Rollbot(base_url, engine, fake_slack, world, surface)
    finally:
        bolt.close()


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        """Leave signals to pytest."""


def serving(app: Any) -> Any:
    """Serve ``app`` with uvicorn on a free port in a thread, as a context manager."""
    from contextlib import contextmanager

    @contextmanager
    def run() -> Iterator[str]:
        port = free_port()
        server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", timeout=20)
        try:
            yield base
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    return run()
