"""Read the incident's rows (approvals, runs, steps, deployments, events) into facts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, or_, select

from bot.postmortem.facts import (
    ApprovalFact,
    ComponentChange,
    DecisionFact,
    RunFact,
    StepFact,
    TimelineEntry,
    VersionsFact,
)
from bot.store.models import (
    ApprovalDecision,
    ApprovalRequest,
    DeploymentRecord,
    Incident,
    RunbookRun,
    StepRun,
    TimelineEvent,
)


def timeline_events(
    session: Session, *, incident_id: int, kinds: Sequence[str]
) -> list[TimelineEvent]:
    """The incident's events of the given kinds, with their details, in recorded order."""
    return list(
        session.exec(
            select(TimelineEvent)
            .where(TimelineEvent.incident_id == incident_id)
            .where(col(TimelineEvent.kind).in_(kinds))
            .order_by(col(TimelineEvent.seq))
        ).all()
    )


def timeline(session: Session, *, incident_id: int) -> tuple[TimelineEntry, ...]:
    """Every event of the incident in the order it happened, without details.

    Reads plain columns rather than whole rows: an incident can hold tens of thousands of
    events, and their JSON details are not listed.
    """
    rows = session.execute(
        sa_select(
            col(TimelineEvent.occurred_at),
            col(TimelineEvent.kind),
            col(TimelineEvent.source),
            col(TimelineEvent.actor),
            col(TimelineEvent.summary),
            col(TimelineEvent.pinned),
        )
        .where(col(TimelineEvent.incident_id) == incident_id)
        # Events can be recorded after the fact (evidence, corrected times): list by time.
        .order_by(col(TimelineEvent.occurred_at), col(TimelineEvent.seq))
    ).all()
    return tuple(TimelineEntry(*row) for row in rows)


def approval_requests(session: Session, *, incident_id: int) -> list[ApprovalRequest]:
    """The incident's proposals, oldest first."""
    return list(
        session.exec(
            select(ApprovalRequest)
            .where(ApprovalRequest.incident_id == incident_id)
            .order_by(col(ApprovalRequest.created_at), col(ApprovalRequest.id))
        ).all()
    )


def approval_facts(session: Session, requests: list[ApprovalRequest]) -> tuple[ApprovalFact, ...]:
    """Each proposal with every approve and reject on it."""
    ids = [request.id for request in requests]
    decisions = session.exec(
        select(ApprovalDecision)
        .where(col(ApprovalDecision.request_id).in_(ids))
        .order_by(col(ApprovalDecision.decided_at), col(ApprovalDecision.id))
    ).all()
    by_request: dict[int, list[DecisionFact]] = {}
    for decision in decisions:
        by_request.setdefault(decision.request_id, []).append(
            DecisionFact(
                approver=decision.approver,
                decision=decision.decision,
                at=decision.decided_at,
                comment=decision.comment,
            )
        )
    return tuple(
        ApprovalFact(
            request_id=request.id or 0,
            requested_by=request.requested_by,
            requested_at=request.created_at,
            from_version=request.from_version,
            to_version=request.to_version,
            runbook=request.runbook,
            status=request.status,
            decided_at=request.decided_at,
            reason=request.reason,
            decisions=tuple(by_request.get(request.id or 0, [])),
        )
        for request in requests
    )


def run_facts(session: Session, *, incident_id: int) -> tuple[RunFact, ...]:
    """The incident's runbook runs with their steps, forward steps before compensations."""
    runs = session.exec(
        select(RunbookRun)
        .where(RunbookRun.incident_id == incident_id)
        .order_by(col(RunbookRun.created_at), col(RunbookRun.id))
    ).all()
    ids = [run.id for run in runs]
    steps = session.exec(
        select(StepRun)
        .where(col(StepRun.run_id).in_(ids))
        .order_by(col(StepRun.run_id), col(StepRun.phase).desc(), col(StepRun.position))
    ).all()
    by_run: dict[int, list[StepFact]] = {}
    for step in steps:
        by_run.setdefault(step.run_id, []).append(_step_fact(step))
    return tuple(
        RunFact(
            run_id=run.id or 0,
            runbook=run.runbook,
            from_version=run.from_version,
            to_version=run.to_version,
            status=run.status,
            drill=run.drill,
            started_at=run.started_at,
            finished_at=run.finished_at,
            error=run.error,
            steps=tuple(by_run.get(run.id or 0, [])),
        )
        for run in runs
    )


def versions_fact(
    session: Session,
    *,
    incident: Incident,
    requests: list[ApprovalRequest],
    runs: tuple[RunFact, ...],
) -> VersionsFact:
    """Which version degraded, which was restored, and every component that moved."""
    degraded = incident.from_version or _first(
        [r.from_version for r in requests] + [r.from_version for r in runs]
    )
    succeeded = [run.to_version for run in runs if run.status == "succeeded"]
    restored = incident.to_version or _first(succeeded)
    return VersionsFact(
        degraded=degraded,
        restored=restored,
        deployed_at=_deployed_at(session, incident=incident, version=degraded),
        changes=_changes(session, incident_id=incident.id or 0, run_ids=[r.run_id for r in runs]),
    )


def _step_fact(step: StepRun) -> StepFact:
    seconds = None
    if step.started_at and step.finished_at:
        seconds = (step.finished_at - step.started_at).total_seconds()
    return StepFact(
        phase=step.phase,
        position=step.position,
        name=step.name,
        action=step.action,
        state=step.state,
        attempts=step.attempt,
        started_at=step.started_at,
        finished_at=step.finished_at,
        seconds=seconds,
        error=step.error,
    )


def _deployed_at(session: Session, *, incident: Incident, version: str | None) -> datetime | None:
    if incident.model is None or version is None:
        return None
    record = session.exec(
        select(DeploymentRecord)
        .where(DeploymentRecord.model == incident.model)
        .where(DeploymentRecord.component == "model")
        .where(DeploymentRecord.version == version)
        .where(DeploymentRecord.started_at <= (incident.detected_at or incident.created_at))
        .order_by(col(DeploymentRecord.started_at).desc())
    ).first()
    return record.started_at if record else None


def _changes(
    session: Session, *, incident_id: int, run_ids: list[int]
) -> tuple[ComponentChange, ...]:
    condition = col(DeploymentRecord.incident_id) == incident_id
    if run_ids:
        condition = or_(condition, col(DeploymentRecord.run_id).in_(run_ids))
    records = session.exec(
        select(DeploymentRecord).where(condition).order_by(col(DeploymentRecord.started_at))
    ).all()
    return tuple(
        ComponentChange(
            component=record.component,
            from_version=_previous_version(session, record),
            to_version=record.version,
            at=record.started_at,
            reason=record.reason,
        )
        for record in records
    )


def _previous_version(session: Session, record: DeploymentRecord) -> str | None:
    previous = session.exec(
        select(DeploymentRecord.version)
        .where(DeploymentRecord.model == record.model)
        .where(DeploymentRecord.component == record.component)
        .where(DeploymentRecord.started_at < record.started_at)
        .order_by(col(DeploymentRecord.started_at).desc())
    ).first()
    return previous


def _first(values: Sequence[str | None]) -> str | None:
    return next((value for value in values if value), None)
