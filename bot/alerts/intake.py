"""Storing a webhook notification: one transaction for the whole batch.

Alerts are upserted by fingerprint, firing alerts that name a model open or join that
model's incident, and the timeline records each alert that starts firing or resolves.
Locks are always taken in the same order (incidents by model, alerts by fingerprint,
timeline chains by incident) so concurrent notifications queue instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot.alerts.payload import AlertmanagerPayload, AlertPayload
from bot.config.models import AlertmanagerConfig
from bot.incidents import service as incidents
from bot.store.db import upsert_insert
from bot.store.models import Alert, AlertStatus, Incident
from bot.store.types import utcnow
from bot.timeline import record_event

SOURCE = "alertmanager"
# How long after a resolution a firing copy with the same start counts as a late delivery.
STALE_WINDOW = timedelta(minutes=5)
# The incident title's column width; alert names are free text of any length.
_MAX_TITLE = 500


@dataclass
class IntakeResult:
    """What one notification changed."""

    received: int = 0
    new: int = 0
    updated: int = 0
    resolved: int = 0
    without_model: int = 0
    # Late notices of an alert's earlier state (a retried or delayed notification).
    stale: int = 0
    incidents: dict[str, int] = field(default_factory=dict)
    opened: list[int] = field(default_factory=list)
    # Models with an alert that started firing in this batch (candidates for a proposal).
    newly_firing: set[str] = field(default_factory=set)
    # Models with any alert firing in this batch, new or still firing.
    firing: set[str] = field(default_factory=set)

    def counts(self) -> dict[str, Any]:
        """The summary the webhook answers with."""
        return {
            "received": self.received,
            "new": self.new,
            "updated": self.updated,
            "resolved": self.resolved,
            "without_model": self.without_model,
            "stale": self.stale,
            "incidents": sorted(set(self.incidents.values())),
            "incidents_opened": sorted(self.opened),
        }


@dataclass(frozen=True)
class _Change:
    incident_id: int
    kind: str
    alert: AlertPayload
    model: str


def ingest(
    session: Session,
    *,
    payload: AlertmanagerPayload,
    config: AlertmanagerConfig,
    models_by_label: Mapping[str, str] | None = None,
) -> IntakeResult:
    """Store the notification in the caller's transaction.

    An alert's model is its ``config.model_label`` value, or the model ``models_by_label``
    names for it (a watch's ``metrics_name``), so its alerts join the watch's incident.
    """
    now = utcnow()
    # Within one notification the last word about a fingerprint wins.
    alerts = sorted(
        {a.fingerprint: a for a in payload.alerts}.values(), key=lambda a: a.fingerprint
    )
    result = IntakeResult(received=len(payload.alerts))
    stale = _old_news(session, alerts, now)
    if stale:
        result.stale = len(stale)
        alerts = [alert for alert in alerts if alert.fingerprint not in stale]
    aliases = models_by_label or {}
    models = {a.fingerprint: alert_model(a, config.model_label, aliases) for a in alerts}
    incident_ids = _incidents_for(session, alerts, models, result)
    result.without_model = sum(model is None for model in models.values())
    homes = {fp: incident_ids.get(model) if model else None for fp, model in models.items()}
    created = _insert_new(
        session,
        [
            _values(a, model=models[a.fingerprint], incident_id=homes[a.fingerprint], now=now)
            for a in alerts
        ],
    )
    known = _locked(session, [a.fingerprint for a in alerts if a.fingerprint not in created])
    changes: list[_Change] = []
    for alert in alerts:
        model, incident_id = models[alert.fingerprint], homes[alert.fingerprint]
        if model is not None and alert.status == AlertStatus.FIRING:
            result.firing.add(model)
        row = known.get(alert.fingerprint)
        if row is None:
            change: str | None = _created(alert, model=model, result=result)
        else:
            change = _update(
                row, alert, model=model, incident_id=incident_id, now=now, result=result
            )
            # A resolution belongs to the incident the alert fired in, even a resolved one.
            incident_id = row.incident_id
            result.updated += 1
            session.add(row)
        if change is not None and incident_id is not None and model is not None:
            changes.append(_Change(incident_id, change, alert, model))
    _record(session, changes)
    return result


def alert_model(alert: AlertPayload, label: str, aliases: Mapping[str, str]) -> str | None:
    """The model an alert is about: its label's value, mapped through ``aliases``."""
    value = alert.labels.get(label)
    return aliases.get(value, value) if value else None


def _incidents_for(
    session: Session,
    alerts: Iterable[AlertPayload],
    models: Mapping[str, str | None],
    result: IntakeResult,
) -> dict[str, int]:
    """Open or join one incident per model with a firing alert; resolved ones only join."""
    firing: dict[str, AlertPayload] = {}
    resolved: set[str] = set()
    for alert in alerts:
        model = models[alert.fingerprint]
        if model and alert.status == AlertStatus.FIRING:
            firing.setdefault(model, alert)
        elif model:
            resolved.add(model)
    ids: dict[str, int] = {}
    for model in sorted(firing):
        alert = firing[model]
        incident, opened = incidents.open_or_join(
            session,
            model=model,
            title=f"{alert.alertname or 'alert'} on {model}"[:_MAX_TITLE],
            actor=SOURCE,
            source=SOURCE,
            degraded_at=alert.starts_at,
            detected_at=utcnow(),
            details={"alertname": alert.alertname, "fingerprint": alert.fingerprint},
        )
        assert incident.id is not None
        ids[model] = incident.id
        if opened:
            result.opened.append(incident.id)
        incidents.mark_time(session, incident=incident, key="degraded_at", at=alert.starts_at)
    for model in sorted(resolved - set(firing)):
        existing = incidents.open_for_model(session, model=model)
        if existing is not None and existing.id is not None:
            ids[model] = existing.id
    result.incidents.update(ids)
    return ids


def _values(
    alert: AlertPayload, *, model: str | None, incident_id: int | None, now: datetime
) -> dict[str, Any]:
    """The row a first sighting of ``alert`` inserts."""
    return {
        "fingerprint": alert.fingerprint,
        "alertname": alert.alertname[:200],
        "model": model,
        "status": alert.status,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "generator_url": alert.generator_url,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "first_seen": now,
        "last_seen": now,
        "receive_count": 1,
        "incident_id": incident_id,
    }


def _created(alert: AlertPayload, *, model: str | None, result: IntakeResult) -> str:
    """Count a first sighting; the timeline change it makes."""
    resolved = alert.status == AlertStatus.RESOLVED
    result.resolved += resolved
    result.new += 1
    if not resolved and model:
        result.newly_firing.add(model)
    return "alert.resolved" if resolved else "alert.firing"


def _update(
    row: Alert,
    alert: AlertPayload,
    *,
    model: str | None,
    incident_id: int | None,
    now: datetime,
    result: IntakeResult,
) -> str | None:
    """Bring a known alert's row up to date; the timeline change it makes, if any."""
    resolved = alert.status == AlertStatus.RESOLVED
    result.resolved += resolved
    # Still firing after its incident was resolved: news in the incident it opens now.
    moved = not resolved and incident_id is not None and row.incident_id != incident_id
    before = row.status
    row.status = alert.status
    row.labels, row.annotations = alert.labels, alert.annotations
    row.starts_at, row.ends_at = alert.starts_at, alert.ends_at
    row.generator_url, row.model = alert.generator_url, model
    row.last_seen = now
    row.receive_count += 1
    if incident_id is not None and (row.incident_id is None or not resolved):
        row.incident_id = incident_id
    if before == alert.status and not moved:
        return None
    if not resolved and model:
        result.newly_firing.add(model)
    return "alert.resolved" if resolved else "alert.firing"


# Rows per INSERT statement: 13 columns each stays far below SQLite's 32,766 parameters.
_INSERT_CHUNK = 500


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the fingerprints not stored yet, in one statement per chunk; those inserted."""
    insert = upsert_insert(session)
    created: set[str] = set()
    for first in range(0, len(rows), _INSERT_CHUNK):
        statement = (
            insert(Alert)
            .values(rows[first : first + _INSERT_CHUNK])
            .on_conflict_do_nothing(index_elements=["fingerprint"])
            .returning(col(Alert.fingerprint))
        )
        created.update(session.execute(statement).scalars())
    return created


def _old_news(session: Session, alerts: Sequence[AlertPayload], now: datetime) -> set[str]:
    """Notices about an alert's earlier state, arriving late (a retry, the other HA peer).

    Left out, they neither bring a resolved alert back, nor reopen an incident, nor resolve
    an alert firing again:

    - a firing copy of an alert that resolved after the same start, within ``STALE_WINDOW``
      of that resolution (a new firing has a new start; later, the same start is believed,
      as Prometheus restores an alert's start after a restart and an alert firing again must
      never be ignored for good);
    - a resolution that ended before the stored firing started: it closes an earlier episode.
    """
    by_fingerprint = {a.fingerprint: a for a in alerts}
    stale: set[str] = set()
    names = sorted(by_fingerprint)
    for first in range(0, len(names), _INSERT_CHUNK):
        stored = session.exec(
            select(Alert.fingerprint, Alert.status, Alert.starts_at, Alert.last_seen).where(
                col(Alert.fingerprint).in_(names[first : first + _INSERT_CHUNK])
            )
        ).all()
        stale.update(
            fingerprint
            for fingerprint, status, starts_at, last_seen in stored
            if starts_at is not None
            and _is_old_news(by_fingerprint[fingerprint], status, starts_at, last_seen, now)
        )
    return stale


def _is_old_news(
    alert: AlertPayload, status: str, starts_at: datetime, last_seen: datetime, now: datetime
) -> bool:
    if alert.status == AlertStatus.FIRING:
        return (
            status == AlertStatus.RESOLVED
            and alert.starts_at <= starts_at
            and now - last_seen <= STALE_WINDOW
        )
    return status == AlertStatus.FIRING and alert.ends_at is not None and alert.ends_at <= starts_at


def _locked(session: Session, fingerprints: list[str]) -> dict[str, Alert]:
    """The stored rows of known alerts, locked in fingerprint order (no deadlocks)."""
    found: dict[str, Alert] = {}
    for first in range(0, len(fingerprints), _INSERT_CHUNK):
        chunk = fingerprints[first : first + _INSERT_CHUNK]
        for row in session.exec(
            select(Alert)
            .where(col(Alert.fingerprint).in_(chunk))
            .order_by(col(Alert.fingerprint))
            .with_for_update()
        ):
            found[row.fingerprint] = row
    return found


def _record(session: Session, changes: list[_Change]) -> None:
    """One event per incident and kind: a storm must not bury the timeline in alerts."""
    grouped: dict[tuple[int, str], list[_Change]] = {}
    for change in changes:
        grouped.setdefault((change.incident_id, change.kind), []).append(change)
    for (incident_id, kind), group in sorted(grouped.items()):
        first = group[0].alert
        verb = "resolved" if kind == "alert.resolved" else "firing"
        names = sorted({c.alert.alertname or c.alert.fingerprint for c in group})
        note = first.annotations.get("summary") or first.annotations.get("description") or ""
        summary = f"{len(group)} alerts {verb} for {group[0].model}: {', '.join(names)}"
        if len(group) == 1:
            summary = f"Alert {names[0]} {verb} for {group[0].model}" + (
                f": {note}" if note else ""
            )
        ends = [c.alert.ends_at for c in group if c.alert.ends_at is not None]
        record_event(
            session,
            incident_id=incident_id,
            kind=kind,
            source=SOURCE,
            actor=SOURCE,
            summary=summary,
            details={
                "alerts": [
                    {
                        "fingerprint": c.alert.fingerprint,
                        "labels": c.alert.labels,
                        "starts_at": c.alert.starts_at.isoformat(),
                        "ends_at": c.alert.ends_at.isoformat() if c.alert.ends_at else None,
                    }
                    for c in group
                ]
            },
            occurred_at=max(ends) if kind == "alert.resolved" and ends else None,
        )


def open_incident_count(session: Session) -> int:
    """How many incidents are not resolved (for the storm benchmark)."""
    return len(session.exec(select(Incident.id).where(Incident.status != "resolved")).all())
