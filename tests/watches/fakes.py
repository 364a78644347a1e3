"""An in-memory PromQL stand-in for the grouped queries, and a recording notifier."""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.config.models import RollbotConfig
from bot.proposals import propose_rollback
from bot.runs.contracts import Plan, PlanStep
from bot.safe_versions import NoSafeVersion
from bot.watches.ranges import MAX_POINTS_PER_SERIES
from integrations.errors import IntegrationTimeout, IntegrationUnavailable, InvalidRequest
from integrations.metrics.base import Series


@dataclass(frozen=True)
class Serving:
    """A version of a model serving from ``start`` to ``end`` (unix seconds)."""

    model: str
    version: str
    start: float
    end: float
    rps: float = 5.0
    error_rate: float = 0.01
    latency: float = 0.2


@dataclass
class FakePrometheus:
    """Answers ``sum by (model, version) (increase(...))`` and gauge queries from servings."""

    servings: list[Serving]
    seed: int = 7
    queries: list[str] = field(default_factory=list)
    down: bool = False
    # Metric names with no series at all (a counter never incremented).
    absent: tuple[str, ...] = ()
    # Queries selecting any of these models time out.
    failing_models: frozenset[str] = frozenset()
    # (start, end) of every range asked for, in unix seconds.
    ranges: list[tuple[float, float]] = field(default_factory=list)

    def query(self, promql: str, *, at: datetime | None = None) -> list[Series]:
        """Unused by watches."""
        raise NotImplementedError

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]:
        """Per-step counts (or gauge values) of every serving version in the range."""
        if self.down:
            raise IntegrationUnavailable(
                "connection refused", integration="prometheus", operation="query", target="x"
            )
        if (end - start).total_seconds() / step_seconds > MAX_POINTS_PER_SERIES:
            # Prometheus's own words for a range with too many points per series.
            raise InvalidRequest(
                "exceeded maximum resolution of 11,000 points per timeseries",
                integration="prometheus",
                operation="query_range",
                target="x",
            )
        wanted = _selected_models(promql)
        if wanted is not None and wanted & self.failing_models:
            raise IntegrationTimeout(
                "timed out", integration="prometheus", operation="query_range", target="x"
            )
        self.queries.append(promql)
        self.ranges.append((start.timestamp(), end.timestamp()))
        if any(name in promql for name in self.absent):
            return []
        answer = []
        for serving in self.servings:
            if wanted is not None and serving.model not in wanted:
                continue
            samples = self._samples(serving, promql, start, end, step_seconds)
            if samples:
                answer.append(Series({"model": serving.model, "version": serving.version}, samples))
        return answer

    def _samples(
        self, serving: Serving, promql: str, start: datetime, end: datetime, step: float
    ) -> list[tuple[float, float]]:
        samples = []
        moment = start.timestamp()
        while moment <= end.timestamp() + 1e-9:
            if serving.start < moment <= serving.end:
                rng = random.Random(hash((self.seed, serving.model, serving.version, moment)))
                requests = serving.rps * step
                if "model_errors_total" in promql:
                    value = float(
                        sum(rng.random() < serving.error_rate for _ in range(int(requests)))
                    )
                elif "model_requests_total" in promql:
                    value = requests
                else:
                    value = serving.latency * (1 + 0.05 * rng.random())
                samples.append((moment, value))
            moment += step
        return samples


def _selected_models(promql: str) -> set[str] | None:
    match = re.search(r'model=~"([^"]*)"', promql)
    if match is None:
        return None
    return {name.replace("\\\\", "") for name in match.group(1).split("|")}


@dataclass
class RecordingNotifier:
    """Remembers what would have been posted to Slack."""

    posts: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def incident_opened(self, *, incident_id: int) -> None:
        self.posts.append(("incident_opened", {"incident_id": incident_id}))

    def incident_updated(self, *, incident_id: int) -> None:
        self.posts.append(("incident_updated", {"incident_id": incident_id}))

    def proposal_created(self, *, request_id: int) -> None:
        self.posts.append(("proposal_created", {"request_id": request_id}))

    def proposal_decided(self, *, request_id: int) -> None:
        self.posts.append(("proposal_decided", {"request_id": request_id}))

    def run_progress(self, *, run_id: int, message: str) -> None:
        self.posts.append(("run_progress", {"run_id": run_id, "message": message}))

    def evidence_posted(
        self,
        *,
        incident_id: int,
        summary: str,
        chart_png: bytes | None = None,
        filename: str = "evidence.png",
    ) -> None:
        self.posts.append(
            (
                "evidence_posted",
                {"incident_id": incident_id, "summary": summary, "chart": chart_png},
            )
        )

    def documents_posted(
        self, *, incident_id: int, summary: str, files: list[tuple[str, bytes]]
    ) -> None:
        self.posts.append(("documents_posted", {"incident_id": incident_id, "summary": summary}))

    def reminder_posted(self, *, incident_id: int, text: str, mentions: tuple[str, ...]) -> None:
        self.posts.append(
            ("reminder_posted", {"incident_id": incident_id, "text": text, "mentions": mentions})
        )

    def kinds(self) -> list[str]:
        """The notification kinds in order."""
        return [kind for kind, _ in self.posts]


def plan_to(version: str | None) -> Any:
    def planner(*, model: str, **_: Any) -> Plan:
        if version is None:
            raise NoSafeVersion(f"no safe version of {model}: 1: had an incident while serving")
        step = PlanStep(name="shift", action="deployer.shift_traffic", params={"percent": 100})
        return Plan(
            model=model,
            runbook="immediate-rollback",
            from_version="2",
            to_version=version,
            steps=[step],
        )

    return planner


def proposer(config: RollbotConfig, safe_version: str | None = "1") -> Any:
    return functools.partial(
        propose_rollback,
        config=config,
        runbooks={},
        components_for=lambda *a, **k: {},
        planner=plan_to(safe_version),
    )
