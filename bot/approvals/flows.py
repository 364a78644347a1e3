"""One approve/reject click, end to end: re-render the plan, then decide in one transaction.

The plan is re-rendered in its own short session first, because rendering reads the
registry and the deployer, and no database write lock should be held across those calls.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from bot.approvals import service
from bot.approvals.policy import MembersOf
from bot.approvals.service import ClickOutcome, Decision
from bot.errors import PolicyViolation, RollbotError
from bot.proposals import RollbackTools
from bot.store import session_scope
from bot.store.models import ApprovalStatus
from integrations.errors import IntegrationError


def click(
    engine: Engine,
    *,
    tools: RollbackTools,
    request_id: int,
    user: str,
    decision: Decision,
    members_of: MembersOf,
    source: str = "slack",
    now: datetime | None = None,
) -> ClickOutcome:
    """Apply a click; a refusal raises PolicyViolation (or RollbotError) and changes nothing."""
    current_hash = None
    if decision == "approve":
        current_hash = current_plan_hash(engine, tools=tools, request_id=request_id)
    with session_scope(engine) as session:
        return service.decide(
            session,
            request_id=request_id,
            user=user,
            decision=decision,
            members_of=members_of,
            current_plan_hash=current_hash,
            start_run=tools.start_run,
            source=source,
            now=now,
        )


def current_plan_hash(engine: Engine, *, tools: RollbackTools, request_id: int) -> str | None:
    """The hash of the plan as it would render now; None when the request is decided already."""
    with session_scope(engine) as session:
        request = service.get(session, request_id=request_id)
        if request.status != ApprovalStatus.PENDING:
            return None
        try:
            # A target Rollbot chose must still be the newest safe version: rendered afresh,
            # a version that lost its standing (an incident since) changes the plan.
            plan = tools.plan(
                session,
                model=request.model,
                to_version=request.requested_version,
                runbook=request.runbook,
            )
        except IntegrationError as exc:
            raise RollbotError(
                f"could not re-check the plan ({exc}); nothing was recorded, try again"
            ) from exc
        except RollbotError as exc:
            raise PolicyViolation(
                f"the plan no longer renders ({exc}); nothing was approved. "
                f"Propose again: `rollback {request.model}`"
            ) from exc
        return plan.hash()
