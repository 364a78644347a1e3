"""Small fake actions with side-effect counters, and helpers to build plans and runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.runs.contracts import OnFailure, Plan, PlanStep, RetryPolicy, StepContext
from bot.runs.engine import RunEngine, RunObserver
from bot.runs.service import create_run
from bot.store import session_scope
from bot.store.models import ApprovalDecision, ApprovalRequest, ApprovalStatus, RunbookRun, StepRun
from bot.store.types import utcnow

MODEL = "fraud-detector"
START = datetime.fromisoformat("2025-03-01T12:00:00+00:00")


class AnyParams(BaseModel):
    """Whatever the step says."""

    model_config = ConfigDict(extra="allow")


class StrictParams(BaseModel):
    """Needs a ``version``."""

    model_config = ConfigDict(extra="forbid")
    version: str


@dataclass
class Effects:
    """The outside world the fake actions change: what was applied, by step name."""

    applied: dict[str, list[str]] = field(default_factory=dict)  # step → idempotency keys

    def count(self, step: str) -> int:
        return len(self.applied.get(step, []))

    def order(self) -> list[str]:
        return list(self.applied)


@dataclass
class FakeAction:
    """Applies ``params['effect']`` to :class:`Effects`; raises the scripted errors first."""

    name: str
    effects: Effects
    failures: list[BaseException] = field(default_factory=list)
    block: threading.Event | None = None  # wait on this before acting (timeout tests)
    calls: list[str] = field(default_factory=list)  # idempotency keys, one per call
    reconcile_calls: int = 0
    params_model: type[BaseModel] = AnyParams
    description: str = "a fake action"

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        self.calls.append(idempotency_key)
        block, self.block = self.block, None  # only the first call hangs
        if block is not None:
            block.wait(10)
        if self.failures:
            raise self.failures.pop(0)
        effect = str(getattr(params, "effect", self.name))
        self.effects.applied.setdefault(effect, []).append(idempotency_key)
        return {"effect": effect, "at": context.now()}

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        self.reconcile_calls += 1
        effect = str(getattr(params, "effect", self.name))
        return {"effect": effect, "reconciled": True} if self.effects.count(effect) else None


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class RecordingObserver:
    """Remembers what the engine reported; ``on_step`` hooks let a test act mid-run."""

    events: list[str] = field(default_factory=list)
    after_step: Callable[[StepRun], None] | None = None

    def on_step_started(self, run: RunbookRun, step: StepRun) -> None:
        self.events.append(f"started {step.phase} {step.name}")

    def on_step_finished(self, run: RunbookRun, step: StepRun) -> None:
        self.events.append(f"finished {step.phase} {step.name} {step.state}")
        if self.after_step is not None:
            self.after_step(step)

    def on_run_finished(self, run: RunbookRun) -> None:
        self.events.append(f"run {run.status}")


def step(
    name: str,
    *,
    action: str = "fake.apply",
    undo: str | None = None,
    on_failure: OnFailure = OnFailure.STOP,
    attempts: int = 3,
    timeout: float = 30,
    **params: Any,
) -> PlanStep:
    """A plan step whose effect is its name; ``undo`` names a compensation's effect."""
    compensation = None
    if undo is not None:
        compensation = PlanStep(name=undo, action="fake.apply", params={"effect": undo})
    return PlanStep(
        name=name,
        action=action,
        params={"effect": name, **params},
        timeout_seconds=timeout,
        retry=RetryPolicy(max_attempts=attempts, initial_backoff_seconds=2, max_backoff_seconds=5),
        on_failure=on_failure,
        compensation=compensation,
    )


def plan(*steps: PlanStep, model: str = MODEL, to_version: str = "3") -> Plan:
    """A plan rolling ``model`` back from 4 to ``to_version``."""
    return Plan(
        model=model,
        runbook="immediate-rollback",
        from_version="4",
        to_version=to_version,
        steps=list(steps),
    )


def new_drill(db: Engine, the_plan: Plan, *, incident_id: int | None = None) -> int:
    """Create a drill run (no approval needed) and return its id."""
    with session_scope(db) as session:
        run = create_run(
            session,
            plan=the_plan,
            incident_id=incident_id,
            approval_request_id=None,
            requested_by="U-alice",
            drill=True,
        )
        assert run.id is not None
        return run.id


def approval(session: Session, the_plan: Plan, *, status: str = ApprovalStatus.APPROVED) -> int:
    """An approval request for the plan, in the given state."""
    request = ApprovalRequest(
        model=the_plan.model,
        from_version=the_plan.from_version,
        to_version=the_plan.to_version,
        runbook=the_plan.runbook,
        plan=the_plan.model_dump(mode="json"),
        plan_hash=the_plan.hash(),
        policy_name="default",
        policy={"approvals": 1},
        requested_by="U-alice",
        status=status,
        expires_at=utcnow() + timedelta(minutes=30),
    )
    session.add(request)
    session.flush()
    assert request.id is not None
    if status == ApprovalStatus.APPROVED:  # as a click grants it: the policy's one approval
        session.add(
            ApprovalDecision(
                request_id=request.id,
                approver="U-bob",
                decision="approve",
                plan_hash=request.plan_hash,
            )
        )
        session.flush()
    return request.id


def fake_context(run: RunbookRun) -> StepContext:
    """A context with no integrations: the fake actions need none."""
    return StepContext(
        model=run.model, components={}, metrics=None, now=lambda: START, sleep=lambda _: None
    )


def make_engine(
    db: Engine,
    actions: dict[str, Any],
    *,
    clock: Clock | None = None,
    sleeps: list[float] | None = None,
    observer: RunObserver | None = None,
    worker_id: str = "worker-a",
    jitter: Callable[[float], float] = lambda cap: cap,
    max_inline_wait: float = 30,
) -> RunEngine:
    """An engine with a still clock, a recording sleep and jitter that takes the cap."""
    recorded = sleeps if sleeps is not None else []
    return RunEngine(
        db,
        actions=actions,
        context_for=fake_context,
        clock=clock or Clock(),
        sleep=recorded.append,
        worker_id=worker_id,
        lease=timedelta(minutes=5),
        observer=observer,
        jitter=jitter,
        max_inline_wait=timedelta(seconds=max_inline_wait),
    )


def load(session: Session, run_id: int) -> RunbookRun:
    run = session.get(RunbookRun, run_id)
    assert run is not None
    return run
