"""A webhook notification end to end: store it, then propose rollbacks, then tell people."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from bot.alerts.intake import SOURCE, IntakeResult, alert_model, ingest
from bot.alerts.payload import AlertmanagerPayload
from bot.config.models import RollbotConfig
from bot.detection.evidence import format_duration
from bot.detection.watch_state import PROPOSAL_RETRY_SECONDS
from bot.errors import RollbotError
from bot.notify import Notifier
from bot.runs.service import active_run_for_model
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest, TimelineEvent
from bot.store.types import utcnow
from bot.timeline import record_event
from bot.watches.flows import Proposer
from integrations.errors import IntegrationError

log = logging.getLogger(__name__)

# PostgreSQL may still pick a batch as a deadlock victim under heavy contention; the whole
# batch rolled back, so running it again is safe.
_ATTEMPTS = 3


def receive_notification(
    engine: Engine,
    *,
    payload: AlertmanagerPayload,
    config: RollbotConfig,
    proposer: Proposer | None = None,
    notifier: Notifier | None = None,
) -> IntakeResult:
    """Store the batch atomically; then, if configured, propose rollbacks for watched models."""
    result = _store(engine, payload, config)
    proposals: list[int] = []
    if proposer is not None and config.alertmanager.propose_rollback:
        for model in sorted(result.firing):
            if model not in result.newly_firing and not _proposal_due(engine, model, result):
                continue
            try:
                request_id = _propose(engine, model, result, config, proposer, payload)
            except Exception:
                # The alerts are stored; the other models' proposals and the news still go.
                log.exception("proposing a rollback of %s after its alert failed", model)
                continue
            if request_id is not None:
                proposals.append(request_id)
    if notifier is not None:
        _notify(notifier, result, proposals)
    return result


def _store(engine: Engine, payload: AlertmanagerPayload, config: RollbotConfig) -> IntakeResult:
    for attempt in range(_ATTEMPTS):
        try:
            with session_scope(engine) as session:
                return ingest(
                    session,
                    payload=payload,
                    config=config.alertmanager,
                    models_by_label=config.models_by_metrics_name(),
                )
        except OperationalError as exc:
            if attempt == _ATTEMPTS - 1 or not _is_deadlock(exc):
                raise
            log.warning("alert batch retried after %s", type(exc.orig).__name__)
    raise AssertionError("unreachable")


def _is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


def _proposal_due(engine: Engine, model: str, result: IntakeResult) -> bool:
    """Whether an alert still firing should try its incident's proposal again.

    It should when the incident has none yet and nothing said why: the process stopped
    between storing the alerts and proposing (Alertmanager sends the notification again), or
    the registry or deployer could not be reached and ``PROPOSAL_RETRY_SECONDS`` have passed.
    A proposal made, decided or refused for good (no safe version, the cooldown) stands.
    """
    incident_id = result.incidents.get(model)
    if incident_id is None:
        return False
    with session_scope(engine) as session:
        if session.exec(
            select(ApprovalRequest.id).where(ApprovalRequest.incident_id == incident_id)
        ).first():
            return False
        if active_run_for_model(session, model=model) is not None:
            return False
        refusal = session.exec(
            select(TimelineEvent)
            .where(TimelineEvent.incident_id == incident_id)
            .where(TimelineEvent.kind == "detection.no_proposal")
            .where(TimelineEvent.source == SOURCE)
            .order_by(col(TimelineEvent.occurred_at).desc())
        ).first()
    if refusal is None:
        return True
    waited = (utcnow() - refusal.occurred_at).total_seconds() >= PROPOSAL_RETRY_SECONDS
    return bool(refusal.details.get("retry")) and waited


def _propose(
    engine: Engine,
    model: str,
    result: IntakeResult,
    config: RollbotConfig,
    proposer: Proposer,
    payload: AlertmanagerPayload,
) -> int | None:
    model_config = config.models.get(model)
    incident_id = result.incidents.get(model)
    if model_config is None or model_config.watch is None or incident_id is None:
        return None
    label, aliases = config.alertmanager.model_label, config.models_by_metrics_name()
    evidence: dict[str, Any] = {
        "source": SOURCE,
        "alerts": [
            {"fingerprint": a.fingerprint, "labels": a.labels, "annotations": a.annotations}
            for a in payload.alerts
            if a.status == "firing" and alert_model(a, label, aliases) == model
        ],
    }
    with session_scope(engine) as session:
        return _propose_in(
            session, model, incident_id, proposer, evidence, model_config.watch.cooldown
        )


def _propose_in(
    session: Session,
    model: str,
    incident_id: int,
    proposer: Proposer,
    evidence: dict[str, Any],
    cooldown: timedelta,
) -> int | None:
    names = ", ".join(sorted({a["labels"].get("alertname", "?") for a in evidence["alerts"]}))
    try:
        with session.begin_nested():
            request = proposer(
                session,
                model=model,
                to_version=None,
                requested_by=SOURCE,
                via=SOURCE,
                reason=f"Alertmanager: {names} firing",
                evidence=evidence,
                incident_id=incident_id,
                # Repeated alerts must not replace a proposal approvers may be deciding on.
                supersede=False,
                quiet_after=cooldown,
            )
    except (RollbotError, IntegrationError) as exc:
        # An unreachable registry or deployer is tried again by the alert's next notification.
        retry = isinstance(exc, IntegrationError)
        wait = format_duration(PROPOSAL_RETRY_SECONDS)
        again = f"; trying again at the alert's next notification after {wait}" if retry else ""
        record_event(
            session,
            incident_id=incident_id,
            kind="detection.no_proposal",
            source=SOURCE,
            actor=SOURCE,
            summary=f"No rollback proposed for {model}: {exc}{again}",
            details={"reason": str(exc), "retry": retry},
        )
        return None
    return request.id


def _notify(notifier: Notifier, result: IntakeResult, proposals: list[int]) -> None:
    try:
        for incident_id in result.opened:
            notifier.incident_opened(incident_id=incident_id)
        for request_id in proposals:
            notifier.proposal_created(request_id=request_id)
    except Exception:
        log.exception("notifying about alerts failed")
