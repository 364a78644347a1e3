"""Shared pieces for runbook tests: a local registry and deployer, a fake metrics source."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.runs.contracts import Component, StepContext
from integrations.deployers.local import LocalDeployer
from integrations.metrics.base import Series
from integrations.registry.local import LocalRegistry

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "runbooks"


class FakeMetrics:
    """Answers each query with the next value of a script (None = no data)."""

    def __init__(self, values: dict[str, list[float | None]]) -> None:
        self.values = {query: list(script) for query, script in values.items()}
        self.asked: list[str] = []

    def query(self, promql: str, *, at: datetime | None = None) -> list[Series]:
        self.asked.append(promql)
        script = self.values[promql]
        value = script.pop(0) if len(script) > 1 else script[0]
        return [] if value is None else [Series(labels={}, samples=[(0.0, value)])]

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]:
        raise NotImplementedError


class Clock:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def registry(tmp_path: Path) -> LocalRegistry:
    """A local registry with fraud-detector versions 1–5 (4 validated) and a feature pipeline."""
    registry = LocalRegistry(tmp_path / "registry.json")
    for version in "12345":
        tags = {"validated": "true"} if version in "24" else {}
        registry.register_version(
            "fraud-detector", version, source=f"s3://fraud/{version}", tags=tags
        )
    for version in ("12", "13"):
        registry.register_version("fraud-features", version, source=f"s3://features/{version}")
    registry.set_alias("fraud-detector", "production", "5", idempotency_key="seed")
    return registry


@pytest.fixture
def deployer(tmp_path: Path) -> LocalDeployer:
    """A local deployer on which nothing has been shifted yet."""
    return LocalDeployer(tmp_path / "deployments.json")


@pytest.fixture
def clock() -> Clock:
    """A manual clock."""
    return Clock()


@pytest.fixture
def components(registry: LocalRegistry, deployer: LocalDeployer) -> dict[str, Component]:
    """fraud-features then fraud-detector, serving 13 and 5."""
    return {
        "fraud-features": Component(
            "fraud-features",
            registry,
            "fraud-features",
            deployer,
            {"name": "fraud-features", "initial_version": "13"},
        ),
        "fraud-detector": Component(
            "fraud-detector",
            registry,
            "fraud-detector",
            deployer,
            {"name": "fraud-detector", "initial_version": "5"},
        ),
    }


@pytest.fixture
def context(components: dict[str, Component], clock: Clock) -> Iterator[StepContext]:
    """A step context on the local integrations with a manual clock and no metrics."""
    yield StepContext(
        model="fraud-detector",
        components=components,
        metrics=None,
        now=lambda: clock.now,
        sleep=clock.sleep,
    )
