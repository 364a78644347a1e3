"""A degraded verdict becomes an incident, its evidence and a rollback proposal."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.detection.evidence import Decision, format_duration
from bot.detection.watch_state import PROPOSAL_RETRY_SECONDS
from bot.errors import RollbotError
from bot.incidents import service as incidents
from bot.safe_versions import mark_incident
from bot.store.models import ApprovalRequest, Incident
from bot.timeline import record_event
from bot.watches.targets import WatchTarget
from integrations.errors import IntegrationError

log = logging.getLogger(__name__)

ACTOR = "rollbot"
SOURCE = "watch"


class Proposer(Protocol):
    """``bot.proposals.propose_with`` bound to the process's tools."""

    def __call__(
        self,
        session: Session,
        *,
        model: str,
        to_version: str | None,
        requested_by: str,
        via: str,
        reason: str | None,
        evidence: dict[str, Any] | None = None,
        incident_id: int | None = None,
        supersede: bool = True,
        quiet_after: timedelta | None = None,
    ) -> ApprovalRequest: ...


@dataclass(frozen=True)
class DetectionOutcome:
    """What a degraded verdict led to, for notifying after the commit."""

    incident_id: int
    opened: bool
    request_id: int | None
    no_proposal_reason: str | None
    # The proposal failed on an integration (registry, deployer): worth trying again soon.
    retry: bool = False


def degraded_since(decision: Decision, target: WatchTarget) -> datetime:
    """When the excess began: the start of the deciding window, never before the deploy."""
    starts = [
        decision.evaluated_at - evidence.window_seconds
        for evidence in decision.deciding_metrics
        if evidence.window_seconds is not None
    ]
    moment = min(starts) if starts else decision.evaluated_at
    return max(datetime.fromtimestamp(moment, UTC), target.deployed_at)


def decision_details(decision: Decision, target: WatchTarget, baseline_mode: str) -> dict[str, Any]:
    """The numbers behind a verdict, as stored on the timeline and the proposal."""
    return {
        "model": target.model,
        "candidate_version": target.candidate_version,
        "baseline_version": target.baseline_version,
        "baseline_mode": baseline_mode,
        "deployed_at": target.deployed_at.isoformat(),
        **decision.to_dict(),
    }


def record_decision(
    session: Session, *, target: WatchTarget, details: dict[str, Any], incident_id: int | None
) -> None:
    """A ``detection.decision`` event on the model's incident, or the global chain."""
    record_event(
        session,
        incident_id=incident_id,
        kind="detection.decision",
        source=SOURCE,
        actor=ACTOR,
        summary=(
            f"{target.model} {target.candidate_version}: {details['state']} "
            f"({details['explanation']})"
        ),
        details=details,
        occurred_at=datetime.fromtimestamp(details["evaluated_at"], UTC),
    )


def act_on_degraded(
    session: Session,
    *,
    target: WatchTarget,
    decision: Decision,
    details: dict[str, Any],
    proposer: Proposer,
    now: datetime,
) -> DetectionOutcome:
    """Open or join the incident, record the verdict in it and propose the rollback."""
    incident, opened = incidents.open_or_join(
        session,
        model=target.model,
        title=f"{target.model} {target.candidate_version} degraded",
        actor=ACTOR,
        source=SOURCE,
        detected_at=now,
        degraded_at=degraded_since(decision, target),
        details={"candidate_version": target.candidate_version},
    )
    assert incident.id is not None
    # Degraded in production: never a safe version to roll back to. Its deployment rows are
    # written before the timeline, in the order the runbook engine writes them.
    mark_incident(
        session,
        model=target.model,
        version=target.candidate_version,
        incident_id=incident.id,
        actor=ACTOR,
    )
    incidents.mark_time(
        session, incident=incident, key="degraded_at", at=degraded_since(decision, target)
    )
    incidents.mark_time(session, incident=incident, key="detected_at", at=now)
    record_decision(session, target=target, details=details, incident_id=incident.id)
    try:
        request_id, reason = _propose(
            session, target=target, incident=incident, details=details, proposer=proposer
        )
    except IntegrationError as exc:
        retry = format_duration(PROPOSAL_RETRY_SECONDS)
        reason = f"could not prepare the rollback plan ({exc}); trying again in {retry}"
        _record_no_proposal(session, target=target, incident=incident, reason=reason)
        return DetectionOutcome(incident.id, opened, None, reason, retry=True)
    return DetectionOutcome(incident.id, opened, request_id, reason)


def _propose(
    session: Session,
    *,
    target: WatchTarget,
    incident: Incident,
    details: dict[str, Any],
    proposer: Proposer,
) -> tuple[int | None, str | None]:
    try:
        # A savepoint: a refused proposal must leave nothing of itself behind.
        with session.begin_nested():
            request = proposer(
                session,
                model=target.model,
                to_version=None,
                requested_by=ACTOR,
                via=SOURCE,
                reason=details["explanation"],
                evidence=details,
                incident_id=incident.id,
                # Never replace a proposal approvers may be deciding on, whoever made it.
                supersede=False,
                quiet_after=target.watch.cooldown,
            )
    except RollbotError as exc:
        _record_no_proposal(session, target=target, incident=incident, reason=str(exc))
        return None, str(exc)
    except IntegrityError:
        # The database's one-pending-proposal rule, should anything get past the lock.
        reason = f"another proposal for {target.model} was made at the same moment"
        _record_no_proposal(session, target=target, incident=incident, reason=reason)
        return None, reason
    return request.id, None


def _record_no_proposal(
    session: Session, *, target: WatchTarget, incident: Incident, reason: str
) -> None:
    record_event(
        session,
        incident_id=incident.id,
        kind="detection.no_proposal",
        source=SOURCE,
        actor=ACTOR,
        summary=f"No rollback proposed for {target.model}: {reason}",
        details={"reason": reason},
    )
