"""Approval requests and decisions; each change writes its timeline event in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.approvals.policy import (
    MembersOf,
    PolicySnapshot,
    check_approver,
    check_not_expired,
    check_plan_unchanged,
    is_approver,
    quorum_met,
)
from bot.errors import NotFoundError, PolicyViolation
from bot.incidents import service as incidents
from bot.runs.contracts import Plan
from bot.store.models import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    Incident,
    IncidentStatus,
)
from bot.store.types import utcnow
from bot.timeline import record_event

Decision = Literal["approve", "reject"]
RunStarter = Callable[..., Any]
"""``create_run(session, *, plan, incident_id, approval_request_id, requested_by)`` → run."""


@dataclass(frozen=True)
class ClickOutcome:
    """What one approve/reject click did, and what to tell the person who clicked."""

    request_id: int
    counted: bool
    status: str
    message: str
    run_id: int | None = None


def get(session: Session, *, request_id: int, lock: bool = False) -> ApprovalRequest:
    """The request, or NotFoundError; ``lock`` serialises concurrent deciders on PostgreSQL
    (and re-reads the row, which another transaction may have changed meanwhile)."""
    query = select(ApprovalRequest).where(ApprovalRequest.id == request_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    request = session.exec(query).first()
    if request is None:
        raise NotFoundError(f"approval request {request_id} does not exist")
    return request


def decisions(session: Session, *, request_id: int) -> list[ApprovalDecision]:
    """Every decision on the request, oldest first."""
    return list(
        session.exec(
            select(ApprovalDecision)
            .where(ApprovalDecision.request_id == request_id)
            .order_by(col(ApprovalDecision.id))
        ).all()
    )


def pending_for_model(session: Session, *, model: str) -> list[ApprovalRequest]:
    """The model's requests still awaiting a decision."""
    return list(
        session.exec(
            select(ApprovalRequest)
            .where(ApprovalRequest.model == model)
            .where(ApprovalRequest.status == ApprovalStatus.PENDING)
        ).all()
    )


def create_request(
    session: Session,
    *,
    plan: Plan,
    incident: Incident,
    policy_name: str,
    policy: PolicySnapshot,
    evidence: dict[str, Any],
    requested_by: str,
    via: str,
    reason: str | None,
    now: datetime | None = None,
    requested_version: str | None = None,
) -> ApprovalRequest:
    """Record a proposal bound to the exact plan, under a snapshot of the policy.

    ``requested_version`` is the target the requester named, None when Rollbot chose it.
    """
    now = now or utcnow()
    request = ApprovalRequest(
        incident_id=incident.id,
        model=plan.model,
        from_version=plan.from_version,
        to_version=plan.to_version,
        requested_version=requested_version,
        runbook=plan.runbook,
        plan=plan.model_dump(mode="json"),
        plan_hash=plan.hash(),
        policy_name=policy_name,
        policy=policy.to_dict(),
        evidence=evidence,
        requested_by=requested_by,
        requested_via=via,
        reason=reason,
        created_at=now,
        expires_at=now + policy.expires_after,
    )
    session.add(request)
    session.flush()
    record_event(
        session,
        incident_id=incident.id,
        kind="rollback.proposed",
        source=via,
        actor=requested_by,
        summary=(
            f"Rollback of {plan.model} from {plan.from_version or '?'} to {plan.to_version} "
            f"proposed ({plan.runbook}, {len(plan.steps)} steps)"
            + (f": {reason}" if reason else "")
        ),
        details={"request_id": request.id, "plan_hash": request.plan_hash, "policy": policy_name},
        occurred_at=now,
    )
    return request


def cancel_for_incident(
    session: Session, *, incident_id: int, actor: str | None, source: str, why: str
) -> list[int]:
    """Withdraw the incident's pending requests (it was resolved); their ids."""
    pending = session.exec(
        select(ApprovalRequest)
        .where(ApprovalRequest.incident_id == incident_id)
        .where(ApprovalRequest.status == ApprovalStatus.PENDING)
        .with_for_update()
    ).all()
    for request in pending:
        cancel(session, request=request, actor=actor, source=source, why=why)
    return [request.id for request in pending if request.id is not None]


def cancel(
    session: Session, *, request: ApprovalRequest, actor: str | None, source: str, why: str
) -> None:
    """Withdraw a pending request (superseded by a new proposal, for example)."""
    finish(session, request=request, status=ApprovalStatus.CANCELLED, at=utcnow())
    record_event(
        session,
        incident_id=request.incident_id,
        kind="approval.cancelled",
        source=source,
        actor=actor,
        summary=f"Rollback request #{request.id} cancelled: {why}",
        details={"request_id": request.id},
    )


