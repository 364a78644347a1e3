"""Approval requests in the domain: expiry, the engine's re-check, and the policy rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.approvals import expiry, service
from bot.approvals.expiry import expire_requests, post_unposted
from bot.approvals.policy import PolicySnapshot, is_approver
from bot.config.models import ApprovalPolicy
from bot.errors import PolicyViolation
from bot.incidents import service as incidents
from bot.runs.contracts import Plan, PlanStep
from bot.runs.service import create_run
from bot.store import session_scope
from bot.store.models import ApprovalDecision, ApprovalRequest, ApprovalStatus, TimelineEvent
from bot.store.types import utcnow

PLAN = Plan(
    model="fraud-detector",
    runbook="immediate-rollback",
    from_version="5",
    to_version="4",
    steps=[PlanStep(name="announce", action="notify", params={"message": "hi"})],
)
POLICY = PolicySnapshot.from_config(
    ApprovalPolicy(approvals=1, approvers=["UBOB"], expires_after=timedelta(minutes=10))
)


class RecordingNotifier:
    """Remembers which cards it was asked to update."""

    def __init__(self) -> None:
        self.decided: list[int] = []
        self.posted: list[int] = []

    def proposal_decided(self, *, request_id: int) -> None:
        self.decided.append(request_id)

    def proposal_created(self, *, request_id: int) -> None:
        self.posted.append(request_id)

    def __getattr__(self, name: str) -> Any:
        return lambda **_: None


def _request(
    engine: Engine, *, created_ago: timedelta = timedelta(0), model: str = PLAN.model
) -> int:
    with session_scope(engine) as session:
        incident, _ = incidents.open_or_join(
            session, model=model, title="degraded", actor="watch", source="detector"
        )
        request = service.create_request(
            session,
            plan=PLAN.model_copy(update={"model": model}),
            incident=incident,
            policy_name="default",
            policy=POLICY,
            evidence={},
            requested_by="UALICE",
            via="slack",
            reason=None,
            now=utcnow() - created_ago,
        )
        assert request.id is not None
        return request.id


def test_overdue_requests_expire_and_their_cards_update(engine: Engine) -> None:
    overdue = _request(engine, created_ago=timedelta(minutes=11))
    notifier = RecordingNotifier()

    assert expire_requests(engine, notifier=notifier) == [overdue]

    assert notifier.decided == [overdue]
    with Session(engine) as session:
        request = session.get(ApprovalRequest, overdue)
        assert request is not None and request.status == "expired"
        kinds = [e.kind for e in session.exec(select(TimelineEvent))]
        assert kinds[-1] == "approval.expired"
    assert expire_requests(engine, notifier=notifier) == []


def test_cards_that_never_reached_slack_are_posted_again(engine: Engine) -> None:
    missed = _request(engine, created_ago=timedelta(minutes=2))
    cancelled = _request(engine, created_ago=timedelta(minutes=2), model="churn")
    with session_scope(engine) as session:
        request = session.get(ApprovalRequest, cancelled)
        assert request is not None
        request.status = "cancelled"  # superseded: only pending requests need a card
        session.add(request)
    fresh = _request(engine, created_ago=timedelta(seconds=10), model="ranker")
    notifier = RecordingNotifier()

    assert post_unposted(engine, notifier=notifier) == [missed]
    assert notifier.posted == [missed]

    with session_scope(engine) as session:
        request = session.get(ApprovalRequest, missed)
        assert request is not None
        request.slack_channel, request.slack_ts = "C1", "1.0"  # what posting it records
        session.add(request)
    later = utcnow() + timedelta(minutes=2)
    assert post_unposted(engine, notifier=notifier, now=later) == [fresh]


def test_requests_inside_their_time_do_not_expire(engine: Engine) -> None:
    _request(engine, created_ago=timedelta(minutes=9))

    assert expire_requests(engine, notifier=RecordingNotifier()) == []


def test_the_engine_recheck_accepts_only_the_approved_plan(engine: Engine) -> None:
    request_id = _request(engine)
    with session_scope(engine) as session:
        gap = service.approval_gap(session, request_id=request_id, plan_hash=PLAN.hash())
        assert gap == f"approval request #{request_id} is pending, not approved"
        outcome = service.decide(
            session,
            request_id=request_id,
            user="UBOB",
            decision="approve",
            members_of=lambda group: frozenset(),
            current_plan_hash=PLAN.hash(),
            start_run=create_run,
        )
    assert outcome.run_id is not None
    with session_scope(engine) as session:
        assert service.approval_gap(session, request_id=request_id, plan_hash=PLAN.hash()) is None
        gap = service.approval_gap(session, request_id=request_id, plan_hash="0" * 64)
        assert gap == f"approval request #{request_id} was given for a different plan"


def test_the_engine_recheck_counts_the_approvals_not_the_status(engine: Engine) -> None:
    request_id = _request(engine)
    with session_scope(engine) as session:
        request = session.get(ApprovalRequest, request_id)
        assert request is not None
        request.status = ApprovalStatus.APPROVED  # as a hand-edited row or a bug would leave it
        session.add(request)

    with session_scope(engine) as session:
        gap = service.approval_gap(session, request_id=request_id, plan_hash=PLAN.hash())

    assert gap == f"approval request #{request_id} has 0 of the 1 approvals its policy demands"


def test_a_policy_with_no_approvers_named_lets_anyone_approve() -> None:
    open_policy = PolicySnapshot.from_config(ApprovalPolicy())
    assert is_approver("UANYONE", open_policy, lambda group: frozenset())
    assert not is_approver("UANYONE", POLICY, lambda group: frozenset())
    assert PolicySnapshot.from_dict(POLICY.to_dict()) == POLICY


def test_expiry_leaves_alone_a_request_being_approved_in_time(engine: Engine, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite serialises the click and the expiry job; the race needs row locks")
    request_id = _request(engine, created_ago=timedelta(minutes=10) - timedelta(seconds=1))
    with Session(engine) as session:
        request = session.get(ApprovalRequest, request_id)
        assert request is not None
        deadline = request.expires_at
    click = Session(engine)  # an approve click half a second before the deadline, not committed
    outcome = service.decide(
        click,
        request_id=request_id,
        user="UBOB",
        decision="approve",
        members_of=lambda group: frozenset(),
        current_plan_hash=None,
        start_run=create_run,
        now=deadline - timedelta(seconds=0.5),
    )
    assert outcome.status == "approved"

    # The expiry job runs at the deadline while the click's transaction is still open.
    with session_scope(engine) as session:
        expired = expiry.expire_due(session, now=deadline + timedelta(seconds=0.1))
    click.commit()
    click.close()

    assert expired == []
    with Session(engine) as session:
        request = session.get(ApprovalRequest, request_id)
        assert request is not None and request.status == "approved"


def test_a_click_on_a_request_of_a_resolved_incident_approves_nothing(engine: Engine) -> None:
    request_id = _request(engine)
    with session_scope(engine) as session:
        request = session.get(ApprovalRequest, request_id)
        assert request is not None and request.incident_id is not None
        resolved = incidents.get(session, incident_id=request.incident_id)
        incidents.resolve(session, incident=resolved, actor="UCAROL", source="slack")

    with pytest.raises(PolicyViolation) as refused, session_scope(engine) as session:
        service.decide(
            session,
            request_id=request_id,
            user="UBOB",
            decision="approve",
            members_of=lambda group: frozenset(),
            current_plan_hash=None,
            start_run=create_run,
        )

    assert str(refused.value) == (
        f"incident #1 is resolved, so rollback request #{request_id} no longer applies; "
        "propose again if fraud-detector still needs it"
    )
    with Session(engine) as session:
        request = session.get(ApprovalRequest, request_id)
        assert request is not None and request.status == "pending"
        assert session.exec(select(ApprovalDecision)).all() == []
