"""The periodic jobs the leader runs. Each reads its work from the database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.worker.main import PeriodicJob

if TYPE_CHECKING:
    from bot.cli.context import Runtime


def periodic_jobs(runtime: Runtime) -> list[PeriodicJob]:
    """Every job the scheduler leader runs."""
    del runtime  # the domain jobs (watches, approvals, runbook steps) register here
    return []
