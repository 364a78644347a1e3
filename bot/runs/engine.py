"""The durable runbook engine: execute a run's steps so that a crash loses nothing.

Every step is committed as ``running`` before its action is called and as finished after,
each change with its timeline event. A step found ``running`` on resume was interrupted
mid-action: the action's ``reconcile`` says whether its effect is in place (the step then
succeeds without acting again) or not (the step is redone). A finished step never runs again.

Idempotency keys: ``run-{id}-step-{phase}-{position}-attempt-{n}``, ``n`` being the attempt
that minted the key. A key stays on the step until a definite answer frees it: a redo after
a crash or a timeout (outcome unknown) carries the same key, so an integration that did
apply the first call treats the second as a duplicate; after a definite failure the next
attempt mints a fresh key.

Timeouts: the action runs in a worker thread and the engine stops waiting after the step's
``timeout_seconds`` (see :func:`bot.runs.retry.call_with_deadline`); the overrun counts as a
retryable failure with an unknown outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.errors import NotFoundError, RollbotError
from bot.runs import incident_effects, leases, transitions
from bot.runs.attempts import StepFailure, perform, reconcile_effect
from bot.runs.contracts import Action, OnFailure, Plan, PlanStep, StepContext
from bot.runs.retry import backoff_delay, full_jitter
from bot.runs.service import COMPENSATION, FORWARD, approval_problem, steps_of, unfinished
from bot.runs.service import request_abort as request_run_abort
from bot.store.db import session_scope
from bot.store.models import RunbookRun, RunStatus, StepRun, StepState
from bot.store.types import utcnow

log = logging.getLogger(__name__)


class RunObserver(Protocol):
    """Told about progress after each change is committed (the Slack layer posts it)."""

    def on_step_started(self, run: RunbookRun, step: StepRun) -> None: ...

    def on_step_finished(self, run: RunbookRun, step: StepRun) -> None: ...

    def on_run_finished(self, run: RunbookRun) -> None: ...


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands after the engine let go of it."""

    run_id: int
    status: str
    resume_at: datetime | None = None  # set while parked, waiting out a retry backoff

    @property
    def finished(self) -> bool:
        """Whether the run reached an end state."""
        return self.status not in RunStatus.active()


def idempotency_key(run_id: int, step: StepRun, *, attempt: int) -> str:
    """The key an attempt's integration calls carry."""
    return f"run-{run_id}-step-{step.phase}-{step.position}-attempt-{attempt}"


