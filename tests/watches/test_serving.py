"""Noticing deploys: the deployer's view becomes the history watches judge, on both databases."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.config import parse_config
from bot.config.settings import Settings
from bot.errors import ConfigError
from bot.serving import Served, ServingPoller
from bot.store import session_scope
from bot.store.models import DeploymentRecord, TimelineEvent
from bot.watches.targets import watch_targets
from bot.wiring import served_deployments
from integrations.deployers.base import DeploymentState, DeployTarget
from integrations.errors import IntegrationUnavailable
from integrations.registry.local import LocalRegistry
from tests.runs.fakes import MODEL, new_drill, plan, step

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONFIG = parse_config(
    f"""
version: 1
registries: {{local: {{kind: local, path: r.json}}}}
deployers: {{local: {{kind: local, path: d.json}}}}
models:
  {MODEL}:
    registry: local
    deployer: local
    target: {{name: fraud}}
    watch:
      metrics: [error_rate]
"""
)


@dataclass
class FakeDeployer:
    """Answers what the test says serves; raises when told the deployer is down."""

    states: dict[str, DeploymentState] = field(default_factory=dict)
    down: str | None = None
    kind: str = "fake"
    supports_traffic_split: bool = True

    def serve(
        self, name: str, version: str | None, canary: str | None = None, percent: int = 0
    ) -> None:
        self.states[name] = DeploymentState(
            target=name, version=version, canary_version=canary, canary_percent=percent
        )

    def validate_target(self, target: DeployTarget) -> list[str]:
        return []

    def current_state(self, target: DeployTarget) -> DeploymentState:
        if self.down is not None:
            raise IntegrationUnavailable(
                self.down, integration="fake", operation="current_state", target=target["name"]
            )
        return self.states[target["name"]]

    def shift_traffic(self, target: DeployTarget, **_: object) -> DeploymentState:
        raise AssertionError("observing never shifts traffic")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture
def deployer() -> FakeDeployer:
    return FakeDeployer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def poller(engine: Engine, deployer: FakeDeployer, clock: Clock) -> ServingPoller:
    served = [Served(MODEL, "model", deployer, {"name": "fraud"})]
    return ServingPoller(engine, served, clock=clock)


def history(engine: Engine) -> list[tuple[str, datetime, datetime | None, str]]:
    with session_scope(engine) as session:
        records = session.exec(
            select(DeploymentRecord).order_by(col(DeploymentRecord.started_at))
        ).all()
        return [(r.version, r.started_at, r.ended_at, r.reason) for r in records]


def test_a_deploy_seen_at_the_deployer_becomes_the_watched_version(
    engine: Engine, deployer: FakeDeployer, clock: Clock
) -> None:
    polls = poller(engine, deployer, clock)
    deployer.serve("fraud", "4")
    polls.poll()
    clock.advance(60)
    polls.poll()  # nothing new
    deployer.serve("fraud", "5")
    clock.advance(1)
    made = polls.poll()

    assert [r.version for r in made] == ["5"]
    deployed = T0 + timedelta(minutes=61)
    assert history(engine) == [
        ("4", T0, deployed, "first seen at the deployer"),
        ("5", deployed, None, "seen at the deployer"),
    ]
    with session_scope(engine) as session:
        (target,) = watch_targets(session, config=CONFIG)
        summaries = session.exec(
            select(TimelineEvent.summary).where(TimelineEvent.kind == "deployment.recorded")
        ).all()
    assert (target.candidate_version, target.baseline_version) == ("5", "4")
    assert target.deployed_at == deployed
    assert summaries[-1] == f"{MODEL} now serves version 5 (was 4): seen at the deployer"


def test_a_canary_is_the_new_version_and_its_promotion_changes_nothing(
    engine: Engine, deployer: FakeDeployer, clock: Clock
) -> None:
    polls = poller(engine, deployer, clock)
    deployer.serve("fraud", "4")
    polls.poll()
    deployer.serve("fraud", "4", canary="5", percent=10)
    clock.advance(5)
    polls.poll()
    deployer.serve("fraud", "5")  # promoted
    clock.advance(5)
    polls.poll()
    deployer.serve("fraud", "4", canary="5", percent=0)  # a canary of nothing is no deploy
    clock.advance(5)
    polls.poll()

    assert [(version, ended is None) for version, _, ended, _ in history(engine)] == [
        ("4", False),
        ("5", False),
        ("4", True),
    ]


def test_a_deployer_that_cannot_name_the_version_records_nothing(
    engine: Engine, deployer: FakeDeployer, clock: Clock
) -> None:
    deployer.serve("fraud", None)

    assert poller(engine, deployer, clock).poll() == []
    assert history(engine) == []


def test_a_running_rollback_is_not_a_deploy(
    engine: Engine, deployer: FakeDeployer, clock: Clock
) -> None:
    polls = poller(engine, deployer, clock)
    deployer.serve("fraud", "5")
    polls.poll()
    new_drill(engine, plan(step("alias")))
    deployer.serve("fraud", "5", canary="4", percent=25)  # the rollback's first stage

    assert polls.poll() == []
    assert [version for version, *_ in history(engine)] == ["5"]


def test_a_reading_older_than_the_newest_record_is_dropped(
    engine: Engine, deployer: FakeDeployer, clock: Clock
) -> None:
    deployer.serve("fraud", "5")
    polls = poller(engine, deployer, clock)
    with session_scope(engine) as session:  # a rollback recorded 4 after the poll asked
        session.add(
            DeploymentRecord(model=MODEL, version="4", started_at=T0 + timedelta(seconds=1))
        )

    assert polls.poll() == []
    assert [version for version, *_ in history(engine)] == ["4"]


def test_an_unreachable_deployer_is_logged_once_and_costs_only_its_models(
    engine: Engine, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    down, up = FakeDeployer(down="connection refused"), FakeDeployer()
    up.serve("other", "7")
    polls = ServingPoller(
        engine,
        [
            Served(MODEL, "model", down, {"name": "fraud"}),
            Served("other-model", "model", up, {"name": "other"}),
        ],
        clock=clock,
    )

    with caplog.at_level(logging.INFO, logger="bot.serving"):
        first, second = polls.poll(), polls.poll()
        down.down = None
        down.serve("fraud", "5")
        third = polls.poll()

    assert [r.model for r in first] == ["other-model"] and second == []
    assert [r.version for r in third] == ["5"]
    messages = [r.getMessage() for r in caplog.records]
    refused = f"cannot read what {MODEL} serves: fake current_state fraud: connection refused"
    assert messages.count(refused) == 1
    assert f"reading what {MODEL} serves again" in messages


def test_every_model_and_component_is_polled_through_deployers_built_once(
    tmp_path: object,
) -> None:
    config = parse_config(
        """
