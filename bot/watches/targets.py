"""Which version each watched model runs, since when, and which version it is judged against.

Registries overwrite aliases without history, so the versions come from Rollbot's own
DeploymentRecord history, never from the registry: a deploy is what the serving poll saw
at the deployer (bot/serving.py), a rollback what the runbook engine shifted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import Session, col, select

from bot.config.models import RollbotConfig
from bot.config.watch import WatchConfig
from bot.safe_versions import MODEL_COMPONENT
from bot.store.models import DeploymentRecord, Incident, IncidentStatus


@dataclass(frozen=True)
class WatchTarget:
    """One model's current deploy and the safe version it is compared with."""

    model: str
    watch: WatchConfig
    candidate_version: str
    deployed_at: datetime
    baseline_version: str | None
    deploy_reason: str = "deploy"
    # Where the baseline window ends when not at the deploy: after a rollback, the restored
    # version is judged against its own hour before it stopped serving.
    baseline_until: datetime | None = None
    # After a rollback, while its incident is open: the watch verifies or escalates it
    # instead of proposing another rollback.
    rollback_incident_open: bool = False

    @property
    def metrics_name(self) -> str:
        """The model's name in the metrics' model label."""
        return self.watch.metrics_name or self.model

    @property
    def is_rollback(self) -> bool:
        """Whether the current version came back through a rollback."""
        return self.deploy_reason == "rollback"

    @property
    def checks_recovery(self) -> bool:
        """Whether this watch checks a rollback whose incident is open: the restored version
        against its own past, to verify or escalate that incident."""
        return (
            self.is_rollback
            and self.baseline_version == self.candidate_version
            and self.rollback_incident_open
        )


def watched_models(config: RollbotConfig) -> dict[str, WatchConfig]:
    """Every model with a watch, by name."""
    return {name: model.watch for name, model in config.models.items() if model.watch}


def watch_targets(session: Session, *, config: RollbotConfig) -> list[WatchTarget]:
    """The current deploy of every watched model that has one, with its baseline version."""
    watches = watched_models(config)
    if not watches:
        return []
    records = session.exec(
        select(DeploymentRecord)
        .where(col(DeploymentRecord.model).in_(list(watches)))
        .where(DeploymentRecord.component == MODEL_COMPONENT)
        .order_by(col(DeploymentRecord.model), col(DeploymentRecord.started_at))
    ).all()
    history: dict[str, list[DeploymentRecord]] = {}
    for record in records:
        history.setdefault(record.model, []).append(record)
    open_ids = _open_rollback_incidents(session, records)
    targets = []
    for model, watch in watches.items():
        target = _target(model, watch, history.get(model, []), open_ids)
        if target is not None:
            targets.append(target)
    return targets


def _open_rollback_incidents(session: Session, records: Sequence[DeploymentRecord]) -> set[int]:
    """The unresolved incidents that the rollbacks serving now were made for."""
    ids = {
        r.incident_id
        for r in records
        if r.ended_at is None and r.reason == "rollback" and r.incident_id is not None
    }
    if not ids:
        return set()
    found = session.exec(
        select(Incident.id)
        .where(col(Incident.id).in_(sorted(ids)))
        .where(Incident.status != IncidentStatus.RESOLVED)
    ).all()
    return {incident_id for incident_id in found if incident_id is not None}


def _target(
    model: str, watch: WatchConfig, records: list[DeploymentRecord], open_ids: set[int]
) -> WatchTarget | None:
    current = next((r for r in reversed(records) if r.ended_at is None), None)
    if current is None:
        return None
    if current.reason == "rollback" and (restored := _restored(watch, current, records)):
        return replace(restored, rollback_incident_open=current.incident_id in open_ids)
    # The baseline is the newest earlier version that served without an incident: after a
    # rollback that is not the version just rolled away from.
    baseline = next(
        (
            r
            for r in reversed(records)
            if r.started_at < current.started_at
            and r.version != current.version
            and not r.had_incident
        ),
        None,
    )
    return WatchTarget(
        model=model,
        watch=watch,
        candidate_version=current.version,
        deployed_at=current.started_at,
        baseline_version=baseline.version if baseline else None,
        deploy_reason=current.reason,
    )


def _restored(
    watch: WatchConfig, current: DeploymentRecord, records: list[DeploymentRecord]
) -> WatchTarget | None:
    """After a rollback: the restored version against itself before the deploy it replaced,
    which is how a watch checks that the metrics came back within their boundaries."""
    before = [r for r in records if r.started_at < current.started_at]
    if not before or before[-1].version == current.version:
        return None
    replaced = before[-1]
    # Its own last hour of serving, however long ago (1 → 3 → 2 → back to 1).
    ends = [
        r.ended_at
        for r in before
        if r.version == current.version
        and r.ended_at is not None
        and r.ended_at <= replaced.started_at
    ]
    if not ends:
        return None
    return WatchTarget(
        model=current.model,
        watch=watch,
        candidate_version=current.version,
        deployed_at=current.started_at,
        baseline_version=current.version,
        deploy_reason=current.reason,
        baseline_until=max(ends),
    )
