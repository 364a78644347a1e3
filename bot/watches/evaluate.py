"""One evaluation cycle of every due watch: read metrics, judge, remember, act.

A watch is due when its interval is up and a step has completed since it was last judged.
Metrics are read chunk by chunk of models with no transaction open; the detector is pure,
so a large cycle judges chunks in worker processes while the next chunk is read. Verdicts
are stored in one transaction per chunk of models, and a model that proposes a rollback
gets its own, so one model's trouble never blocks the others'. People are told only after
the commit (a notifier reads the committed state), with a chart of the evidence.

A chunk of models whose metrics cannot be read is reported as such and left as it was, so
it is tried again at the next tick; only when no chunk can be read is the cycle skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.config.models import RollbotConfig
from bot.detection.evidence import DetectionState
from bot.notify import Notifier
from bot.store.db import session_scope, upsert_insert
from bot.store.models import Incident, IncidentStatus
from bot.store.models import WatchState as WatchStateRow
from bot.store.types import utcnow
from bot.telemetry import WATCH_VERDICTS
from bot.watches.flows import (
    DetectionOutcome,
    Proposer,
    act_on_degraded,
    decision_details,
    record_decision,
)
from bot.watches.judging import Judgement, Work, judge_chunks, remembered
from bot.watches.news import tell_degraded, tell_recovery
from bot.watches.ranges import step_end
from bot.watches.reader import read_chunks
from bot.watches.recovery import RecoveryOutcome, check_recovery
from bot.watches.targets import WatchTarget, watch_targets, watched_models
from bot.watches.troubles import WatchTroubles
from integrations.errors import IntegrationError
from integrations.metrics.base import MetricsSource

log = logging.getLogger(__name__)

# How an evaluation whose metrics could not be read explains itself.
UNAVAILABLE = "metrics unavailable: "
# A watch is due a little before its interval is up, so a job tick that fires slightly
# early does not skip a whole interval.
_DUE_SHARE = 0.9
# Models stored per transaction: enough that commits stop dominating the cycle, few enough
# that no lock is held for long.
WRITE_CHUNK = 500


@dataclass(frozen=True)
class Evaluation:
    """What one model's evaluation decided and did."""

    model: str
    state: str
    changed: bool
    explanation: str
    detection: DetectionOutcome | None = None
    # After a rollback: whether the watch verified or escalated the incident.
    recovery: RecoveryOutcome | None = None


def evaluate_watches(
    engine: Engine,
    *,
    config: RollbotConfig,
    source: MetricsSource,
    proposer: Proposer,
    notifier: Notifier,
    now: datetime | None = None,
) -> list[Evaluation]:
    """Evaluate every due watch once; IntegrationError propagates when no metrics were read."""
    now = now or utcnow()
    with session_scope(engine) as session:
        targets = watch_targets(session, config=config)
        rows = {row.model: row for row in session.exec(select(WatchStateRow)).all()}
    due = [target for target in targets if _due(rows.get(target.model), target, now)]
    if not due:
        return []
    judgements, unavailable = _judge(source, due, rows, now)
    evaluations = _store(engine, judgements, rows, proposer, notifier, now)
    for judgement in judgements:
        WATCH_VERDICTS.labels(judgement.decision.state.value).inc()
    if unavailable:
        WATCH_VERDICTS.labels("unavailable").inc(len(unavailable))
    return evaluations + [
        Evaluation(model, DetectionState.INCONCLUSIVE.value, False, f"{UNAVAILABLE}{exc}")
        for model, exc in unavailable.items()
    ]


def _due(row: WatchStateRow | None, target: WatchTarget, now: datetime) -> bool:
    if row is None or row.evaluated_at is None or _new_deploy(row, target):
        return True
    # Judging the same complete steps again cannot change the verdict; it only costs.
    if step_end(target, now) <= float(row.state.get("evaluated_through", float("-inf"))):
        return False
    return (now - row.evaluated_at) >= target.watch.interval * _DUE_SHARE


