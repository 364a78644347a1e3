"""Which version each watched model runs, since when, and which version it is judged against.

Registries overwrite aliases without history, so the versions come from Rollbot's own
DeploymentRecord history, never from the registry: a deploy is what the serving poll saw
at the deployer (bot/serving.py), a rollback what the runbook engine shifted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from bot.config.models import RollbotConfig
from bot.config.watch import WatchConfig
from bot.safe_versions import MODEL_COMPONENT
from bot.store.models import DeploymentRecord


@dataclass(frozen=True)
class WatchTarget:
    """One model's current deploy and the safe version it is compared with."""

    model: str
    watch: WatchConfig
    candidate_version: str
    deployed_at: datetime
    baseline_version: str | None
    deploy_reason: str = "deploy"

    @property
    def metrics_name(self) -> str:
        """The model's name in the metrics' model label."""
        return self.watch.metrics_name or self.model

    @property
    def is_rollback(self) -> bool:
        """Whether the current version came back through a rollback."""
        return self.deploy_reason == "rollback"


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
    targets = []
    for model, watch in watches.items():
        target = _target(model, watch, history.get(model, []))
        if target is not None:
            targets.append(target)
    return targets


def _target(model: str, watch: WatchConfig, records: list[DeploymentRecord]) -> WatchTarget | None:
    current = next((r for r in reversed(records) if r.ended_at is None), None)
    if current is None:
        return None
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
