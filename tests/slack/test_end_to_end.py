"""From Slack alone: declare, ask for a rollback, two approve, watch it run, note, resolve."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from bot.notify import NotifyingRunObserver
from bot.runs.actions import ACTIONS
from bot.runs.contracts import StepContext
from bot.runs.engine import RunEngine
from bot.slack.ids import CallbackId
from bot.store.models import Incident, RunbookRun, TimelineEvent
from bot.store.types import utcnow
from bot.timeline import verify_chains
from tests.slack.conftest import MODEL, Rollbot
from tests.slack.helpers import click, command, propose
from tests.support.slack_signing import event, message_shortcut


def _engine_for(rollbot: Rollbot) -> RunEngine:
    return RunEngine(
        rollbot.engine,
        actions=ACTIONS,
        context_for=lambda run: StepContext(
            model=run.model, components={}, metrics=None, now=utcnow, sleep=lambda _: None
        ),
        worker_id="test-worker",
        lease=timedelta(seconds=60),
        observer=NotifyingRunObserver(rollbot.surface.notifier),
    )


def test_an_incident_handled_entirely_from_slack(rollbot: Rollbot) -> None:
    fake = rollbot.fake
    declared = command(
        rollbot, f"incident declare {MODEL} sev2 fraud scores drifted", user="UALICE"
    )
    channel = fake.state.channels[fake.calls_to("conversations.create")[0].args["name"]]
    assert f"<#{channel}>" in declared

    request_id = propose(rollbot, user="UALICE", extra="because precision fell 12%")
    assert click(rollbot, request_id, user="UBOB") == "Approval recorded; 1 more needed."
    assert click(rollbot, request_id, user="UCAROL") == "Approved: the rollback starts."

    with Session(rollbot.engine) as session:
        run = session.exec(select(RunbookRun)).one()
    assert run.id is not None
    progress = _engine_for(rollbot).execute(run.id)
    assert progress.status == "succeeded"
    posted = [str(c.args.get("text")) for c in fake.calls_to("chat.postMessage")]
    assert any("Step 1 `announce` succeeded" in text for text in posted)
    assert any(f"Run #{run.id} succeeded" in text for text in posted)
    headline = fake.calls_to("chat.update")[-1]
    assert "succeeded*, 2/2 steps" in str(headline.args["blocks"])

    assert command(rollbot, "note rolled back, watching", user="UBOB", channel=channel).startswith(
        "Noted on the timeline"
    )
    _capture_messages(rollbot, channel)
    status = command(rollbot, "runbook status", user="UBOB", channel=channel)
    assert f"*Run #{run.id}*" in status and "*succeeded*" in status

    resolved = command(
        rollbot, "incident resolve metrics back to normal", user="UALICE", channel=channel
    )
    assert resolved == "Incident #1 resolved by <@UALICE>."
    _assert_timeline(rollbot)

    drafted = command(rollbot, "postmortem", user="UALICE", channel=channel)
    assert drafted == f"Posted the postmortem draft of incident #1 in <#{channel}>."
    assert rollbot.fake.wait_for(
        lambda: bool(rollbot.fake.calls_to("files.completeUploadExternal"))
    )
    (upload,) = rollbot.fake.calls_to("files.completeUploadExternal")
    names = [f.get("title") for f in json.loads(upload.args["files"])]
    assert names == ["incident-1-postmortem.md", "incident-1-metrics.png"]
    assert upload.args["channel_id"] == channel


def _capture_messages(rollbot: Rollbot, channel: str) -> None:
    posted_at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    message = {
        "type": "message",
        "ts": f"{posted_at.timestamp():.6f}",
        "user": "UDAVE",
        "text": "p99 latency back",
    }
    body, content_type = message_shortcut(
        callback_id=CallbackId.ADD_TO_TIMELINE,
        user="UBOB",
        channel=channel,
        message=message,
        response_url=rollbot.fake.response_url("shortcut"),
    )
    assert rollbot.send(body, content_type).status_code == 200
    assert rollbot.fake.reply_to("shortcut") == "Added to the timeline of incident #1."

    pinned_ts = f"{posted_at.timestamp() + 60:.6f}"
    rollbot.fake.state.messages[f"{channel}/{pinned_ts}"] = {
        "ts": pinned_ts,
        "user": "UERIN",
        "text": "feature store lag was the trigger",
    }
    body, content_type = event(
        {
            "type": "reaction_added",
            "user": "UCAROL",
            "reaction": "pushpin",
            "item": {"type": "message", "channel": channel, "ts": pinned_ts},
            "event_ts": pinned_ts,
        }
    )
    assert rollbot.send(body, content_type).status_code == 200
    assert rollbot.fake.wait_for(lambda: _note_by(rollbot, "UERIN") is not None)
    captured = _note_by(rollbot, "UDAVE")
    assert captured is not None and captured.occurred_at == posted_at
    assert captured.summary == "p99 latency back"


def _note_by(rollbot: Rollbot, author: str) -> TimelineEvent | None:
    with Session(rollbot.engine) as session:
        return session.exec(
            select(TimelineEvent)
            .where(TimelineEvent.kind == "note")
            .where(TimelineEvent.actor == author)
        ).first()


def _assert_timeline(rollbot: Rollbot) -> None:
    with Session(rollbot.engine) as session:
        incident = session.exec(select(Incident)).one()
        assert incident.status == "resolved"
        assert incident.approved_at is not None and incident.resolved_at is not None
        kinds = [
            e.kind
            for e in session.exec(
                select(TimelineEvent)
                .where(TimelineEvent.incident_id == incident.id)
                .order_by(col(TimelineEvent.seq))
            )
        ]
        assert verify_chains(session) == []
    expected = [
        "incident.opened",
        "rollback.proposed",
        "approval.approved",
        "approval.approved",
        "approval.granted",
        "run.created",
    ]
    assert [k for k in kinds if k in expected] == expected
    assert kinds.count("note") == 3 and kinds[-1] == "incident.resolved"
