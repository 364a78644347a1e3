"""The chart is a real PNG; impact numbers come from the metrics source, else the evidence."""

from __future__ import annotations

import dataclasses
import struct
from datetime import datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import RollbotConfig
from bot.incidents import service as incidents
from bot.postmortem.flows import build_facts, chart_png
from integrations.errors import IntegrationTimeout
from integrations.metrics.base import Series
from tests.postmortem.builders import GENERATED_AT, MODEL, at, record_incident

CONFIG = RollbotConfig.model_validate(
    {"models": {MODEL: {"registry": "mlflow", "deployer": "kserve", "watch": {}}}}
)


class RecordedPrometheus:
    """A metrics source answering from a fixed history: 100 requests a minute, 1% failing,
    3% while version 5 served degraded (10:02 until the rollback at 10:18:19)."""

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.queries: list[str] = []

    def query(self, promql: str, *, at: datetime | None = None) -> list[Series]:
        raise AssertionError("the postmortem reads ranges only")

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]:
        self.queries.append(promql)
        if self.down:
            raise IntegrationTimeout(
                "no answer in 10s",
                integration="prometheus",
                operation="query_range",
                target="127.0.0.1:9090",
            )
        samples = []
        moment = start.timestamp()
        while moment <= end.timestamp():
            degraded = at(2).timestamp() <= moment < at(18 + 19 / 60).timestamp()
            errors = 3.0 if degraded else 1.0
            samples.append((moment, errors if "errors" in promql else 100.0))
            moment += step_seconds
        return [Series(labels={"model": MODEL}, samples=samples)]


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_chart_is_a_png_with_a_panel_per_watched_metric(engine: Engine) -> None:
    with Session(engine) as session:
        recorded = record_incident(session)
        facts = build_facts(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    png = chart_png(facts)
    assert png_size(png) == (1000, 580)
    assert 20_000 < len(png) < 500_000
    assert [marker.label for marker in facts.markers] == [
        "deploy of 5",
        "detection",
        "approval",
        "mitigation",
    ]


def test_without_any_metrics_the_chart_still_shows_the_moments(engine: Engine) -> None:
    with Session(engine) as session:
        recorded = record_incident(session, ending="no_metrics")
        facts = build_facts(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    assert facts.metrics == ()
    assert png_size(chart_png(facts)) == (1000, 320)


def test_impact_is_counted_from_the_metrics_source(engine: Engine) -> None:
    source = RecordedPrometheus()
    with Session(engine) as session:
        recorded = record_incident(session)
        facts = build_facts(
            session,
            incident_id=recorded.incident_id,
            config=CONFIG,
            metrics=source,
            now=GENERATED_AT,
        )
    assert source.queries == [
        'sum(increase(model_errors_total{model="fraud-scorer",version="5"}[60s]))',
        'sum(increase(model_requests_total{model="fraud-scorer",version="5"}[60s]))',
        'sum(increase(model_errors_total{model="fraud-scorer",version="4"}[60s]))',
        'sum(increase(model_requests_total{model="fraud-scorer",version="4"}[60s]))',
    ]
    impact = facts.impact
    # One-minute samples from 10:02 up to the rollback at 10:18:19: 17 of them.
    assert (impact.requests, impact.errors, impact.excess_errors) == (1700.0, 51.0, 34.0)
    assert impact.basis == "counted from the metrics source over the impact window"
    (series,) = facts.metrics
    assert series.name == "error_rate" and series.points[0].limit == 0.015
    assert png_size(chart_png(facts)) == (1000, 320)


def test_the_degradation_start_is_read_from_the_metrics_when_not_recorded(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        recorded = record_incident(session)
        incident = incidents.get(session, incident_id=recorded.incident_id)
        incident.degraded_at = None
        session.commit()
        facts = build_facts(
            session,
            incident_id=recorded.incident_id,
            config=CONFIG,
            metrics=RecordedPrometheus(),
            now=GENERATED_AT,
        )
        evidence_only = build_facts(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    (degraded,) = [k for k in facts.key_times if k.key == "degraded_at"]
    assert degraded.at == at(2)
    assert degraded.basis.startswith("estimated from the metrics")
    # From the evidence alone: the start of the ten-minute window that decided, not the alert.
    assert evidence_only.key_time("degraded_at") == at(0)


def test_a_metrics_source_that_is_down_falls_back_to_the_evidence(engine: Engine) -> None:
    with Session(engine) as session:
        recorded = record_incident(session)
        facts = build_facts(
            session,
            incident_id=recorded.incident_id,
            config=CONFIG,
            metrics=RecordedPrometheus(down=True),
            now=GENERATED_AT,
        )
    assert facts.impact.basis.startswith("estimated from the detection window")
    assert "metrics source unavailable (prometheus query_range 127.0.0.1:9090" in (
        facts.impact.basis
    )
    assert [s.source for s in facts.metrics] == ["the watch's recorded evaluations"] * 2


class CanaryPrometheus(RecordedPrometheus):
    """Version 5 as a canary: 40 requests a minute beside version 4's 60, each per label."""

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]:
        answer = super().query_range(promql, start=start, end=end, step_seconds=step_seconds)
        share = 0.4 if 'version="5"' in promql else 0.6
        if 'version="' not in promql:
            share = 1.0
        return [
            Series(labels=s.labels, samples=[(t, v * share) for t, v in s.samples]) for s in answer
        ]


def test_during_a_canary_only_the_degraded_versions_requests_count(engine: Engine) -> None:
    with Session(engine) as session:
        recorded = record_incident(session)
        facts = build_facts(
            session,
            incident_id=recorded.incident_id,
            config=CONFIG,
            metrics=CanaryPrometheus(),
            now=GENERATED_AT,
        )
    # 17 one-minute samples of version 5 alone: 40 requests and 1.2 errors each.
    assert facts.impact.requests == 17 * 40.0
    assert facts.impact.errors == pytest.approx(17 * 1.2)
    assert "about 680 requests" in facts.summary


def test_an_alert_opened_incident_takes_its_boundary_from_the_configuration(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        recorded = record_incident(session, ending="no_metrics")
        facts = build_facts(
            session,
            incident_id=recorded.incident_id,
            config=CONFIG,
            metrics=RecordedPrometheus(),
            now=GENERATED_AT,
        )
    (series,) = facts.metrics
    # Version 4 fails 1% (1 of 100) before and 3% during, averaged over the window; the
    # configured boundary is 1.5 times that.
    baseline = series.points[0].baseline
    assert baseline is not None and series.points[0].limit == pytest.approx(baseline * 1.5)


def test_a_title_with_dollar_signs_is_drawn_as_text(engine: Engine) -> None:
    with Session(engine) as session:
        recorded = record_incident(session, ending="no_metrics")
        facts = build_facts(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    odd = dataclasses.replace(facts, model=None, title="nulls in column $_$ after deploy")

    assert png_size(chart_png(odd)) == (1000, 320)
