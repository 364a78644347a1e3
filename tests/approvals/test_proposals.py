"""propose_rollback on both databases: one pending proposal per model, none while a rollback
runs, and automatic proposals that neither replace a pending one nor flip-flop."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.config import parse_config
from bot.errors import ConflictError
from bot.proposals import propose_rollback
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest, Incident, RunbookRun
from bot.store.types import utcnow
from tests.watches.fakes import plan_to

CONFIG = parse_config(
    """
registries: {mlflow: {kind: local}}
deployers: {kserve: {kind: local}}
models:
  fraud: {registry: mlflow, deployer: kserve}
"""
)


def propose(session: Session, *, planner: Any = None, **kwargs: Any) -> ApprovalRequest:
    arguments: dict[str, Any] = {
        "config": CONFIG,
        "runbooks": {},
        "components_for": lambda *a, **k: {},
        "model": "fraud",
        "to_version": None,
        "requested_by": "UALICE",
        "via": "slack",
        "reason": None,
        "planner": planner or plan_to("1"),
    }
    return propose_rollback(session, **{**arguments, **kwargs})


def requests(engine: Engine) -> list[tuple[int | None, str]]:
    with Session(engine) as session:
        found = session.exec(select(ApprovalRequest).order_by(col(ApprovalRequest.id))).all()
        return [(r.id, r.status) for r in found]


def add_run(
    engine: Engine, *, status: str, finished_ago: timedelta | None = None, model: str = "fraud"
) -> int:
    """A run of the model's rollback in ``status`` (finished that long ago, if given)."""
    with session_scope(engine) as session:
        run = RunbookRun(
            model=model,
            runbook="immediate-rollback",
            plan={},
            plan_hash="x",
            from_version="2",
            to_version="1",
            status=status,
            finished_at=None if finished_ago is None else utcnow() - finished_ago,
        )
        session.add(run)
        session.flush()
        assert run.id is not None
        return run.id


def test_no_proposal_while_the_models_rollback_runs_and_nothing_is_written(
    engine: Engine,
) -> None:
    run_id = add_run(engine, status="running")

    with pytest.raises(ConflictError) as refused, session_scope(engine) as session:
        propose(session)

    assert str(refused.value) == (
        f"fraud already has an active rollback: run #{run_id} (running); "
        "no new proposal until it ends"
    )
    assert requests(engine) == []
    with Session(engine) as session:
        assert session.exec(select(Incident)).all() == []


def test_a_person_supersedes_a_pending_proposal(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = propose(session).id
    with session_scope(engine) as session:
        second = propose(session, requested_by="UBOB").id

    assert requests(engine) == [(first, "cancelled"), (second, "pending")]


def test_an_automatic_proposal_leaves_a_pending_one_alone(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = propose(session).id

    with pytest.raises(ConflictError) as refused, session_scope(engine) as session:
        propose(session, requested_by="rollbot", via="watch", supersede=False)

    assert f"already proposed and awaiting approval (request #{first})" in str(refused.value)
    assert requests(engine) == [(first, "pending")]


def test_automatic_proposals_wait_for_the_cooldown_after_a_proposal(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = propose(session)
        first.status = "rejected"
        session.add(first)

    with pytest.raises(ConflictError) as refused, session_scope(engine) as session:
        propose(session, supersede=False, quiet_after=timedelta(hours=1))
    assert f"(request #{first.id}, rejected)" in str(refused.value)
    assert "automatic proposals for fraud wait 1h after one" in str(refused.value)

    later = utcnow() + timedelta(hours=1, minutes=1)
    with session_scope(engine) as session:
        propose(session, supersede=False, quiet_after=timedelta(hours=1), now=later)
    assert [status for _, status in requests(engine)] == ["rejected", "pending"]


def test_automatic_proposals_wait_for_the_cooldown_after_a_rollback(engine: Engine) -> None:
    run_id = add_run(engine, status="succeeded", finished_ago=timedelta(minutes=10))

    with pytest.raises(ConflictError) as refused, session_scope(engine) as session:
        propose(session, supersede=False, quiet_after=timedelta(minutes=30))
    assert f"(run #{run_id})" in str(refused.value) and "rolled back at" in str(refused.value)

    with session_scope(engine) as session:
        propose(session, supersede=False, quiet_after=timedelta(minutes=5))
    assert [status for _, status in requests(engine)] == ["pending"]


def test_the_database_refuses_a_second_pending_proposal(engine: Engine) -> None:
    with session_scope(engine) as session:
        original = propose(session)
    duplicate = ApprovalRequest(**original.model_dump(exclude={"id"}))

    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(duplicate)

    assert requests(engine) == [(original.id, "pending")]


@pytest.mark.parametrize("supersede", [True, False])
def test_concurrent_proposals_leave_one_pending(engine: Engine, supersede: bool) -> None:
    planner = plan_to("1")

    def slow_planner(**kwargs: Any) -> Any:
        time.sleep(0.2)  # a real planner asks the deployer and the registry over HTTP
        return planner(**kwargs)

    refusals: list[str] = []
    start = threading.Barrier(4)

    def one() -> None:
        start.wait()
        try:
            with session_scope(engine) as session:
                propose(session, planner=slow_planner, supersede=supersede)
        except ConflictError as exc:
            refusals.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = [status for _, status in requests(engine)]
    assert statuses.count("pending") == 1
    if supersede:
        assert sorted(statuses) == ["cancelled"] * 3 + ["pending"] and refusals == []
    else:
        assert statuses == ["pending"] and len(refusals) == 3
