"""Calling an action once: under the step's deadline, with its errors mapped for the timeline."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from bot.errors import RollbotError
from bot.runs.contracts import Action, StepContext
from bot.runs.retry import DeadlineExceeded, call_with_deadline
from bot.runs.service import COMPENSATION
from bot.store.models import StepRun
from integrations.errors import IntegrationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepFailure:
    """Why an attempt failed, in words safe to store, and whether trying again may help."""

    error: str
    retryable: bool
    outcome_unknown: bool = False  # the call may have landed (a timeout)
    retry_after: float | None = None


def perform(
    action: Action,
    params: BaseModel,
    context: StepContext,
    *,
    key: str,
    step: StepRun,
    timeout: float,
) -> dict[str, Any] | StepFailure:
    """The action's output as plain JSON, or why it failed.

    An undo first waits (up to half its own deadline) for a timed-out call of the step it
    undoes, so that a late landing does not follow its undo.
    """
    if step.phase == COMPENSATION:
        timeout -= _wait_for_late_call(step, seconds=timeout / 2)
    try:
        output = call_with_deadline(
            lambda: action.execute(context, params, idempotency_key=key),
            seconds=timeout,
            name=step.name,
        )
    except DeadlineExceeded as exc:
        if step.phase != COMPENSATION:
            _LATE_CALLS[(step.run_id, step.position)] = exc.finished
        return StepFailure(f"{step.action} {exc}", retryable=True, outcome_unknown=True)
    except IntegrationError as exc:
        return StepFailure(str(exc), retryable=exc.retryable, retry_after=exc.retry_after)
    except RollbotError as exc:  # written for people, e.g. a verification's numbers
        return StepFailure(str(exc), retryable=False)
    except Exception as exc:
        # Not a mapped error, so its text may hold anything (even a secret): log it only.
        log.exception("run #%s: step %r raised", step.run_id, step.name)
        return StepFailure(
            f"unexpected {type(exc).__name__} in {step.action} (details in the worker log)",
            retryable=False,
        )
    if step.phase != COMPENSATION:
        # It went through with the same key: an earlier, abandoned call needs no waiting for.
        _LATE_CALLS.pop((step.run_id, step.position), None)
    # What the database will hand back later: plain JSON.
    return dict(json.loads(json.dumps(output or {}, default=str)))


# Forward calls abandoned at their deadline and maybe still running, by (run, position).
_LATE_CALLS: dict[tuple[int, int], threading.Event] = {}


def _wait_for_late_call(step: StepRun, *, seconds: float) -> float:
    """Wait for the abandoned call of the step ``step`` undoes; the seconds it took."""
    finished = _LATE_CALLS.pop((step.run_id, step.position), None)
    if finished is None:
        return 0.0
    started = time.monotonic()
    if not finished.wait(seconds):
        log.warning(
            "run #%s: undoing %r while the call it undoes still runs", step.run_id, step.name
        )
    return time.monotonic() - started


def reconcile_effect(
    action: Action | None, step: StepRun, context: StepContext, *, timeout: float
) -> dict[str, Any] | None:
    """After a crash mid-step: the effect's output if it is in place, None to redo it."""
    if action is None:
        return None
    try:
        params = action.params_model.model_validate(step.params)
        output = call_with_deadline(
            lambda: action.reconcile(context, params),
            seconds=timeout,
            name=f"reconcile-{step.name}",
        )
    except Exception:
        # Unknown counts as "not in place": the redo keeps the crashed attempt's key.
        log.warning("run #%s: could not reconcile step %r", step.run_id, step.name, exc_info=True)
        return None
    return None if output is None else dict(json.loads(json.dumps(output, default=str)))