class RunEngine:
    """Execute runs from the database; any number of engines may share one database."""

    def __init__(
        self,
        db_engine: Engine,
        *,
        actions: Mapping[str, Action],
        context_for: Callable[[RunbookRun], StepContext],
        worker_id: str,
        lease: timedelta,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        observer: RunObserver | None = None,
        jitter: Callable[[float], float] = full_jitter,
        max_inline_wait: timedelta = timedelta(seconds=30),
    ) -> None:
        self._db = db_engine
        self._actions = actions
        self._context_for = context_for
        self._worker_id = worker_id
        self._lease = lease
        self._clock = clock
        self._sleep = sleep
        self._observer = observer
        self._jitter = jitter
        # Longer backoffs park the run instead of holding a worker thread while it waits.
        self._max_inline_wait = max_inline_wait.total_seconds()

    def execute(self, run_id: int) -> RunProgress:
        """Run until the run finishes or parks for a retry; a run held elsewhere is left alone."""
        with session_scope(self._db) as session:
            claimed = leases.claim(
                session,
                run_id=run_id,
                worker_id=self._worker_id,
                now=self._clock(),
                lease=self._lease,
            )
        if not claimed:
            return self._progress(run_id)
        return self._execute_claimed(run_id)

    def resume_unfinished(self) -> list[RunProgress]:
        """Claim and execute every active run whose lease has run out (new runs included)."""
        seen: set[int] = set()
        results: list[RunProgress] = []
        while True:
            with session_scope(self._db) as session:
                run_id = leases.claim_next_due(
                    session,
                    worker_id=self._worker_id,
                    now=self._clock(),
                    lease=self._lease,
                    skip=seen,
                )
            if run_id is None:
                return results
            seen.add(run_id)
            try:
                results.append(self._execute_claimed(run_id))
            except Exception:  # one broken run must not hold up the others
                log.exception("run #%s: execution stopped by an unexpected error", run_id)

    def request_abort(self, session: Session, *, run_id: int, actor: str) -> RunbookRun:
        """Ask a run to stop after its current step and compensate (see the service)."""
        return request_run_abort(session, run_id=run_id, actor=actor)

    def _execute_claimed(self, run_id: int) -> RunProgress:
        try:
            return self._drive(run_id)
        except leases.LeaseLost:
            log.warning("run #%s: lease lost to another worker; leaving the run to it", run_id)
            return self._progress(run_id)

    def _drive(self, run_id: int) -> RunProgress:
        with self._holding(run_id) as (session, run):
            plan = Plan.model_validate(run.plan)
            problem = None
            if run.status != RunStatus.COMPENSATING:
                problem = approval_problem(session, run=run)
            if problem is not None:
                transitions.fail_unapproved(session, run, problem=problem, at=self._clock())
            elif run.status == RunStatus.PENDING:
                transitions.start_run(session, run, at=self._clock())
        if problem is not None:
            self._notify("on_run_finished", run)
            return RunProgress(run_id, run.status)
        try:
            context = self._context_for(run)
        except RollbotError as exc:
            # A broken configuration or a missing secret will not mend itself: say so once
            # instead of retrying every time the lease expires.
            with self._holding(run_id) as (session, run):
                transitions.fail_without_acting(
                    session, run, message=f"cannot prepare the run: {exc}", at=self._clock()
                )
            self._notify("on_run_finished", run)
            return RunProgress(run_id, run.status)
        if context.run_id is None:
            context.run_id = run_id
        while True:
            with self._holding(run_id) as (session, run):
                step = self._next_step(session, run, plan)
            if step is None:
                if run.status not in RunStatus.active():
                    self._notify("on_run_finished", run)
                return RunProgress(run_id, run.status)
            resume_at = self._run_step(run_id, plan, step, context)
            if resume_at is not None:
                return RunProgress(run_id, run.status, resume_at=resume_at)

    def _next_step(self, session: Session, run: RunbookRun, plan: Plan) -> StepRun | None:
        """The step to run next, after any state change that is due; None when finished."""
        now = self._clock()
        if run.status == RunStatus.RUNNING:
            if run.abort_requested:
                transitions.begin_compensation(
                    session, run, plan, reason=None, own_failed_step=None, at=now
                )
            else:
                forward = steps_of(session, run.id or 0, FORWARD)
                pending = [s for s in forward if unfinished(s)]
                if pending:
                    return pending[0]
                transitions.finish_succeeded(session, run, at=now)
                return None
        if run.status == RunStatus.COMPENSATING:
            undo = steps_of(session, run.id or 0, COMPENSATION)
            pending = [s for s in reversed(undo) if unfinished(s)]
            if pending:
                return pending[0]
            transitions.finish_after_compensation(session, run, at=now)
        elif run.status not in RunStatus.active():
            leases.release(run)  # ended by the step just done (an escalation)
        return None

    def _run_step(
        self, run_id: int, plan: Plan, step: StepRun, context: StepContext
    ) -> datetime | None:
        """One attempt at the step (or its reconciliation); the park time when it must wait."""
        spec = transitions.spec_for(plan, step)
        if step.state == StepState.RUNNING:
            output = reconcile_effect(
                self._actions.get(step.action), step, context, timeout=spec.timeout_seconds
            )
            if output is not None:
                self._succeed(run_id, plan, step, output, reconciled=True)
                return None
        elif step.next_attempt_at is not None:
            wait = (step.next_attempt_at - self._clock()).total_seconds()
            if wait > self._max_inline_wait:
                with self._holding(run_id) as (_, run):
                    leases.release(run, until=step.next_attempt_at)
                return step.next_attempt_at
            if wait > 0:
                self._renew(run_id, extra=timedelta(seconds=wait))
                self._sleep(wait)
                with self._holding(run_id) as (_, run):
                    if run.abort_requested and step.phase == FORWARD:
                        return None  # the next round sees the abort before acting
        self._attempt(run_id, plan, step, spec, context)
        return None

    def _attempt(
        self, run_id: int, plan: Plan, step: StepRun, spec: PlanStep, context: StepContext
    ) -> None:
        action = self._actions.get(step.action)
        if action is None:
            self._fail(run_id, plan, step, f"unknown action {step.action!r}")
            return
        try:
            params = action.params_model.model_validate(step.params)
        except ValidationError as exc:
            self._fail(run_id, plan, step, f"invalid parameters for {step.action}: {exc}")
            return
        key = step.idempotency_key or idempotency_key(run_id, step, attempt=step.attempt + 1)
        with self._holding(run_id, extra=timedelta(seconds=spec.timeout_seconds)) as (s, run):
            step = self._step(s, step)
            transitions.step_started(s, run, step, key=key, total=len(plan.steps), at=self._clock())
        self._notify("on_step_started", run, step)
        outcome = perform(action, params, context, key=key, step=step, timeout=spec.timeout_seconds)
        if isinstance(outcome, StepFailure):
            self._after_failure(run_id, plan, step, spec, outcome)
        else:
            notes, context.notes[:] = list(context.notes), []
            self._succeed(run_id, plan, step, outcome, reconciled=False, notes=notes)

    def _succeed(
        self,
        run_id: int,
        plan: Plan,
        step: StepRun,
        output: dict[str, Any],
        *,
        reconciled: bool,
        notes: list[str] | None = None,
    ) -> None:
        with self._holding(run_id) as (session, run):
            step = self._step(session, step)
            transitions.step_succeeded(
                session, run, plan, step, output=output, reconciled=reconciled, at=self._clock()
            )
            for note in notes or []:
                transitions.step_note(session, run, step, note=note, at=self._clock())
        self._notify("on_step_finished", run, step)

    def _after_failure(
        self, run_id: int, plan: Plan, step: StepRun, spec: PlanStep, failure: StepFailure
    ) -> None:
        if not failure.retryable or step.attempt >= spec.retry.max_attempts:
            self._fail(run_id, plan, step, failure.error, maybe_acted=failure.outcome_unknown)
            return
        delay = backoff_delay(
            spec.retry,
            failed_attempts=step.attempt,
            retry_after=failure.retry_after,
            jitter=self._jitter,
        )
        with self._holding(run_id) as (session, run):
            now = self._clock()
            transitions.step_retrying(
                session,
                run,
                self._step(session, step),
                error=failure.error,
                retry_at=now + timedelta(seconds=delay),
                outcome_unknown=failure.outcome_unknown,
                total=len(plan.steps),
                at=now,
            )

    def _fail(
        self, run_id: int, plan: Plan, step: StepRun, error: str, *, maybe_acted: bool = False
    ) -> None:
        """The step gives up; a forward step's on_failure decides what the run does next.

        A step whose last call timed out may have acted after all, so its own undo runs too
        (after that call returns, see ``perform``).
        """
        with self._holding(run_id) as (session, run):
            step = self._step(session, step)
            now = self._clock()
            transitions.step_failed(session, run, step, error=error, total=len(plan.steps), at=now)
            policy = plan.steps[step.position].on_failure
            if incident_effects.checks_mitigation(session, run, plan, step):
                transitions.escalate_unverified(
                    session, run, step, error=error, stop=policy != OnFailure.CONTINUE, at=now
                )
            elif step.phase == FORWARD and policy != OnFailure.CONTINUE:
                transitions.begin_compensation(
                    session,
                    run,
                    plan,
                    reason=f"step {step.name!r} failed: {error}",
                    own_failed_step=(
                        step if policy == OnFailure.COMPENSATE or maybe_acted else None
                    ),
                    at=now,
                )
        self._notify("on_step_finished", run, step)

    @contextmanager
    def _holding(
        self, run_id: int, *, extra: timedelta = timedelta(0)
    ) -> Iterator[tuple[Session, RunbookRun]]:
        """A transaction on the run, fenced by this worker's lease, which it also renews."""
        with session_scope(self._db) as session:
            run = leases.hold(session, run_id=run_id, worker_id=self._worker_id)
            run.lease_expires_at = self._clock() + self._lease + extra
            session.add(run)
            yield session, run

    def _renew(self, run_id: int, *, extra: timedelta) -> None:
        with self._holding(run_id, extra=extra):
            pass  # holding the run renews its lease

    @staticmethod
    def _step(session: Session, step: StepRun) -> StepRun:
        fresh = session.get(StepRun, step.id, populate_existing=True)
        assert fresh is not None
        return fresh

    def _progress(self, run_id: int) -> RunProgress:
        with session_scope(self._db) as session:
            run = session.get(RunbookRun, run_id)
            if run is None:
                raise NotFoundError(f"runbook run #{run_id} does not exist")
            parked = run.claimed_by is None and run.status in RunStatus.active()
            return RunProgress(run_id, run.status, run.lease_expires_at if parked else None)

    def _notify(self, hook: str, *args: Any) -> None:
        if self._observer is None:
            return
        try:
            getattr(self._observer, hook)(*args)
        except Exception:  # the run must not fail because a progress message did
            log.exception("run observer %s failed", hook)