def _new_deploy(row: WatchStateRow, target: WatchTarget) -> bool:
    return (
        row.state.get("candidate_version") != target.candidate_version
        or row.state.get("deployed_at") != target.deployed_at.timestamp()
    )


def _judge(
    source: MetricsSource,
    due: Sequence[WatchTarget],
    rows: dict[str, WatchStateRow],
    now: datetime,
) -> tuple[list[Judgement], dict[str, IntegrationError]]:
    """Every readable due model's verdict, and the models whose metrics could not be read.

    Models without a baseline version are judged inconclusive.
    """
    states = {t.model: remembered(_stored_state(rows.get(t.model)), t) for t in due}
    unavailable: dict[str, IntegrationError] = {}

    def work() -> Iterable[list[Work]]:
        read: set[str] = set()
        for reading in read_chunks(source, due, now=now):
            if reading.error is not None:
                unavailable.update((t.model, reading.error) for t in reading.targets)
                continue
            unavailable.update(reading.refused)
            read.update(reading.samples)
            yield [
                (t, reading.samples[t.model], states[t.model])
                for t in reading.targets
                if t.model in reading.samples
            ]
        if unavailable and not read:
            # Nothing could be read: an outage, so the cycle is skipped and retried whole.
            raise next(iter(unavailable.values()))
        judged = read | set(unavailable)
        yield [(t, None, states[t.model]) for t in due if t.model not in judged]

    by_model = {j.target.model: j for j in judge_chunks(work(), now=now.timestamp())}
    judged = [by_model[t.model] for t in due if t.model in by_model]
    return judged, unavailable


def _stored_state(row: WatchStateRow | None) -> dict[str, Any]:
    return dict(row.state) if row is not None else {}


def _store(
    engine: Engine,
    judgements: Sequence[Judgement],
    rows: dict[str, WatchStateRow],
    proposer: Proposer,
    notifier: Notifier,
    now: datetime,
) -> list[Evaluation]:
    """Remember every verdict: quiet ones in batches, each proposal in its own transaction.

    People hear of each proposal as soon as it is committed, so trouble with a later model
    never keeps an earlier one's news back.
    """
    done: dict[str, Evaluation] = {}
    quiet = [j for j in judgements if not j.step.propose]
    by_model = {j.target.model: j for j in judgements}
    for first in range(0, len(quiet), WRITE_CHUNK):
        with session_scope(engine) as session:
            stored = _store_quiet(session, quiet[first : first + WRITE_CHUNK], rows, now)
        for evaluation in stored:
            done[evaluation.model] = evaluation
            if evaluation.recovery is not None:
                tell_recovery(notifier, evaluation.recovery, by_model[evaluation.model])
    for judgement in judgements:
        if judgement.step.propose:
            with session_scope(engine) as session:
                evaluation = _store_proposal(session, judgement, proposer, now)
            done[evaluation.model] = evaluation
            assert evaluation.detection is not None
            tell_degraded(
                notifier,
                model=evaluation.model,
                explanation=evaluation.explanation,
                detection=evaluation.detection,
                judgement=judgement,
            )
    return [done[j.target.model] for j in judgements]


def _store_quiet(
    session: Session,
    chunk: Sequence[Judgement],
    rows: dict[str, WatchStateRow],
    now: datetime,
) -> list[Evaluation]:
    evaluations: list[Evaluation] = []
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    details_of = {j.target.model: _details(j) for j in chunk}
    changed = {m for m, d in details_of.items() if _changed(rows.get(m), d)}
    open_incidents = _open_incidents(session, sorted(changed))
    for judgement in chunk:
        model = judgement.target.model
        details = details_of[model]
        if model in changed:
            record_decision(
                session,
                target=judgement.target,
                details=details,
                incident_id=open_incidents.get(model),
            )
        values = _row_values(judgement, details, now)
        (updates if model in rows else inserts).append(values)
        evaluation = _evaluation(judgement, model in changed, None)
        if judgement.target.checks_recovery:
            outcome = check_recovery(
                session,
                target=judgement.target,
                decision=judgement.decision,
                details=details,
                now=now,
                confirmed=judgement.step.state.consecutive_degraded
                >= judgement.target.watch.confirmations,
            )
            evaluation = replace(evaluation, recovery=outcome)
        evaluations.append(evaluation)
    if updates:
        session.execute(update(WatchStateRow), updates)
    if inserts:
        # A cycle of a leader that is stepping down may have stored the model meanwhile.
        statement = upsert_insert(session)(WatchStateRow).on_conflict_do_nothing(
            index_elements=["model"]
        )
        session.execute(statement, inserts)
    return evaluations


