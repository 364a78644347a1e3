"""Reminders on both databases: approvers halfway to expiry, responders of an unacknowledged
incident, each once; and how Slack gets them."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.approvals import service
from bot.config import parse_config
from bot.incidents import service as incidents
from bot.reminders import UNACKNOWLEDGED_AFTER, send_due
from bot.slack.notifier import SlackNotifier
from bot.store import session_scope
from bot.store.models import Incident, TimelineEvent
from bot.store.types import utcnow
from tests.approvals.test_service import PLAN, POLICY
from tests.support.fake_slack import running_fake_slack

CONFIG = parse_config(
    """
slack: {responders: [SONCALL]}
registries: {local: {kind: local, path: r.json}}
deployers: {local: {kind: local, path: d.json}}
models:
  fraud-detector: {registry: local, deployer: local, owners: [UFRAUDLEAD]}
"""
)


def propose(engine: Engine, *, acknowledged: bool = True) -> tuple[int, int]:
    """A proposal made now (POLICY: 1 approval from UBOB, expires after 10 minutes)."""
    with session_scope(engine) as session:
        incident, _ = incidents.open_or_join(
            session,
            model=PLAN.model,
            title="fraud-detector 5 degraded",
            actor="rollbot",
            source="watch",
            detected_at=utcnow(),
        )
        if acknowledged:
            incidents.mark_time(session, incident=incident, key="acknowledged_at")
        request = service.create_request(
            session,
            plan=PLAN,
            incident=incident,
            policy_name="default",
            policy=POLICY,
            evidence={},
            requested_by="rollbot",
            via="watch",
            reason=None,
        )
        assert incident.id is not None and request.id is not None
        return incident.id, request.id


def remind(engine: Engine, minutes: float) -> list[tuple[int, str, tuple[str, ...]]]:
    with session_scope(engine) as session:
        due = send_due(session, config=CONFIG, now=utcnow() + timedelta(minutes=minutes))
    return [(r.incident_id, r.text, r.mentions) for r in due]


def test_a_proposal_halfway_to_expiry_reminds_its_approvers_once(engine: Engine) -> None:
    incident_id, request_id = propose(engine)

    early, halfway, again = remind(engine, 4), remind(engine, 5.5), remind(engine, 7)

    assert early == [] and again == []
    [(where, text, mentions)] = halfway
    assert where == incident_id and mentions == ("UBOB",)
    assert text.startswith(
        f"⏰ The rollback of fraud-detector 5 → 4 (request #{request_id}) has 0 of 1 "
        "approval(s) and expires in 4m"
    )
    with session_scope(engine) as session:
        kinds = session.exec(
            select(TimelineEvent.kind).where(TimelineEvent.incident_id == incident_id)
        ).all()
    assert kinds.count("approval.reminded") == 1


def test_an_unacknowledged_incident_reminds_responders_and_owners_once(engine: Engine) -> None:
    incident_id, _ = propose(engine, acknowledged=False)
    minutes = UNACKNOWLEDGED_AFTER.total_seconds() / 60

    before = remind(engine, minutes - 1)
    after = [r for r in remind(engine, minutes + 1) if "no response" in r[1]]
    later = [r for r in remind(engine, minutes + 5) if "no response" in r[1]]

    assert [r for r in before if "no response" in r[1]] == [] and later == []
    [(where, text, mentions)] = after
    assert where == incident_id and mentions == ("SONCALL", "UFRAUDLEAD")
    assert text.startswith(f"⏰ Incident #{incident_id} (fraud-detector 5 degraded) has had no")


def test_an_acknowledged_or_resolved_incident_needs_no_reminder(engine: Engine) -> None:
    incident_id, _ = propose(engine)
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incidents.resolve(session, incident=incident, actor="UALICE", source="slack")

    assert remind(engine, 60) == []


def test_slack_posts_the_reminder_in_the_incident_channel_with_mentions(engine: Engine) -> None:
    incident_id, _ = propose(engine)
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incident.channel_id = "C0INCIDENT"
        session.add(incident)
    with running_fake_slack() as slack:
        notifier = SlackNotifier(
            WebClient(token="xoxb-test", base_url=slack.api_url), engine=engine, config=CONFIG
        )
        notifier.reminder_posted(
            incident_id=incident_id, text="⏰ still waiting", mentions=("SONCALL", "UBOB", "UBOB")
        )
        [call] = slack.calls_to("chat.postMessage")

    assert call.args["channel"] == "C0INCIDENT"
    assert call.args["text"] == "<!subteam^SONCALL> <@UBOB> ⏰ still waiting"


def test_a_person_asking_for_the_rollback_has_acknowledged_the_incident(engine: Engine) -> None:
    from bot.proposals import propose_rollback
    from tests.watches.fakes import plan_to

    with session_scope(engine) as session:
        request = propose_rollback(
            session,
            config=CONFIG,
            runbooks={},
            components_for=lambda *a, **k: {},
            model=PLAN.model,
            to_version=None,
            requested_by="UALICE",
            via="slack",
            reason=None,
            planner=plan_to("4"),
        )
        incident = session.get(Incident, request.incident_id)
        assert incident is not None and incident.acknowledged_at is not None

    assert [r for r in remind(engine, 30) if "no response" in r[1]] == []
