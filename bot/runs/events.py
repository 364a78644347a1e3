"""A run's events on its incident's timeline: who acted, and how steps are named."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.runs.service import COMPENSATION, SOURCE
from bot.store.models import RunbookRun, StepRun
from bot.timeline import record_event

ENGINE_ACTOR = "rollbot"


def label(step: StepRun, total: int) -> str:
    """How a step is named on the timeline."""
    if step.phase == COMPENSATION:
        return f"Compensation {step.name!r} (for step {step.position + 1})"
    return f"Step {step.position + 1}/{total} {step.name!r}"


def run_event(
    session: Session,
    run: RunbookRun,
    kind: str,
    summary: str,
    *,
    at: datetime,
    actor: str = ENGINE_ACTOR,
    **details: Any,
) -> None:
    """An event of the run on its incident's timeline (the global chain without one)."""
    record_event(
        session,
        incident_id=run.incident_id,
        kind=kind,
        source=SOURCE,
        actor=actor,
        summary=summary,
        details={"run_id": run.id, **details},
        occurred_at=at,
    )


def step_details(step: StepRun) -> dict[str, Any]:
    """Where a step stands in its run, for an event's details."""
    return {"phase": step.phase, "position": step.position, "action": step.action}
