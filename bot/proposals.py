"""The proposal flow: a person or a detection asks for a rollback; approvers get a plan.

`propose_rollback` renders the plan first, so when there is no safe version (or the model is
unknown) it says so plainly and nothing is written: no request, no half-opened incident.
Proposals for one model are serialised on its incident row, so concurrent ones (a watch and
an alert at the same moment, or an alert storm) leave at most one pending; the database
refuses a second pending one as well. No proposal is made while the model's rollback runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlmodel import Session, col, select

from bot.approvals import service as approvals
from bot.approvals.policy import PolicySnapshot
from bot.approvals.service import RunStarter
from bot.config.durations import format_duration
from bot.config.models import RollbotConfig
from bot.config.settings import Settings
from bot.errors import ConfigError, ConflictError, NotFoundError
from bot.incidents import service as incidents
from bot.runs.contracts import Plan
from bot.runs.service import active_run_for_model, create_run
from bot.store.models import ApprovalRequest, Incident, IncidentStatus, RunbookRun, RunStatus
from bot.store.types import utcnow


class Planner(Protocol):
    """``plan_rollback`` from the runbook package: render the plan for one model."""

    def __call__(
        self,
        *,
        config: RollbotConfig,
        runbooks: Mapping[str, Any],
        session: Session,
        components_for: Callable[..., Any],
        model: str,
        to_version: str | None = None,
        runbook: str | None = None,
    ) -> Plan: ...


@dataclass(frozen=True)
class RollbackTools:
    """What proposing, approving and starting a rollback needs, injected at the edges."""

    config: RollbotConfig
    runbooks: Mapping[str, Any]
    components_for: Callable[..., Any]
    planner: Planner
    start_run: RunStarter

    def plan(
        self, session: Session, *, model: str, to_version: str | None, runbook: str | None = None
    ) -> Plan:
        """Render the plan for a model now."""
        return self.planner(
            config=self.config,
            runbooks=self.runbooks,
            session=session,
            components_for=self.components_for,
            model=model,
            to_version=to_version,
            runbook=runbook,
        )


def default_planner() -> Planner:
    """``bot.runbooks.plan_rollback``, imported when first needed."""
    from bot.runbooks import plan_rollback

    return plan_rollback


def default_tools(config: RollbotConfig, settings: Settings) -> RollbackTools:
    """The real planner, runbooks, integrations and run service of a running process."""
    from bot.runbooks import load_runbooks, locate_runbooks_dir, plan_rollback
    from bot.wiring import components_for

    directory = locate_runbooks_dir(config.runbooks_dir, Path(settings.rollbot_config))
    return RollbackTools(
        config=config,
        runbooks=load_runbooks(directory),
        # Settings carry the secrets the adapters need; the planner only names the model.
        components_for=functools.partial(components_for, config, settings),
        planner=plan_rollback,
        start_run=create_run,
    )


def propose_rollback(
    session: Session,
    *,
    config: RollbotConfig,
    runbooks: Mapping[str, Any],
    components_for: Callable[..., Any],
    model: str,
    to_version: str | None,
    requested_by: str,
    via: str,
    reason: str | None,
    evidence: dict[str, Any] | None = None,
    incident_id: int | None = None,
    runbook: str | None = None,
    planner: Planner | None = None,
    now: datetime | None = None,
    supersede: bool = True,
    quiet_after: timedelta | None = None,
) -> ApprovalRequest:
    """Open or join the model's incident and record a proposal bound to the rendered plan.

    Raises NotFoundError for an unknown model, whatever the planner raises when no safe
    version exists (NoSafeVersion) or an integration cannot be read, and ConflictError while
    the model's rollback runs; in each case nothing is written. A newer proposal supersedes
    (cancels) the model's pending ones, unless ``supersede`` is off (automatic proposals must
    not replace one approvers may be deciding), and with ``quiet_after`` a proposal or a
    finished rollback of the model that recent refuses it, so versions do not flip-flop.
    """
    model_config = config.models.get(model)
    if model_config is None:
        known = ", ".join(sorted(config.models)) or "none configured"
        raise NotFoundError(f"unknown model {model!r} (known: {known})")
    plan = (planner or default_planner())(
        config=config,
        runbooks=runbooks,
        session=session,
        components_for=components_for,
        model=model,
        to_version=to_version,
        runbook=runbook,
    )
    policy_name = approval_policy_for(config, runbooks, plan)
    now = now or utcnow()
    incident = _incident_for(session, model=model, actor=requested_by, via=via, id=incident_id)
    assert incident.id is not None
    incident = incidents.lock(session, incident_id=incident.id)
    if incident.status == IncidentStatus.RESOLVED:
        raise ConflictError(
            f"incident #{incident.id} of {model} was resolved meanwhile; nothing was proposed"
        )
    _refuse_while_busy(session, model=model, now=now, supersede=supersede, quiet_after=quiet_after)
    for stale in approvals.pending_for_model(session, model=model):
        approvals.cancel(
            session, request=stale, actor=requested_by, source=via, why="superseded by a new one"
        )
    # A person asking for a rollback is responding (a watch or an alert is not); after the
    # requests, as the lock order is incident, requests, timeline.
    incidents.note_response(session, incident=incident, actor=requested_by, source=via)
    incident.from_version = plan.from_version
    incident.to_version = plan.to_version
    session.add(incident)
    return approvals.create_request(
        session,
        plan=plan,
        incident=incident,
        policy_name=policy_name,
        policy=PolicySnapshot.from_config(config.approval_policies[policy_name]),
        evidence=evidence or {},
        requested_by=requested_by,
        via=via,
        reason=reason,
        now=now,
        requested_version=to_version,
    )


def approval_policy_for(config: RollbotConfig, runbooks: Mapping[str, Any], plan: Plan) -> str:
    """The policy a plan needs: its runbook's own when it names one, else the model's."""
    declared = getattr(runbooks.get(plan.runbook), "approval_policy", None)
    name = declared or config.models[plan.model].approval_policy
    if name not in config.approval_policies:
        known = ", ".join(sorted(config.approval_policies))
        raise ConfigError(
            f"runbook {plan.runbook!r} of {plan.model}: unknown approval policy {name!r} "
            f"(known: {known})"
        )
    return name


def propose_with(session: Session, *, tools: RollbackTools, **kwargs: Any) -> ApprovalRequest:
    """`propose_rollback` with the process's tools."""
    return propose_rollback(
        session,
        config=tools.config,
        runbooks=tools.runbooks,
        components_for=tools.components_for,
        planner=tools.planner,
        **kwargs,
    )


