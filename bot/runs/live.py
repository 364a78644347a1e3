"""The engine wired to the configured integrations, for the worker and ``rollbot drill``.

This is a composition root for the edges: it reaches the action catalogue and the adapter
wiring (which brings httpx and Kubernetes clients along), so those are imported when an
engine is built, never when the domain modules are.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy.engine import Engine

from bot.config import RollbotConfig, Settings
from bot.runs.contracts import StepContext
from bot.runs.engine import RunEngine, RunObserver
from bot.store.models import RunbookRun
from bot.store.types import utcnow

# Long enough for a slow database round trip; the engine stretches it over each step's own
# timeout while the step runs, so a live worker never loses a run it is still working on.
DEFAULT_LEASE = timedelta(minutes=2)


def live_engine(
    db: Engine,
    config: RollbotConfig,
    settings: Settings,
    *,
    worker_id: str,
    observer: RunObserver | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> RunEngine:
    """An engine running the shipped actions against each model's configured integrations."""
    from bot.runs.actions import ACTIONS
    from bot.wiring import build_metrics_source, components_for

    def context_for(run: RunbookRun) -> StepContext:
        return StepContext(
            model=run.model,
            components=components_for(config, settings, run.model),
            metrics=build_metrics_source(config, settings),
            now=utcnow,
            sleep=time.sleep,
            run_id=run.id,
        )

    return RunEngine(
        db,
        actions=ACTIONS,
        context_for=context_for,
        worker_id=worker_id,
        lease=lease,
        observer=observer,
    )
