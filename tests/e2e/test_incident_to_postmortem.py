"""Alert → incident → two approvals → staged rollback → resolution → postmortem, for real.

The postmortem of that incident must state the key times in order (degradation start read
from the metrics, not from the alert), the durations between them, the versions, the
staged steps, both approvals, and the chart; the Markdown is kept next to the test's
temporary files for a person to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.notify import NotifyingRunObserver
from bot.postmortem.facts import PostmortemFacts
from bot.postmortem.flows import SlackPostmortem, build_facts, postmortem_for_slack
from bot.runs.live import live_engine
from bot.store.models import (
    ApprovalDecision,
    ApprovalRequest,
    DeploymentRecord,
    Incident,
    RunbookRun,
    StepRun,
    TimelineEvent,
)
from bot.store.types import utcnow
from integrations.metrics.prometheus import PrometheusSource
from tests.e2e.stack import CANARY_RPS, Stack, running_stack
from tests.support.processes import wait_until

pytestmark = pytest.mark.prometheus

CANARY_MINUTES = 20
ALERT_WAIT_SECONDS = 45
STAGED_STEPS = [
    "announce",
    "shift-25",
    "bake-25",
    "verify-25",
    "shift-50",
    "bake-50",
    "verify-50",
    "shift-100",
    "wait-ready",
    "move-alias",
    "verify-100",
]


@dataclass(frozen=True)
class Moments:
    """Wall-clock bounds around what the people did, to check the recorded times against."""

    alert_sent_by: datetime
    noted: tuple[datetime, datetime]
    approved: tuple[datetime, datetime]
    resolved: tuple[datetime, datetime]


@pytest.fixture
def stack(engine: Any, tmp_path: Path) -> Any:
    with running_stack(engine, tmp_path, canary_minutes=CANARY_MINUTES) as running:
        yield running


def test_a_real_incident_becomes_a_postmortem_a_team_can_start_from(
    stack: Stack, tmp_path: Path
) -> None:
    request, channel = _wait_for_proposal(stack)
    moments = _handle_incident(stack, request, channel)

    with Session(stack.engine) as session:
        draft = postmortem_for_slack(
            session,
            incident_id=request.incident_id or 0,
            config=stack.config,
            metrics=PrometheusSource(stack.prometheus.url),
        )
        facts = build_facts(
            session,
            incident_id=request.incident_id or 0,
            config=stack.config,
            metrics=PrometheusSource(stack.prometheus.url),
        )
    (tmp_path / draft.markdown_filename).write_bytes(draft.markdown)
    (tmp_path / draft.png_filename).write_bytes(draft.png)

    _assert_key_times(stack, facts, moments)
    _assert_durations(facts)
    _assert_versions_steps_and_approvals(stack, facts)
    _assert_impact_counts_the_canary_only(stack, facts)
    _assert_the_document_reads_well(draft, facts)
    _assert_every_event_has_a_time_an_actor_and_a_source(stack)
    _assert_the_rolled_back_version_is_never_safe_again(stack)


def _assert_the_rolled_back_version_is_never_safe_again(stack: Stack) -> None:
    with Session(stack.engine) as session:
        records = session.exec(select(DeploymentRecord)).all()
    assert {(r.version, r.had_incident) for r in records} == {("1", False), ("2", True)}


def _assert_every_event_has_a_time_an_actor_and_a_source(stack: Stack) -> None:
    with Session(stack.engine) as session:
        events = session.exec(select(TimelineEvent)).all()
    missing = [(e.kind, e.actor, e.source) for e in events if not (e.actor and e.source)]
    assert events and missing == []
    assert all(e.occurred_at is not None for e in events)


def _wait_for_proposal(stack: Stack) -> tuple[ApprovalRequest, str]:
    def proposed() -> bool:
        with Session(stack.engine) as session:
            return session.exec(select(ApprovalRequest)).first() is not None

    arrived = wait_until(proposed, timeout=ALERT_WAIT_SECONDS, interval=0.5)
    assert arrived, f"no proposal; alertmanager holds {stack.alertmanager.alerts()}"
    assert stack.slack.wait_for(lambda: bool(_cards(stack)), timeout=10)
    with Session(stack.engine) as session:
        request = session.exec(select(ApprovalRequest)).one()
        incident = session.get(Incident, request.incident_id)
        assert incident is not None and incident.channel_id is not None
        return request, incident.channel_id


def _handle_incident(stack: Stack, request: ApprovalRequest, channel: str) -> Moments:
    sent_by = utcnow()
    before_note = utcnow()
    noted = stack.command("note looking at the canary's errors", user="UALICE", channel=channel)
    assert noted.startswith("Noted on the timeline"), noted
    note_window = (before_note, utcnow())

    assert request.id is not None
    first = stack.click(request.id, user="UBOB", channel=channel)
    assert first == "Approval recorded; 1 more needed.", first
    before_approval = utcnow()
    second = stack.click(request.id, user="UCAROL", channel=channel)
    assert second == "Approved: the rollback starts.", second
    approval_window = (before_approval, utcnow())

    worker = live_engine(
        stack.engine,
        stack.config,
        stack.settings,
        worker_id="e2e-worker",
        observer=NotifyingRunObserver(_notifier(stack)),
    )
    [progress] = worker.resume_unfinished()
    assert progress.status == "succeeded", _run_problem(stack)

    before_resolve = utcnow()
    resolved = stack.command("incident resolve canary rolled back", user="UALICE", channel=channel)
    assert "resolved" in resolved, resolved
    return Moments(sent_by, note_window, approval_window, (before_resolve, utcnow()))


def _assert_key_times(stack: Stack, facts: PostmortemFacts, moments: Moments) -> None:
    times = {fact.key: fact.at for fact in facts.key_times}
    ordered = [moment for moment in times.values() if moment is not None]
    assert len(ordered) == len(times) and ordered == sorted(ordered), facts.key_times

    degraded = times["degraded_at"]
    assert degraded is not None
    # From the metrics: the canary's first full minutes, twenty minutes before the alert.
    assert stack.deployed_at <= degraded <= stack.deployed_at + timedelta(minutes=3)
    assert "metrics" in _fact(facts, "degraded_at").basis
    assert _between(times["detected_at"], stack.history_end, moments.alert_sent_by)
    assert _between(times["acknowledged_at"], *moments.noted)
    assert _between(times["approved_at"], *moments.approved)
    assert _between(times["resolved_at"], *moments.resolved)

    with Session(stack.engine) as session:
        steps = {s.name: s for s in session.exec(select(StepRun)).all()}
        second = session.exec(
            select(ApprovalDecision).order_by(col(ApprovalDecision.decided_at).desc())
        ).first()
    assert second is not None and times["approved_at"] == second.decided_at
    assert times["mitigated_at"] == steps["shift-100"].finished_at
    assert times["verified_at"] == steps["verify-100"].finished_at


def _assert_durations(facts: PostmortemFacts) -> None:
    times = {fact.key: fact.at for fact in facts.key_times}
    spans = {span.label: span for span in facts.durations}
    assert set(spans) == {
        "Time to detect",
        "Time to acknowledge",
        "Time to approve",
        "Time to mitigate",
        "Time to verify",
        "Time to resolve",
    }
    for span in facts.durations:
        start, end = times[span.start_key], times[span.end_key]
        assert start is not None and end is not None
        assert span.seconds is not None and span.seconds >= 0, span
        assert span.seconds == pytest.approx((end - start).total_seconds()), span
    detect = spans["Time to detect"].seconds
    assert detect is not None and (CANARY_MINUTES - 3) * 60 < detect < (CANARY_MINUTES + 2) * 60


def _assert_versions_steps_and_approvals(stack: Stack, facts: PostmortemFacts) -> None:
    assert (facts.versions.degraded, facts.versions.restored) == ("2", "1")
    assert facts.versions.deployed_at == stack.deployed_at
    [run] = facts.runs
    assert (run.runbook, run.status, run.from_version, run.to_version) == (
        "staged-rollback",
        "succeeded",
        "2",
        "1",
    )
    assert [step.name for step in run.steps] == STAGED_STEPS
    assert {step.state for step in run.steps} == {"succeeded"}
    assert all(step.seconds is not None and step.seconds >= 0 for step in run.steps)
    [approval] = facts.approvals
    assert (approval.status, approval.runbook, approval.requested_by) == (
        "approved",
        "staged-rollback",
        "alertmanager",
    )
    assert [(d.approver, d.decision) for d in approval.decisions] == [
        ("UBOB", "approve"),
        ("UCAROL", "approve"),
    ]
    assert approval.decisions[0].at < approval.decisions[1].at == approval.decided_at


def _assert_impact_counts_the_canary_only(stack: Stack, facts: PostmortemFacts) -> None:
    impact = facts.impact
    assert impact.start == facts.key_time("degraded_at")
    assert impact.end == facts.key_time("mitigated_at") and not impact.ongoing
    assert impact.basis.startswith("counted from the metrics source")
    # The history ends when Prometheus started: the canary served 5 requests a second until
    # then, while version 1 served as many again, which must not be counted.
    assert impact.start is not None
    served = (stack.history_end - impact.start).total_seconds()
    assert impact.requests == pytest.approx(CANARY_RPS * served, rel=0.2)
    assert impact.requests is not None
    assert impact.errors == pytest.approx(0.12 * impact.requests, rel=0.25)


def _assert_the_document_reads_well(draft: SlackPostmortem, facts: PostmortemFacts) -> None:
    text = draft.markdown.decode()
    assert draft.png[:8] == b"\x89PNG\r\n\x1a\n" and len(draft.png) > 20_000
    assert "![The watched metrics around the incident" in text
    assert f"({draft.png_filename})" in text
    for heading in ("Summary", "Impact", "Key times", "Versions", "Runbook runs", "Timeline"):
        assert f"\n## {heading}\n" in text
    assert "not reached" not in text.split("## What the watch saw")[0], text
    assert "| Verification | " in text and "| verify-100 | `verify` | succeeded |" in text
    assert "| UBOB | approve |" in text and "| UCAROL | approve |" in text
    assert re.search(r"Version 2 of broken was reported degraded from \d\d:\d\d UTC", facts.summary)
    assert "staged-rollback runbook moved traffic back to version 1" in facts.summary
    assert "fault" not in text.replace("not for who was at fault", "")


def _fact(facts: PostmortemFacts, key: str) -> Any:
    return next(fact for fact in facts.key_times if fact.key == key)


def _between(moment: datetime | None, low: datetime, high: datetime) -> bool:
    return moment is not None and low <= moment <= high


def _cards(stack: Stack) -> list[Any]:
    return [
        c for c in stack.slack.calls_to("chat.postMessage") if "Rollback #" in str(c.args["text"])
    ]


def _notifier(stack: Stack) -> Any:
    from slack_sdk import WebClient

    from bot.slack.notifier import SlackNotifier

    client = WebClient(token="xoxb-test", base_url=stack.slack.api_url)
    return SlackNotifier(client, engine=stack.engine, config=stack.config)


def _run_problem(stack: Stack) -> str:
    with Session(stack.engine) as session:
        run = session.exec(select(RunbookRun)).one()
        steps = session.exec(select(StepRun).order_by(col(StepRun.position))).all()
        return f"run {run.status}: {run.error}; steps {[(s.name, s.state, s.error) for s in steps]}"
