"""A recorded incident on a fixed clock, built through the real domain functions and tables.

Stages can be cut short to get the incidents a postmortem must still read well for: a
rejected proposal, a failed run, a manual resolution, no metrics at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlmodel import Session, col, select

from bot.incidents import service as incidents
from bot.store.models import (
    ApprovalDecision,
    ApprovalRequest,
    DeploymentRecord,
    Incident,
    IncidentStatus,
    RunbookRun,
    StepRun,
)
from bot.timeline import record_event

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
GENERATED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MODEL = "fraud-scorer"
Ending = Literal["full", "rejected", "failed", "manual", "no_metrics"]


def at(minutes: float) -> datetime:
    """The fixed clock, ``minutes`` after the deploy of the degraded version."""
    return T0 + timedelta(minutes=minutes)


def decision(state: str, *, rate: float, evaluated: datetime) -> dict[str, Any]:
    """Stored details of a ``detection.decision``, as the watch writes them."""
    return {
        "model": MODEL,
        "candidate_version": "5",
        "baseline_version": "4",
        "state": state,
        "evaluated_at": evaluated.timestamp(),
        "explanation": f"error rate {rate:.1%} vs baseline 1.0% (limit 1.5%) → {state}",
        "metrics": [
            {
                "metric": "error_rate",
                "label": "error rate",
                "state": state,
                "summary": f"error rate {rate:.1%} vs baseline 1.0%",
                "baseline_value": 0.01,
                "candidate_value": rate,
                "ratio_to_baseline": rate / 0.01,
                "boundary": "1.5× baseline",
                "limit_value": 0.015,
                "window_seconds": 600.0,
                "sample_count": 3000.0,
                "event_count": 3000.0 * rate,
                "p_value": 1e-7,
                "blip_robust": True,
            },
            {
                "metric": "latency_p99_seconds",
                "label": "p99 latency",
                "state": "healthy",
                "summary": "p99 latency 0.22 s vs baseline 0.21 s",
                "baseline_value": 0.21,
                "candidate_value": 0.22,
                "limit_value": 0.273,
            },
        ],
    }


@dataclass
class RecordedIncident:
    """Ids of what was recorded."""

    incident_id: int
    request_id: int | None
    run_id: int | None


def record_incident(session: Session, *, ending: Ending = "full") -> RecordedIncident:
    """Deploy 5 over 4, degrade, detect, propose, decide, run, resolve; commit."""
    _deploy_history(session)
    incident = _detect(session, with_metrics=ending != "no_metrics")
    assert incident.id is not None
    _acknowledge(session, incident, at(13))
    request_id = run_id = None
    if ending != "manual":
        request_id = _propose(
            session, incident, rejected=ending == "rejected", evidence=ending != "no_metrics"
        )
    if ending in ("full", "failed", "no_metrics"):
        assert request_id is not None
        run_id = _run(session, incident, request_id, fail=ending == "failed")
    incidents.add_note(
        session,
        incident=incident,
        text="Feature store lag was also seen on the dashboard | around 10:05",
        actor="carol",
        source="slack",
        occurred_at=at(17),
        pinned=True,
    )
    incidents.add_note(
        session,
        incident=incident,
        text="Looking at it",
        actor="dave",
        source="slack",
        occurred_at=at(14),
    )
    if ending == "full":
        _verify(session, incident)
    _resolve(session, incident, manual=ending in ("manual", "rejected", "failed"))
    session.commit()
    return RecordedIncident(incident.id, request_id, run_id)


def _deploy_history(session: Session) -> None:
    before = T0 - timedelta(days=2)
    for component, old, new in (("model", "4", "5"), ("features", "12", "13")):
        session.add(
            DeploymentRecord(
                model=MODEL, component=component, version=old, started_at=before, ended_at=T0
            )
        )
        session.add(
            DeploymentRecord(
                model=MODEL, component=component, version=new, started_at=T0, actor="ci"
            )
        )
    session.flush()


def _detect(session: Session, *, with_metrics: bool) -> Incident:
    incident, _ = incidents.open_or_join(
        session,
        model=MODEL,
        title=f"{MODEL} 5 degraded",
        actor="rollbot",
        source="watch",
        severity="sev2",
        detected_at=at(10),
        degraded_at=at(2) if with_metrics else None,
        details={"candidate_version": "5"},
    )
    incident.from_version = "5"
    incident.created_at = at(10)
    if with_metrics:
        for minutes, state, rate in (
            (6, "suspect", 0.016),
            (8, "suspect", 0.024),
            (10, "degraded", 0.031),
        ):
            evaluated = at(minutes)
            record_event(
                session,
                incident_id=incident.id,
                kind="detection.decision",
                source="watch",
                actor="rollbot",
                summary=f"{MODEL} 5: {state}",
                details=decision(state, rate=rate, evaluated=evaluated),
                occurred_at=evaluated,
            )
    return incident


def _acknowledge(session: Session, incident: Incident, moment: datetime) -> None:
    incidents.mark_time(session, incident=incident, key="acknowledged_at", at=moment)
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.acknowledged",
        source="slack",
        actor="alice",
        summary="Acknowledged by alice",
        occurred_at=moment,
    )


def _propose(session: Session, incident: Incident, *, rejected: bool, evidence: bool) -> int:
    request = ApprovalRequest(
        incident_id=incident.id,
        model=MODEL,
        from_version="5",
        to_version="4",
        runbook="staged-rollback",
        plan_hash="p" * 64,
        policy_name="default",
        evidence=decision("degraded", rate=0.031, evaluated=at(10)) if evidence else {},
        requested_by="rollbot",
        created_at=at(10),
        expires_at=at(40),
    )
    session.add(request)
    session.flush()
    assert request.id is not None
    record_event(
        session,
        incident_id=incident.id,
        kind="rollback.proposed",
        source="watch",
        actor="rollbot",
        summary="Rollback 5 → 4 proposed (staged-rollback)",
        occurred_at=at(10),
    )
    verdict = "reject" if rejected else "approve"
    outcome = "rejected" if rejected else "approved"
    session.add(
        ApprovalDecision(
            request_id=request.id,
            approver="bob",
            decision=verdict,
            plan_hash=request.plan_hash,
            comment="the features rollback needs a look first" if rejected else "evidence is clear",
            decided_at=at(15),
        )
    )
    request.status = outcome
    request.decided_at = at(15)
    if not rejected:
        incidents.mark_time(session, incident=incident, key="approved_at", at=at(15))
    record_event(
        session,
        incident_id=incident.id,
        kind=f"approval.{outcome}",
        source="slack",
        actor="bob",
        summary=f"Rollback {outcome} by bob",
        occurred_at=at(15),
        details={"approver": "bob", "request_id": request.id},
    )
    return request.id


_STEPS = (
    ("pin registry alias", "registry.set_alias", 4, 1, None),
    ("roll back feature pipeline", "deployer.rollback", 30, 1, "features"),
    ("shift 50% of traffic", "deployer.shift_traffic", 60, 1, None),
    ("shift 100% of traffic", "deployer.shift_traffic", 45, 2, "model"),
    ("verify metrics", "metrics.verify", 240, 1, None),
)


def _run(session: Session, incident: Incident, request_id: int, *, fail: bool) -> int:
    run = RunbookRun(
        incident_id=incident.id,
        approval_request_id=request_id,
        model=MODEL,
        runbook="staged-rollback",
        plan_hash="p" * 64,
        from_version="5",
        to_version="4",
        status="running",
        created_at=at(16),
        started_at=at(16),
    )
    session.add(run)
    session.flush()
    assert run.id is not None
    record_event(
        session,
        incident_id=incident.id,
        kind="run.started",
        source="engine",
        actor="rollbot",
        summary="Runbook staged-rollback started",
        occurred_at=at(16),
    )
    clock = at(16)
    for position, (name, action, seconds, attempts, moves) in enumerate(_STEPS):
        failed = fail and position == 2
        end = clock + timedelta(seconds=seconds)
        session.add(
            StepRun(
                run_id=run.id,
                position=position,
                name=name,
                action=action,
                state="failed" if failed else "succeeded",
                attempt=attempts,
                error="deployer timed out after 3 attempts" if failed else None,
                started_at=clock,
                finished_at=end,
            )
        )
        kind = "step.failed" if failed else "step.succeeded"
        record_event(
            session,
            incident_id=incident.id,
            kind=kind,
            source="engine",
            actor="rollbot",
            summary=f"Step {position + 1} {name}: {kind[5:]}",
            occurred_at=end,
            details={"step": name, "action": action},
        )
        if failed:
            run.status, run.finished_at, run.error = "failed", end, "step 3 failed"
            record_event(
                session,
                incident_id=incident.id,
                kind="run.failed",
                source="engine",
                actor="rollbot",
                summary="Runbook staged-rollback failed",
                occurred_at=end,
            )
            return run.id
        if moves:
            _move(session, moves, "12" if moves == "features" else "4", end, incident, run.id)
            if moves == "model":
                incidents.mark_time(session, incident=incident, key="mitigated_at", at=end)
        clock = end
    run.status, run.finished_at = "succeeded", clock
    incident.to_version = "4"
    record_event(
        session,
        incident_id=incident.id,
        kind="run.succeeded",
        source="engine",
        actor="rollbot",
        summary="Runbook staged-rollback succeeded",
        occurred_at=clock,
    )
    return run.id


def _move(
    session: Session,
    component: str,
    version: str,
    moment: datetime,
    incident: Incident,
    run_id: int,
) -> None:
    current = session.exec(
        select(DeploymentRecord)
        .where(DeploymentRecord.model == MODEL)
        .where(DeploymentRecord.component == component)
        .where(col(DeploymentRecord.ended_at).is_(None))
    ).all()
    for record in current:
        record.ended_at = moment
    session.flush()
    session.add(
        DeploymentRecord(
            model=MODEL,
            component=component,
            version=version,
            started_at=moment,
            reason="rollback",
            actor="rollbot",
            incident_id=incident.id,
            run_id=run_id,
        )
    )
    session.flush()


def _verify(session: Session, incident: Incident) -> None:
    incidents.mark_time(session, incident=incident, key="verified_at", at=at(24))
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.verified",
        source="watch",
        actor="rollbot",
        summary="Metrics back within boundaries on version 4",
        occurred_at=at(24),
    )


def _resolve(session: Session, incident: Incident, *, manual: bool) -> None:
    incident.status = IncidentStatus.RESOLVED
    incidents.mark_time(session, incident=incident, key="resolved_at", at=at(40))
    how = "resolved by hand after a manual redeploy of version 4" if manual else "resolved"
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.resolved",
        source="slack",
        actor="alice",
        summary=f"Incident {how}",
        occurred_at=at(40),
    )