def _store_proposal(
    session: Session, judgement: Judgement, proposer: Proposer, now: datetime
) -> Evaluation:
    target = judgement.target
    details = _details(judgement)
    detection = act_on_degraded(
        session,
        target=target,
        decision=judgement.decision,
        details=details,
        proposer=proposer,
        now=now,
    )
    row = session.get(WatchStateRow, target.model) or WatchStateRow(model=target.model)
    values = _row_values(judgement, details, now)
    if detection.retry:
        failed = judgement.step.state.proposal_failed(now=judgement.decision.evaluated_at)
        values["state"].update(failed.to_dict())
    row.state, row.last_decision, row.evaluated_at = (
        values["state"],
        values["last_decision"],
        values["evaluated_at"],
    )
    session.add(row)
    return _evaluation(judgement, True, detection)


def _details(judgement: Judgement) -> dict[str, Any]:
    details = decision_details(judgement.decision, judgement.target, judgement.baseline_mode)
    details["watch"] = judgement.step.reason
    return details


def _row_values(judgement: Judgement, details: dict[str, Any], now: datetime) -> dict[str, Any]:
    target = judgement.target
    return {
        "model": target.model,
        "state": {
            **judgement.step.state.to_dict(),
            "candidate_version": target.candidate_version,
            "deployed_at": target.deployed_at.timestamp(),
            "evaluated_through": judgement.through,
        },
        "last_decision": details,
        "evaluated_at": now,
    }


def _evaluation(
    judgement: Judgement, changed: bool, detection: DetectionOutcome | None
) -> Evaluation:
    return Evaluation(
        judgement.target.model,
        judgement.decision.state.value,
        changed,
        judgement.decision.explain(),
        detection,
    )


def _open_incidents(session: Session, models: Sequence[str]) -> dict[str, int]:
    """The unresolved incident of each model that has one, in one query."""
    if not models:
        return {}
    found = session.exec(
        select(Incident)
        .where(col(Incident.model).in_(models))
        .where(Incident.status != IncidentStatus.RESOLVED)
        .order_by(col(Incident.id))
    ).all()
    return {
        incident.model: incident.id
        for incident in found
        if incident.id is not None and incident.model is not None
    }


def _changed(row: WatchStateRow | None, details: dict[str, Any]) -> bool:
    last = row.last_decision if row is not None else {}
    return (
        last.get("state") != details["state"]
        or last.get("candidate_version") != details["candidate_version"]
    )


def evaluate_once(
    engine: Engine,
    *,
    config: RollbotConfig,
    source: MetricsSource,
    proposer: Proposer,
    notifier: Notifier,
    troubles: WatchTroubles | None = None,
) -> Sequence[Evaluation]:
    """The worker's job body: a metrics outage is retried next tick, never fatal.

    Unreadable metrics are logged through ``troubles`` when the trouble starts, changes or
    ends, not at every tick.
    """
    troubles = troubles or WatchTroubles()
    try:
        evaluations = evaluate_watches(
            engine, config=config, source=source, proposer=proposer, notifier=notifier
        )
    except IntegrationError as exc:
        # Nothing could be read: every watch waits for the next tick.
        watched = watched_models(config)
        troubles.observe(watched, {model: str(exc) for model in watched})
        return []
    unavailable = {
        e.model: e.explanation.removeprefix(UNAVAILABLE)
        for e in evaluations
        if e.explanation.startswith(UNAVAILABLE)
    }
    troubles.observe((e.model for e in evaluations), unavailable)
    return evaluations
