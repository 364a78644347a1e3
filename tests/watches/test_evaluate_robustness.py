"""Old deploys and partial metrics outages: the cycle judges what it can read, on both databases."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy.engine import Engine

from bot.config import parse_config
from bot.store.db import session_scope
from bot.store.models import (
    ApprovalRequest,
    DeploymentRecord,
    Incident,
    TimelineEvent,
    WatchState,
)
from bot.watches.evaluate import evaluate_once
from bot.watches.troubles import WatchTroubles
from integrations.errors import IntegrationTimeout, IntegrationUnavailable
from tests.approvals.test_proposals import add_run
from tests.watches.fakes import FakePrometheus, RecordingNotifier, Serving, proposer
from tests.watches.test_evaluate import CONFIG, NOW, rows, run


def watching(models: Iterable[str]) -> str:
    """The test configuration with an error-rate watch on each of ``models``."""
    return (
        CONFIG.split("models:")[0]
        + "models:\n"
        + "".join(
            f"  {m}: {{registry: mlflow, deployer: kserve, watch: {{metrics: [error_rate]}}}}\n"
            for m in models
        )
    )


AGES = {"old": timedelta(days=30), "new": timedelta(minutes=40)}
CONFIG_TWO = watching(AGES)


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


TWO_NEW = {"a": timedelta(minutes=40), "b": timedelta(minutes=40)}
CONFIG_TWO_NEW = watching(TWO_NEW)


def test_a_deployer_outage_while_proposing_is_recorded_and_tried_again(engine: Engine) -> None:
    config = parse_config(CONFIG_TWO_NEW)
    for model, age in TWO_NEW.items():
        deploy(engine, model, age)
    source = FakePrometheus([s for m, age in TWO_NEW.items() for s in servings(m, age, 0.08)])
    working = proposer(config)
    deployer_down = True

    def flaky(session: Any, **kwargs: Any) -> Any:
        if kwargs["model"] == "a" and deployer_down:
            raise IntegrationUnavailable(
                "connection refused", integration="kserve", operation="current_state", target="a"
            )
        return working(session, **kwargs)

    notifier = RecordingNotifier()
    run(engine, config, source, proposer=flaky, notifier=notifier)

    # b's proposal is made and announced although a's failed before it.
    assert [(r.model, r.status) for r in rows(engine, ApprovalRequest)] == [("b", "pending")]
    assert sorted(i.model for i in rows(engine, Incident)) == ["a", "b"]
    assert notifier.kinds().count("proposal_created") == 1
    [refusal] = [e for e in rows(engine, TimelineEvent) if e.kind == "detection.no_proposal"]
    assert refusal.summary == (
        "No rollback proposed for a: could not prepare the rollback plan (kserve current_state "
        "a: connection refused); trying again in 5m"
    )
    a_summary = next(
        post["summary"]
        for kind, post in notifier.posts
        if kind == "evidence_posted" and str(post["summary"]).startswith("*a*")
    )
    assert "No rollback proposed: could not prepare the rollback plan" in str(a_summary)

    # Not every evaluation, and not only after the hour's cooldown: five minutes later.
    soon = run(engine, config, source, proposer=flaky, now=NOW + timedelta(minutes=1))
    assert [e.detection for e in soon] == [None, None]
    assert "trying again in" in rows_state(engine, "a")["watch"]
    deployer_down = False
    later = run(engine, config, source, proposer=flaky, now=NOW + timedelta(minutes=5))
    assert [e.model for e in later if e.detection is not None] == ["a"]
    assert sorted((r.model, r.status) for r in rows(engine, ApprovalRequest)) == [
        ("a", "pending"),
        ("b", "pending"),
    ]


def rows_state(engine: Engine, model: str) -> dict[str, Any]:
    [row] = [r for r in rows(engine, WatchState) if r.model == model]
    return dict(row.last_decision)


def test_no_proposal_while_the_models_rollback_runs(engine: Engine) -> None:
    config = parse_config(CONFIG_TWO_NEW)
    deploy(engine, "a", TWO_NEW["a"])
    add_run(engine, status="running", model="a")
    notifier = RecordingNotifier()

    [evaluation] = run(
        engine, config, FakePrometheus(servings("a", TWO_NEW["a"], 0.08)), notifier=notifier
    )

    assert evaluation.state == "degraded"
    assert rows(engine, ApprovalRequest) == []
    assert evaluation.detection is not None
    assert evaluation.detection.no_proposal_reason is not None
    assert "already has an active rollback: run #" in evaluation.detection.no_proposal_reason
    assert "proposal_created" not in notifier.kinds()


def test_samples_the_detector_cannot_judge_cost_only_their_model(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import bot.watches.judging as judging

    config = parse_config(watching(["fraud", "glitchy"]))
    for model in ("fraud", "glitchy"):
        deploy(engine, model, AGES["new"])
    source = FakePrometheus(
        [*servings("fraud", AGES["new"], 0.08), *servings("glitchy", AGES["new"], 0.01)]
    )
    real_judge = judging.judge

    attempts: list[str] = []

    def judge(target: Any, *args: Any, **kwargs: Any) -> Any:
        if target.model == "glitchy":
            attempts.append(target.model)
            raise ValueError("math domain error")
        return real_judge(target, *args, **kwargs)

    monkeypatch.setattr(judging, "judge", judge)
    monkeypatch.setattr(judging, "_FAILURES_LOGGED", set())

    with caplog.at_level(logging.ERROR, logger="bot.watches.judging"):
        evaluations = {e.model: e for e in run(engine, config, source)}
        run(engine, config, source, now=NOW + timedelta(minutes=1))

    assert evaluations["fraud"].state == "degraded"
    assert evaluations["glitchy"].state == "inconclusive"
    assert "the detector could not judge these samples (ValueError: math domain error)" in (
        evaluations["glitchy"].explanation
    )
    [incident] = rows(engine, Incident)
    assert incident.model == "fraud" and len(rows(engine, ApprovalRequest)) == 1
    # The traceback once, not at every step.
    assert attempts == ["glitchy", "glitchy"]
    assert [r.getMessage() for r in caplog.records] == [
        "judging glitchy failed; not logged again for this error"
    ]


def test_metrics_trouble_is_logged_when_it_starts_and_when_it_ends_not_every_tick(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config(CONFIG_TWO)
    for model, age in AGES.items():
        deploy(engine, model, age)
    source = FakePrometheus(
        [*servings("old", AGES["old"], 0.01), *servings("new", AGES["new"], 0.01)], down=True
    )
    troubles = WatchTroubles()

    def tick(seconds: int) -> None:
        with patch("bot.watches.evaluate.utcnow", return_value=NOW + timedelta(seconds=seconds)):
            evaluate_once(
                engine,
                config=config,
                source=source,
                proposer=proposer(config),
                notifier=RecordingNotifier(),
                troubles=troubles,
            )

    with caplog.at_level(logging.INFO, logger="bot.watches.troubles"):
        for seconds in (0, 60, 120):  # Prometheus is down
            tick(seconds)
        source.down, source.failing_models = False, frozenset({"old"})
        for seconds in (180, 240):  # back, but the old deploy's queries time out
            tick(seconds)
        source.failing_models = frozenset()
        for seconds in (300, 360):
            tick(seconds)

    assert [r.getMessage() for r in caplog.records] == [
        "metrics of new, old unavailable: prometheus query x: connection refused",
        "metrics of old unavailable: prometheus query_range x: timed out",
        "metrics of new readable again",
        "metrics of old readable again",
    ]


def test_two_cycles_at_once_store_each_model_once_and_fail_neither(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A leader stepping down may still finish its cycle while the new leader starts one.
    import bot.watches.evaluate as evaluate

    config = parse_config(CONFIG_TWO)
    for model, age in AGES.items():
        deploy(engine, model, age)
    source = FakePrometheus(
        [*servings("old", AGES["old"], 0.01), *servings("new", AGES["new"], 0.01)]
    )
    both_read = threading.Barrier(2, timeout=30)
    judge = evaluate._judge

    def judge_after_both_read(*args: Any) -> Any:
        both_read.wait()  # each cycle has read the stored states: none yet
        return judge(*args)

    monkeypatch.setattr(evaluate, "_judge", judge_after_both_read)
    with ThreadPoolExecutor(2) as pool:
        cycles = [pool.submit(run, engine, config, source) for _ in range(2)]
        outcomes = [cycle.result(timeout=60) for cycle in cycles]

    assert [sorted(e.state for e in outcome) for outcome in outcomes] == [["healthy"] * 2] * 2
    assert sorted(row.model for row in rows(engine, WatchState)) == ["new", "old"]
