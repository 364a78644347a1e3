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

from bot.approvals import service as approvals
from bot.approvals.expiry import expire_due
from bot.config import parse_config
from bot.errors import ConfigError, ConflictError
from bot.incidents import service as incidents
from bot.proposals import propose_rollback
from bot.runbooks.format import Runbook
from bot.runs.service import create_run
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


ONE_APPROVAL = parse_config(
    """
registries: {mlflow: {kind: local}}
deployers: {kserve: {kind: local}}
approval_policies:
  default: {approvals: 1, approver_groups: [SONCALL]}
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
    assert "a rollback of fraud ended at " in str(refused.value)
    assert f"(run #{run_id}, succeeded)" in str(refused.value)

    with session_scope(engine) as session:
        propose(session, supersede=False, quiet_after=timedelta(minutes=5))
    assert [status for _, status in requests(engine)] == ["pending"]


def test_a_failed_rollback_that_kept_the_safe_version_starts_the_cooldown_too(
    engine: Engine,
) -> None:
    run_id = add_run(engine, status="failed", finished_ago=timedelta(minutes=10))

    with pytest.raises(ConflictError) as refused, session_scope(engine) as session:
        propose(session, supersede=False, quiet_after=timedelta(minutes=30))
    assert f"(run #{run_id}, failed)" in str(refused.value)


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


def test_a_click_and_a_new_proposal_at_once_queue_rather_than_deadlock(
    engine: Engine, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers; the lock order matters for row locks")
    with session_scope(engine) as session:
        request = propose(session, config=ONE_APPROVAL)
        assert request.id is not None
        request_id = request.id
    refusals: list[str] = []

    def another_proposal() -> None:  # a person asks again while the click is being decided
        try:
            with session_scope(engine) as session:
                propose(session, config=ONE_APPROVAL, requested_by="UCAROL")
        except ConflictError as exc:
            refusals.append(str(exc))

    other = threading.Thread(target=another_proposal)

    def members_of(group: str) -> frozenset[str]:
        # Called with the click's locks held and before it writes: start the other
        # transaction now, so that both hold something the other will want.
        other.start()
        time.sleep(0.5)
        return frozenset({"UBOB"})

    with session_scope(engine) as session:
        outcome = approvals.decide(
            session,
            request_id=request_id,
            user="UBOB",
            decision="approve",
            members_of=members_of,
            current_plan_hash=None,
            start_run=create_run,
        )
    other.join(30)

    assert outcome.status == "approved" and outcome.run_id is not None
    assert not other.is_alive()
    assert len(refusals) == 1 and "already has an active rollback: run #" in refusals[0]
    assert [status for _, status in requests(engine)] == ["approved"]


def test_no_proposal_joins_an_incident_resolved_meanwhile(engine: Engine) -> None:
    with session_scope(engine) as session:
        incident, _ = incidents.open_or_join(
            session, model="fraud", title="alert", actor="alertmanager", source="alertmanager"
        )
        assert incident.id is not None
        incident_id = incident.id  # what an alert's proposal is handed after intake commits
    with session_scope(engine) as session:
        resolved = incidents.get(session, incident_id=incident_id)
        incidents.resolve(session, incident=resolved, actor="U1", source="slack")

    resolved_meanwhile = "was resolved meanwhile; nothing was proposed"
    with pytest.raises(ConflictError, match=resolved_meanwhile), session_scope(engine) as session:
        propose(session, incident_id=incident_id, supersede=False)

    assert requests(engine) == []


TWO_POLICIES = parse_config(
    """
registries: {mlflow: {kind: local}}
deployers: {kserve: {kind: local}}
approval_policies:
  default: {approvals: 1}
  two-person: {approvals: 2}
models:
  fraud: {registry: mlflow, deployer: kserve}
"""
)


@pytest.mark.parametrize(
    ("declared", "expected"), [(None, ("default", 1)), ("two-person", ("two-person", 2))]
)
def test_a_runbook_that_names_a_policy_gets_it_instead_of_the_models(
    engine: Engine, declared: str | None, expected: tuple[str, int]
) -> None:
    runbook = Runbook.model_validate(
        {
            "name": "immediate-rollback",
            "approval_policy": declared,
            "steps": [{"name": "shift", "action": "deployer.shift_traffic"}],
        }
    )
    with session_scope(engine) as session:
        request = propose(session, config=TWO_POLICIES, runbooks={"immediate-rollback": runbook})
        policy = (request.policy_name, request.policy["approvals"])

    assert policy == expected


def test_a_runbook_naming_an_unknown_policy_proposes_nothing(engine: Engine) -> None:
    runbook = Runbook.model_validate(
        {
            "name": "immediate-rollback",
            "approval_policy": "nobody",
            "steps": [{"name": "shift", "action": "deployer.shift_traffic"}],
        }
    )

    with (
        pytest.raises(ConfigError, match="unknown approval policy 'nobody'"),
        session_scope(engine) as session,
    ):
        propose(session, config=TWO_POLICIES, runbooks={"immediate-rollback": runbook})

    assert requests(engine) == []


def test_the_expiry_job_and_a_persons_proposal_at_once_queue_rather_than_deadlock(
    engine: Engine, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers; the lock order matters for row locks")
    with session_scope(engine) as session:
        propose(session, requested_by="rollbot", via="watch")
    expiring, proceed = threading.Event(), threading.Event()
    finish = approvals.finish

    def slow_finish(session: Session, **kwargs: Any) -> None:
        finish(session, **kwargs)
        session.flush()  # the expiry holds what it locked while the person proposes
        expiring.set()
        proceed.wait(10)

    monkeypatch.setattr(approvals, "finish", slow_finish)
    failures: list[BaseException] = []

    def run(work: Any) -> threading.Thread:
        def guarded() -> None:
            try:
                with session_scope(engine) as session:
                    work(session)
            except BaseException as exc:  # a deadlock victim, say
                failures.append(exc)

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread

    expiry = run(lambda s: expire_due(s, now=utcnow() + timedelta(days=30)))
    assert expiring.wait(10)
    monkeypatch.setattr(approvals, "finish", finish)
    person = run(lambda s: propose(s, requested_by="UBOB"))
    time.sleep(1)  # the person's transaction reaches what the expiry holds
    proceed.set()
    expiry.join(30)
    person.join(30)

    assert failures == []
    assert sorted(status for _, status in requests(engine)) == ["expired", "pending"]
