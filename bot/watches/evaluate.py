"""One evaluation cycle of every due watch: read metrics, judge, remember, act.

Metrics are read for all due models first, with no transaction open; then each model is
judged and stored in its own transaction, so one model's trouble never blocks another's.
People are told only after the commit (a notifier reads the committed state).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config.models import RollbotConfig
from bot.detection.detector import detect
from bot.detection.evidence import Decision, DetectionState
from bot.detection.watch_state import WatchPolicy, WatchState
from bot.incidents import service as incidents
from bot.notify import Notifier
from bot.store.db import session_scope
from bot.store.models import WatchState as WatchStateRow
from bot.store.types import utcnow
from bot.watches.flows import (
    DetectionOutcome,
    Proposer,
    act_on_degraded,
    decision_details,
    record_decision,
)
from bot.watches.reader import WatchSamples, read_samples
from bot.watches.targets import WatchTarget, watch_targets
from integrations.errors import IntegrationError
from integrations.metrics.base import MetricsSource

log = logging.getLogger(__name__)

# A watch is due a little before its interval is up, so a job tick that fires slightly
# early does not skip a whole interval.
_DUE_SHARE = 0.9


@dataclass(frozen=True)
class Evaluation:
    """What one model's evaluation decided and did."""

    model: str
    state: str
    changed: bool
    explanation: str
    detection: DetectionOutcome | None = None


def evaluate_watches(
    engine: Engine,
    *,
    config: RollbotConfig,
    source: MetricsSource,
    proposer: Proposer,
    notifier: Notifier,
    now: datetime | None = None,
) -> list[Evaluation]:
    """Evaluate every due watch once; IntegrationError from the metrics source propagates."""
    now = now or utcnow()
    with session_scope(engine) as session:
        targets = [t for t in watch_targets(session, config=config) if _due(session, t, now)]
    if not targets:
        return []
    samples = read_samples(source, targets, now=now)
    evaluations = []
    for target in targets:
        with session_scope(engine) as session:
            evaluation = _evaluate(session, target, samples.get(target.model), proposer, now)
        if evaluation.detection is not None:
            _notify(notifier, evaluation)
        evaluations.append(evaluation)
    return evaluations


def _due(session: Session, target: WatchTarget, now: datetime) -> bool:
    row = session.get(WatchStateRow, target.model)
    if row is None or row.evaluated_at is None:
        return True
    return (now - row.evaluated_at) >= target.watch.interval * _DUE_SHARE


def _evaluate(
    session: Session,
    target: WatchTarget,
    samples: WatchSamples | None,
    proposer: Proposer,
    now: datetime,
) -> Evaluation:
    row = session.get(WatchStateRow, target.model) or WatchStateRow(model=target.model)
    decision, baseline_mode = _decide(target, samples, now)
    state = _remembered(row, target)
    policy = WatchPolicy(
        confirmations=target.watch.confirmations,
        cooldown_seconds=target.watch.cooldown.total_seconds(),
    )
    step = state.observe(decision.state, now=decision.evaluated_at, policy=policy)
    details = decision_details(decision, target, baseline_mode)
    details["watch"] = step.reason
    changed = _changed(row, details)
    detection = None
    if step.propose:
        detection = act_on_degraded(
            session, target=target, decision=decision, details=details, proposer=proposer, now=now
        )
    elif changed:
        incident = incidents.open_for_model(session, model=target.model)
        record_decision(
            session, target=target, details=details, incident_id=incident.id if incident else None
        )
    row.state = {
        **step.state.to_dict(),
        "candidate_version": target.candidate_version,
        "deployed_at": target.deployed_at.timestamp(),
    }
    row.last_decision = details
    row.evaluated_at = now
    session.add(row)
    return Evaluation(
        target.model, decision.state.value, changed, details["explanation"], detection
    )


def _decide(
    target: WatchTarget, samples: WatchSamples | None, now: datetime
) -> tuple[Decision, str]:
    if samples is None:
        # No earlier version to compare with: say so rather than guess.
        return Decision(DetectionState.INCONCLUSIVE, now.timestamp()), "none"
    decision = detect(
        baseline=samples.baseline,
        candidate=samples.candidate,
        rules=target.watch.rules(),
        now=samples.now,
        min_sustain_seconds=target.watch.sustain.total_seconds(),
    )
    return decision, samples.baseline_mode


def _remembered(row: WatchStateRow, target: WatchTarget) -> WatchState:
    """The stored state; a new deploy starts counting afresh but keeps the cooldown."""
    state = WatchState.from_dict(row.state or {})
    deployed_at = target.deployed_at.timestamp()
    if row.state.get("candidate_version") != target.candidate_version:
        state = WatchState(
            last_proposal_at=state.last_proposal_at, last_rollback_at=state.last_rollback_at
        )
    if target.is_rollback and (state.last_rollback_at or 0) < deployed_at:
        state = state.rolled_back(now=deployed_at)
    return state


def _changed(row: WatchStateRow, details: dict[str, object]) -> bool:
    last = row.last_decision or {}
    return (
        last.get("state") != details["state"]
        or last.get("candidate_version") != details["candidate_version"]
    )


def _notify(notifier: Notifier, evaluation: Evaluation) -> None:
    """Best effort: the database and the timeline are the record, Slack is the news."""
    detection = evaluation.detection
    assert detection is not None
    summary = f"*{evaluation.model}* degraded: {evaluation.explanation}"
    if detection.no_proposal_reason:
        summary += f"\nNo rollback proposed: {detection.no_proposal_reason}"
    try:
        if detection.opened:
            notifier.incident_opened(incident_id=detection.incident_id)
        notifier.evidence_posted(incident_id=detection.incident_id, summary=summary)
        if detection.request_id is not None:
            notifier.proposal_created(request_id=detection.request_id)
    except Exception:
        log.exception("notifying about %s failed", evaluation.model)


def evaluate_once(
    engine: Engine,
    *,
    config: RollbotConfig,
    source: MetricsSource,
    proposer: Proposer,
    notifier: Notifier,
) -> Sequence[Evaluation]:
    """The worker's job body: a metrics outage is logged and retried next tick, never fatal."""
    try:
        return evaluate_watches(
            engine, config=config, source=source, proposer=proposer, notifier=notifier
        )
    except IntegrationError as exc:
        log.warning("watch evaluation skipped: %s", exc)
        return []