def _incident_for(
    session: Session, *, model: str, actor: str, via: str, id: int | None
) -> Incident:
    if id is not None:
        return incidents.get(session, incident_id=id)
    incident, _opened = incidents.open_or_join(
        session,
        model=model,
        title=f"{model} degraded",
        actor=actor,
        source=via,
        detected_at=utcnow(),  # whoever asks for a rollback has detected a problem
    )
    return incident


def _refuse_while_busy(
    session: Session,
    *,
    model: str,
    now: datetime,
    supersede: bool,
    quiet_after: timedelta | None,
) -> None:
    active = active_run_for_model(session, model=model)
    if active is not None:
        raise ConflictError(
            f"{model} already has an active rollback: run #{active.id} ({active.status}); "
            "no new proposal until it ends"
        )
    pending = approvals.pending_for_model(session, model=model)
    if pending and not supersede:
        raise ConflictError(
            f"a rollback of {model} is already proposed and awaiting approval "
            f"(request #{pending[0].id})"
        )
    if quiet_after is not None:
        why = _recent_rollback(session, model=model, since=now - quiet_after)
        if why is not None:
            raise ConflictError(
                f"{why}; automatic proposals for {model} wait "
                f"{format_duration(quiet_after)} after one, so versions do not flip-flop"
            )


def _recent_rollback(session: Session, *, model: str, since: datetime) -> str | None:
    """What happened to the model since ``since`` that starts a cooldown, in words."""
    request = session.exec(
        select(ApprovalRequest)
        .where(ApprovalRequest.model == model)
        .where(col(ApprovalRequest.created_at) >= since)
        .order_by(col(ApprovalRequest.created_at).desc())
    ).first()
    if request is not None:
        return (
            f"a rollback of {model} was proposed at {request.created_at:%H:%M:%S} UTC "
            f"(request #{request.id}, {request.status})"
        )
    # Any rollback that ran, also one that failed: an escalated one keeps the safe version.
    run = session.exec(
        select(RunbookRun)
        .where(RunbookRun.model == model)
        .where(col(RunbookRun.status).not_in(RunStatus.active()))
        .where(col(RunbookRun.drill).is_(False))
        .where(col(RunbookRun.finished_at) >= since)
        .order_by(col(RunbookRun.finished_at).desc())
    ).first()
    if run is not None and run.finished_at is not None:
        return (
            f"a rollback of {model} ended at {run.finished_at:%H:%M:%S} UTC "
            f"(run #{run.id}, {run.status})"
        )
    return None