def decide(
    session: Session,
    *,
    request_id: int,
    user: str,
    decision: Decision,
    members_of: MembersOf,
    current_plan_hash: str | None,
    start_run: RunStarter,
    source: str = "slack",
    now: datetime | None = None,
) -> ClickOutcome:
    """Apply one click under the request's policy; refusals raise PolicyViolation."""
    now = now or utcnow()
    request = get(session, request_id=request_id)
    incident = None
    if request.incident_id is not None:
        # The incident first, then the request: the order proposals and resolving take.
        incident = incidents.lock(session, incident_id=request.incident_id)
    request = get(session, request_id=request_id, lock=True)
    assert request.id is not None
    if request.status != ApprovalStatus.PENDING:
        raise PolicyViolation(f"rollback request #{request.id} is already {request.status}")
    if incident is not None and incident.status == IncidentStatus.RESOLVED:
        raise PolicyViolation(
            f"incident #{incident.id} is resolved, so rollback request #{request.id} no longer "
            f"applies; propose again if {request.model} still needs it"
        )
    check_not_expired(expires_at=request.expires_at, now=now)
    policy = PolicySnapshot.from_dict(request.policy)
    if decision == "reject":
        # The requester may always withdraw; anyone else rejecting must be an approver.
        if user != request.requested_by and not is_approver(user, policy, members_of):
            raise PolicyViolation("you are not an approver for this rollback")
        return _reject(session, request=request, user=user, source=source, now=now)
    check_approver(
        user=user, requested_by=request.requested_by, policy=policy, members_of=members_of
    )
    if current_plan_hash is not None:
        check_plan_unchanged(
            approved_hash=request.plan_hash, current_hash=current_plan_hash, model=request.model
        )
    if not _record_decision(session, request=request, user=user, decision="approve", now=now):
        return ClickOutcome(request.id, False, request.status, "You already approved this.")
    _acknowledge(session, request=request, user=user, source=source, now=now)
    record_event(
        session,
        incident_id=request.incident_id,
        kind="approval.approved",
        source=source,
        actor=user,
        summary=f"<@{user}> approved the rollback of {request.model} to {request.to_version}",
        details={"request_id": request.id, "plan_hash": request.plan_hash},
        occurred_at=now,
    )
    given = approvers(session, request=request)
    if not quorum_met(given, policy):
        left = policy.approvals - len(given)
        return ClickOutcome(
            request.id, True, request.status, f"Approval recorded; {left} more needed."
        )
    run_id = _grant(
        session, request=request, user=user, source=source, now=now, start_run=start_run
    )
    return ClickOutcome(request.id, True, request.status, "Approved: the rollback starts.", run_id)


def _acknowledge(
    session: Session, *, request: ApprovalRequest, user: str, source: str, now: datetime
) -> None:
    if request.incident_id is not None:
        incident = incidents.get(session, incident_id=request.incident_id)
        incidents.note_response(session, incident=incident, actor=user, source=source, at=now)


def approval_gap(session: Session, *, request_id: int, plan_hash: str) -> str | None:
    """Why request #id does not cover the plan with this hash, or None when it does.

    Covering means approved, for exactly this plan, by as many distinct approvers of this plan
    as the request's policy demands; the engine asks right before it acts, so a status set by
    hand or by a bug cannot stand in for the approvals themselves.
    """
    request = session.get(ApprovalRequest, request_id)
    if request is None:
        return f"approval request #{request_id} no longer exists"
    if request.status != ApprovalStatus.APPROVED:
        return f"approval request #{request_id} is {request.status}, not approved"
    if request.plan_hash != plan_hash:
        return f"approval request #{request_id} was given for a different plan"
    policy = PolicySnapshot.from_dict(request.policy)
    given = approvers(session, request=request)
    if not quorum_met(given, policy):
        return (
            f"approval request #{request_id} has {len(given)} of the {policy.approvals} "
            "approvals its policy demands"
        )
    return None


def approvers(session: Session, *, request: ApprovalRequest) -> set[str]:
    """Who approved the request's plan (distinct people; a reject counts for nothing)."""
    return {
        d.approver
        for d in decisions(session, request_id=request.id or 0)
        if d.decision == "approve" and d.plan_hash == request.plan_hash
    }


def _record_decision(
    session: Session, *, request: ApprovalRequest, user: str, decision: Decision, now: datetime
) -> bool:
    """Insert the decision; False when this person has decided already (a double click)."""
    assert request.id is not None
    existing = session.exec(
        select(ApprovalDecision)
        .where(ApprovalDecision.request_id == request.id)
        .where(ApprovalDecision.approver == user)
    ).first()
    if existing is not None:
        return False
    row = ApprovalDecision(
        request_id=request.id,
        approver=user,
        decision=decision,
        plan_hash=request.plan_hash,
        decided_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # The same person's other click won the race; theirs is the one that counts.
        return False
    return True


def _reject(
    session: Session, *, request: ApprovalRequest, user: str, source: str, now: datetime
) -> ClickOutcome:
    assert request.id is not None
    if not _record_decision(session, request=request, user=user, decision="reject", now=now):
        return ClickOutcome(request.id, False, request.status, "You already decided on this.")
    _acknowledge(session, request=request, user=user, source=source, now=now)
    finish(session, request=request, status=ApprovalStatus.REJECTED, at=now)
    record_event(
        session,
        incident_id=request.incident_id,
        kind="approval.rejected",
        source=source,
        actor=user,
        summary=f"<@{user}> rejected the rollback of {request.model} to {request.to_version}",
        details={"request_id": request.id},
        occurred_at=now,
    )
    return ClickOutcome(request.id, True, request.status, "Rejected: nothing will run.")


def _grant(
    session: Session,
    *,
    request: ApprovalRequest,
    user: str,
    source: str,
    now: datetime,
    start_run: RunStarter,
) -> int | None:
    finish(session, request=request, status=ApprovalStatus.APPROVED, at=now)
    record_event(
        session,
        incident_id=request.incident_id,
        kind="approval.granted",
        source=source,
        actor=user,  # whose approval completed the quorum
        summary=f"Rollback of {request.model} to {request.to_version} approved",
        details={"request_id": request.id},
        occurred_at=now,
    )
    if request.incident_id is not None:
        incident = incidents.get(session, incident_id=request.incident_id)
        incidents.mark_time(session, incident=incident, key="approved_at", at=now)
    run = start_run(
        session,
        plan=Plan.model_validate(request.plan),
        incident_id=request.incident_id,
        approval_request_id=request.id,
        requested_by=request.requested_by,
    )
    run_id = getattr(run, "id", None)
    return int(run_id) if run_id is not None else None


def finish(session: Session, *, request: ApprovalRequest, status: str, at: datetime) -> None:
    """Close the request in ``status`` (not its event: each caller records its own)."""
    request.status = status
    request.decided_at = at
    session.add(request)
