"""A webhook notification end to end: store it, then propose rollbacks, then tell people."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from bot.alerts.intake import SOURCE, IntakeResult, alert_model, ingest
from bot.alerts.payload import AlertmanagerPayload
from bot.config.models import RollbotConfig
from bot.errors import RollbotError
from bot.notify import Notifier
from bot.store.db import session_scope
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
        for model in sorted(result.newly_firing):
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
        record_event(
            session,
            incident_id=incident_id,
            kind="detection.no_proposal",
            source=SOURCE,
            actor=SOURCE,
            summary=f"No rollback proposed for {model}: {exc}",
            details={"reason": str(exc)},
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