version: 1
registries: {local: {kind: local, path: r.json}}
deployers:
  local: {kind: local, path: d.json}
  hook: {kind: webhook, url: "http://127.0.0.1:9/deploy", secret_env: HOOK_SECRET}
models:
  a: {registry: local, deployer: local, target: {name: a},
      components: [{name: features, deployer: local, target: {name: a-features}}]}
  b: {registry: local, deployer: local, target: {name: b}}
  c: {registry: local, deployer: hook, target: {name: c}}
"""
    )
    settings = Settings(rollbot_config=f"{tmp_path}/rollbot.yaml")

    served, problems = served_deployments(config, settings, environ={})

    assert [(s.model, s.component, s.target) for s in served] == [
        ("a", "model", {"name": "a"}),
        ("a", "features", {"name": "a-features"}),
        ("b", "model", {"name": "b"}),
    ]
    assert len({id(s.deployer) for s in served}) == 1
    assert len(problems) == 1 and problems[0].startswith("deployer 'hook': ")
    assert "HOOK_SECRET" in problems[0]


def test_a_poll_interval_under_a_second_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"serving\.poll_interval.*at least 1s"):
        parse_config("version: 1\nserving: {poll_interval: 0s}\n")


def test_a_version_the_deployer_cannot_name_is_found_in_the_registry_by_its_source(
    engine: Engine, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = LocalRegistry(tmp_path / "registry.json")
    for version in ("4", "5"):
        registry.register_version(MODEL, version, source=f"s3://models/fraud/{version}")
    deployer = FakeDeployer()
    polls = ServingPoller(
        engine,
        [Served(MODEL, "model", deployer, {"name": "fraud"}, registry, MODEL)],
        clock=clock,
    )
    # A pipeline changed the storage URI itself: KServe's deployer cannot name the version.
    deployer.states["fraud"] = DeploymentState(
        target="fraud", version=None, source="s3://models/fraud/5"
    )

    made = polls.poll()
    deployer.states["fraud"] = DeploymentState(
        target="fraud", version=None, source="s3://models/fraud/unregistered"
    )
    with caplog.at_level(logging.WARNING, logger="bot.serving"):
        later = polls.poll() + polls.poll()

    assert [r.version for r in made] == ["5"] and later == []
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert messages == [
        f"cannot tell which version of {MODEL} serves: the deployer names none and no "
        "registry version has the source s3://models/fraud/unregistered"
    ]
