"""What a run's steps mean for its incident and the serving history.

Mitigation is the full shift of the model's traffic to the safe version, verification a
check after it; undoing that shift clears both. A check that fails after the mitigation
escalates the incident rather than undoing the rollback. Every shift of a real run (not a
drill) is recorded as what serves now, and the version it mitigated away from as one that had
an incident.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.incidents import service as incidents
from bot.runs.contracts import Plan
from bot.runs.events import ENGINE_ACTOR, run_event, step_details
from bot.runs.service import FORWARD, SOURCE, steps_of
from bot.safe_versions import MODEL_COMPONENT, mark_incident, record_deployment
from bot.store.models import Incident, RunbookRun, StepRun, StepState

SHIFT_TRAFFIC = "deployer.shift_traffic"


def note_done(
    session: Session, run: RunbookRun, plan: Plan, step: StepRun, *, at: datetime
) -> None:
    """Mitigation is the full shift to the safe version; verification a check after it."""
    if _is_full_shift(step):
        component = step.params.get("component")
        is_model = component in (None, run.model)
        if run.incident_id is not None and _mitigates(step, plan):
            incidents.mark_time(
                session, incident=_incident(session, run), key="mitigated_at", at=at
            )
        if not run.drill:
            _record_deployment(
                session, run, component=None if is_model else component, step=step, at=at
            )
            if run.incident_id is not None and _mitigates(step, plan) and plan.from_version:
                # Rolled away from during an incident: never a safe version again.
                mark_incident(
                    session,
                    model=run.model,
                    version=plan.from_version,
                    incident_id=run.incident_id,
                    actor=ENGINE_ACTOR,
                )
    elif run.incident_id is not None and checks_mitigation(session, run, plan, step):
        incidents.mark_time(session, incident=_incident(session, run), key="verified_at", at=at)


def note_undone(
    session: Session, run: RunbookRun, plan: Plan, undo: StepRun, *, at: datetime
) -> None:
    """Undoing the full shift to the safe version undoes the mitigation: the incident's
    mitigation and verification times no longer hold."""
    if run.incident_id is None:
        return
    forward = steps_of(session, run.id or 0, FORWARD)
    if not any(s.position == undo.position and _mitigates(s, plan) for s in forward):
        return
    incident = _incident(session, run)
    if incident.mitigated_at is None:
        return
    incident.mitigated_at, incident.verified_at = None, None
    session.add(incident)
    run_event(
        session,
        run,
        "incident.unmitigated",
        f"Mitigation undone by {undo.name!r}: traffic is no longer all on version "
        f"{plan.to_version}, so the incident's mitigation time is cleared",
        at=at,
        **step_details(undo),
    )


def checks_mitigation(session: Session, run: RunbookRun, plan: Plan, step: StepRun) -> bool:
    """Whether ``step`` checks the model after its traffic went back to the safe version."""
    if step.phase != FORWARD or not _is_verification(step):
        return False
    done = steps_of(session, run.id or 0, FORWARD)[: step.position]
    return any(s.state == StepState.SUCCEEDED and _mitigates(s, plan) for s in done)


def escalate(session: Session, run: RunbookRun, step: StepRun, *, error: str, at: datetime) -> str:
    """A check after the mitigation failed: raise the incident to at least sev2 and say so.

    Undoing the rollback would put the degraded version back (or, with the metrics down,
    do so on no evidence at all). Returns what failed, in words.
    """
    message = (
        f"verification {step.name!r} failed after traffic went back to version "
        f"{run.to_version}: {error}"
    )
    if run.incident_id is not None:
        incidents.raise_to_sev2(
            session, incident=_incident(session, run), actor=ENGINE_ACTOR, source=SOURCE
        )
    run_event(
        session,
        run,
        "incident.escalated",
        f"Escalated: {message}. The rollback is kept; a person needs to look now.",
        at=at,
        error=error,
        **step_details(step),
    )
    return message


def _is_full_shift(step: StepRun) -> bool:
    return step.action == SHIFT_TRAFFIC and step.params.get("percent", 100) == 100


def _mitigates(step: StepRun, plan: Plan) -> bool:
    component = step.params.get("component")
    return (
        _is_full_shift(step)
        and component in (None, plan.model)
        and _version(step) == plan.to_version
    )


def _version(step: StepRun) -> str | None:
    version = step.params.get("version")
    return None if version is None else str(version)


def _is_verification(step: StepRun) -> bool:
    return step.action == "verify" or step.action.split(".")[-1].startswith("verify")


def _incident(session: Session, run: RunbookRun) -> Incident:
    assert run.incident_id is not None
    return incidents.get(session, incident_id=run.incident_id)


def _record_deployment(
    session: Session, run: RunbookRun, *, component: str | None, step: StepRun, at: datetime
) -> None:
    version = _version(step)
    if version is None:
        return
    record_deployment(
        session,
        model=run.model,
        component=component or MODEL_COMPONENT,
        version=version,
        reason="rollback",
        actor=ENGINE_ACTOR,
        run_id=run.id,
        incident_id=run.incident_id,
        at=at,
    )
