"""A worker process for the crash test: runs one run and SIGKILLs itself where told.

``ROLLBOT_TEST_CRASH_AT`` names the boundary, ``step-N-before`` (committed as running, not
yet acted), ``step-N-applied`` (acted, not yet committed) or ``step-N-after`` (committed as
succeeded), N counting from 1. The hooks live here, in test code only.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine

from bot.runs.contracts import Action, Component, Plan, PlanStep, StepContext
from bot.runs.engine import RunEngine, RunObserver
from bot.store import make_engine
from bot.store.models import RunbookRun, StepRun
from bot.store.types import utcnow
from integrations.deployers.local import LocalDeployer
from integrations.registry.local import LocalRegistry

MODEL = "fraud-detector"
TARGET = {"name": MODEL, "initial_version": "4"}


class JournalParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entry: str


class Journal:
    """Appends a line per call, without any deduplication: the engine must prevent repeats."""

    name = "journal.append"
    params_model: type[BaseModel] = JournalParams
    description = "append a line to the journal file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        entry = params.model_dump()["entry"]
        with self.path.open("a", encoding="utf-8") as journal:
            journal.write(f"{entry} {idempotency_key}\n")
            journal.flush()
            os.fsync(journal.fileno())
        return {"entry": entry}

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        entry = params.model_dump()["entry"]
        return {"entry": entry} if entry in journal_entries(self.path) else None


class ShiftParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    percent: int


class LocalShift:
    """Shift traffic on the local deployer; reconcile reads the live state."""

    name = "deployer.shift_traffic"
    params_model: type[BaseModel] = ShiftParams
    description = "shift traffic on the local deployer"

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        p = ShiftParams.model_validate(params.model_dump())
        component = context.component(None)
        state = component.deployer.shift_traffic(
            component.target,
            version=p.version,
            source=None,
            percent=p.percent,
            idempotency_key=idempotency_key,
        )
        return asdict(state)

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        p = ShiftParams.model_validate(params.model_dump())
        component = context.component(None)
        state = component.deployer.current_state(component.target)
        return asdict(state) if state.serving_percent(p.version) == p.percent else None


def journal_entries(path: Path) -> list[str]:
    """The entries written so far, one per effect."""
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines()]


def crash_plan() -> Plan:
    """Four steps: announce, canary 50%, full 100%, record."""
    return Plan(
        model=MODEL,
        runbook="immediate-rollback",
        from_version="4",
        to_version="3",
        steps=[
            PlanStep(name="announce", action="journal.append", params={"entry": "announce"}),
            PlanStep(
                name="canary",
                action="deployer.shift_traffic",
                params={"version": "3", "percent": 50},
            ),
            PlanStep(
                name="full",
                action="deployer.shift_traffic",
                params={"version": "3", "percent": 100},
            ),
            PlanStep(name="record", action="journal.append", params={"entry": "record"}),
        ],
    )


def actions(state_dir: Path) -> dict[str, Action]:
    return {
        "journal.append": Journal(state_dir / "journal.txt"),
        "deployer.shift_traffic": LocalShift(),
    }


def deployer(state_dir: Path) -> LocalDeployer:
    return LocalDeployer(state_dir / "deployer.json")


def context_factory(state_dir: Path) -> Callable[[RunbookRun], StepContext]:
    def context_for(run: RunbookRun) -> StepContext:
        component = Component(
            name=MODEL,
            registry=LocalRegistry(state_dir / "registry.json"),
            registry_model=MODEL,
            deployer=deployer(state_dir),
            target=TARGET,
        )
        return StepContext(
            model=MODEL,
            components={MODEL: component},
            metrics=None,
            now=utcnow,
            sleep=lambda _: None,
        )

    return context_for


def build_engine(
    db: Engine,
    state_dir: Path,
    *,
    worker_id: str,
    clock: Callable[[], datetime] = utcnow,
    observer: RunObserver | None = None,
    wrap: Callable[[Action], Action] | None = None,
) -> RunEngine:
    catalogue = actions(state_dir)
    if wrap is not None:
        catalogue = {name: wrap(action) for name, action in catalogue.items()}
    return RunEngine(
        db,
        actions=catalogue,
        context_for=context_factory(state_dir),
        worker_id=worker_id,
        lease=timedelta(minutes=5),
        clock=clock,
        observer=observer,
    )


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CrashingAction:
    """Kills the process right after the wrapped action's effect, before the engine records it."""

    def __init__(self, inner: Action, crash_at: str) -> None:
        self.inner, self.crash_at = inner, crash_at
        self.name, self.description = inner.name, inner.description
        self.params_model: type[BaseModel] = inner.params_model

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        output = self.inner.execute(context, params, idempotency_key=idempotency_key)
        position = int(idempotency_key.split("-")[4])
        if self.crash_at == f"step-{position + 1}-applied":
            _die()
        return output

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        return self.inner.reconcile(context, params)


@dataclass
class CrashingObserver:
    """Kills the process at a step boundary the engine reports."""

    crash_at: str

    def on_step_started(self, run: RunbookRun, step: StepRun) -> None:
        if self.crash_at == f"step-{step.position + 1}-before":
            _die()

    def on_step_finished(self, run: RunbookRun, step: StepRun) -> None:
        if self.crash_at == f"step-{step.position + 1}-after":
            _die()

    def on_run_finished(self, run: RunbookRun) -> None:
        pass


def main() -> None:
    """Execute RUN_ID against the state in STATE_DIR, crashing at ROLLBOT_TEST_CRASH_AT."""
    crash_at = os.environ["ROLLBOT_TEST_CRASH_AT"]
    state_dir = Path(os.environ["STATE_DIR"])
    db = make_engine(os.environ["DATABASE_URL"])
    runner = build_engine(
        db,
        state_dir,
        worker_id="doomed-worker",
        observer=CrashingObserver(crash_at),
        wrap=lambda action: CrashingAction(action, crash_at),
    )
    progress = runner.execute(int(os.environ["RUN_ID"]))
    print(f"not crashed: run ended {progress.status}", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    main()
