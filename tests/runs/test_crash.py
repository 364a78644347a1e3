"""THE crash test: kill a worker with SIGKILL at every step boundary, resume, count effects.

A real subprocess executes a run against a file-backed deployer and a journal whose appends
are not deduplicated, and dies at one boundary; then the run is resumed here. Whatever the
boundary, every effect must have happened exactly once and the run must end succeeded.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.runs.service import create_run, run_status
from bot.store import session_scope
from bot.store.models import TimelineEvent
from bot.store.types import utcnow
from bot.timeline import verify_chains
from tests.runs.crash_worker import TARGET, build_engine, crash_plan, deployer, journal_entries

REPO = Path(__file__).resolve().parents[2]
BOUNDARIES = [f"step-{n}-{when}" for n in (1, 2, 3, 4) for when in ("before", "applied", "after")]


def crash_worker(database_url: str, run_id: int, state_dir: Path, crash_at: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.runs.crash_worker"],
        cwd=REPO,
        env={
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": database_url,
            "RUN_ID": str(run_id),
            "STATE_DIR": str(state_dir),
            "ROLLBOT_TEST_CRASH_AT": crash_at,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


@pytest.mark.parametrize("crash_at", BOUNDARIES)
def test_a_run_killed_at_any_boundary_resumes_with_every_effect_exactly_once(
    engine: Engine, database_url: str, tmp_path: Path, crash_at: str
) -> None:
    with session_scope(engine) as session:
        run = create_run(
            session,
            plan=crash_plan(),
            incident_id=None,
            approval_request_id=None,
            requested_by="U-alice",
            drill=True,
        )
        run_id = run.id
    assert run_id is not None

    crash_worker(database_url, run_id, tmp_path, crash_at)
    # The dead worker's lease has run out by the time the next worker looks.
    later = utcnow() + timedelta(hours=1)
    survivor = build_engine(engine, tmp_path, worker_id="survivor", clock=lambda: later)
    [progress] = survivor.resume_unfinished()

    assert progress.status == "succeeded"
    assert sorted(journal_entries(tmp_path / "journal.txt")) == ["announce", "record"]
    shifts = deployer(tmp_path).applied_operations(TARGET)
    assert [(op.version, op.percent) for op in shifts] == [("3", 50), ("3", 100)]
    state = deployer(tmp_path).current_state(TARGET)
    assert state.serving_percent("3") == 100
    with session_scope(engine) as session:
        view = run_status(session, run_id=run_id)
        kinds = [
            e.kind for e in session.exec(select(TimelineEvent).order_by(col(TimelineEvent.id)))
        ]
        broken = verify_chains(session)
    assert broken == []
    assert [s.state for s in view.steps] == ["succeeded"] * 4
    assert kinds.count("step.succeeded") == 4 and kinds[-1] == "run.succeeded"
    crashed = view.steps[int(crash_at.split("-")[1]) - 1]
    if crash_at.endswith("applied"):
        assert crashed.attempt == 1  # found in place: not acted on again
    elif crash_at.endswith("before"):
        assert crashed.attempt == 2  # redone once, with the same key
