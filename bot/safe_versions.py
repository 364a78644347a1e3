"""Which versions are safe to roll back to, and Rollbot's own history of what served when.

A version is safe when it served in production before (deployment records totalling at
least ``min_serving``, none of them during an incident), carries every tag the policy
demands, and is not the version serving now. Registries overwrite aliases without history,
which is why the history lives in :class:`DeploymentRecord` rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot.config.durations import format_duration
from bot.config.models import SafeVersionPolicy
from bot.errors import ConfigError, RollbotError
from bot.store.models import DeploymentRecord
from bot.store.types import utcnow
from bot.timeline import record_event
from integrations.registry.base import ModelRegistry, ModelVersion

MODEL_COMPONENT = "model"
_READY = "READY"


class NoSafeVersion(RollbotError):
    """Nothing qualifies as a rollback target; the message says why for each candidate."""


@dataclass(frozen=True)
class SafeCandidate:
    """A version that may be rolled back to."""

    version: str
    served: timedelta
    last_served_until: datetime | None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    """A version that may not be rolled back to, and why."""

    version: str
    reasons: tuple[str, ...]

    def describe(self) -> str:
        """``4: had an incident while serving``."""
        return f"{self.version}: {', '.join(self.reasons)}"


def assess_versions(
    *,
    session: Session,
    registry: ModelRegistry,
    model: str,
    registry_model: str,
    policy: SafeVersionPolicy,
    current_version: str | None,
    now: datetime,
) -> tuple[list[SafeCandidate], list[Rejection]]:
    """Every registered version judged against the policy, newest first."""
    history = _history(session, model=model, component=MODEL_COMPONENT)
    safe: list[SafeCandidate] = []
    rejected: list[Rejection] = []
    for version in reversed(registry.list_versions(registry_model)):
        records = [r for r in history if r.version == version.version and r.started_at <= now]
        reasons = _reasons(version, records, policy, current_version, now)
        if reasons:
            rejected.append(Rejection(version.version, tuple(reasons)))
            continue
        ends = [r.ended_at for r in records if r.ended_at is not None]
        safe.append(
            SafeCandidate(
                version=version.version,
                served=_served(records, now),
                last_served_until=max(ends) if ends else None,
                tags=dict(version.tags),
            )
        )
    return safe, rejected


def safe_versions(
    *,
    session: Session,
    registry: ModelRegistry,
    model: str,
    registry_model: str,
    policy: SafeVersionPolicy,
    current_version: str | None,
    now: datetime,
) -> list[SafeCandidate]:
    """The versions that may be rolled back to, newest first."""
    safe, _ = assess_versions(
        session=session,
        registry=registry,
        model=model,
        registry_model=registry_model,
        policy=policy,
        current_version=current_version,
        now=now,
    )
    return safe


def no_safe_version(model: str, rejections: list[Rejection]) -> NoSafeVersion:
    """The error saying plainly why nothing qualifies."""
    if not rejections:
        return NoSafeVersion(f"no safe version of {model!r}: the registry has no versions")
    reasons = "; ".join(rejection.describe() for rejection in rejections)
    return NoSafeVersion(f"no safe version of {model!r} to roll back to: {reasons}")


def _reasons(
    version: ModelVersion,
    records: list[DeploymentRecord],
    policy: SafeVersionPolicy,
    current_version: str | None,
    now: datetime,
) -> list[str]:
    if version.version == current_version:
        return ["is serving now"]
    reasons = []
    if version.status and version.status.upper() != _READY:
        reasons.append(f"registry status is {version.status}")
    if not records:
        reasons.append("never served in production (no deployment history)")
    elif any(record.had_incident for record in records):
        reasons.append("had an incident while serving")
    elif (served := _served(records, now)) < policy.min_serving:
        reasons.append(
            f"served only {format_duration(served)} of the "
            f"{format_duration(policy.min_serving)} required"
        )
    for key, wanted in policy.require_tags.items():
        actual = version.tags.get(key)
        if actual is None:
            reasons.append(f"lacks tag {key}={wanted}")
        elif actual != wanted:
            reasons.append(f"has tag {key}={actual}, needs {key}={wanted}")
    return reasons


def _served(records: Iterable[DeploymentRecord], now: datetime) -> timedelta:
    """Total time served; the record still open counts up to ``now``."""
    return sum(((r.ended_at or now) - r.started_at for r in records), timedelta(0))


def _history(session: Session, *, model: str, component: str) -> list[DeploymentRecord]:
    return list(
        session.exec(
            select(DeploymentRecord)
            .where(DeploymentRecord.model == model)
            .where(DeploymentRecord.component == component)
            .order_by(col(DeploymentRecord.started_at))
        ).all()
    )


def current_deployment(
    session: Session, *, model: str, component: str = MODEL_COMPONENT
) -> DeploymentRecord | None:
    """The record of what serves now, if Rollbot knows."""
    return session.exec(
        select(DeploymentRecord)
        .where(DeploymentRecord.model == model)
        .where(DeploymentRecord.component == component)
        .where(col(DeploymentRecord.ended_at).is_(None))
    ).first()


def record_deployment(
    session: Session,
    *,
    model: str,
    component: str = MODEL_COMPONENT,
    version: str,
    reason: str,
    actor: str | None,
    run_id: int | None = None,
    incident_id: int | None = None,
    at: datetime | None = None,
    source: str = "rollbot",
) -> DeploymentRecord:
    """Close the current record and open one for ``version`` (no change if it already serves)."""
    at = at or utcnow()
    current = current_deployment(session, model=model, component=component)
    if current is not None and current.version == version:
        return current
    if current is not None:
        current.ended_at = at
        session.add(current)
        # The one-open-record index must see this row closed before the new one arrives.
        session.flush()
    # A version that once had an incident keeps the mark when it serves again.
    tainted = any(
        r.had_incident and r.version == version
        for r in _history(session, model=model, component=component)
    )
    record = DeploymentRecord(
        model=model,
        component=component,
        version=version,
        started_at=at,
        reason=reason,
        actor=actor,
        run_id=run_id,
        incident_id=incident_id,
        had_incident=tainted,
    )
    session.add(record)
    session.flush()
    what = model if component == MODEL_COMPONENT else f"{model} component {component}"
    before = f" (was {current.version})" if current is not None else ""
    record_event(
        session,
        kind="deployment.recorded",
        source=source,
        actor=actor,
        incident_id=incident_id,
        summary=f"{what} now serves version {version}{before}: {reason}",
        details={
            "model": model,
            "component": component,
            "version": version,
            "previous": current.version if current is not None else None,
            "reason": reason,
            "run_id": run_id,
        },
        occurred_at=at,
    )
    return record


def version_by_source(registry: ModelRegistry, registry_model: str, source: str) -> str | None:
    """The registered version whose artifact is ``source``, for a deployer that serves an
    artifact without naming its version (the newest when several share it)."""
    matching = [v.version for v in registry.list_versions(registry_model) if v.source == source]
    return matching[-1] if matching else None


def mark_incident(
    session: Session,
    *,
    model: str,
    version: str,
    component: str = MODEL_COMPONENT,
    incident_id: int | None = None,
    actor: str | None = None,
) -> int:
    """Flag every record of a version that degraded, so it is never proposed as safe."""
    records = [
        r for r in _history(session, model=model, component=component) if r.version == version
    ]
    changed = [r for r in records if not r.had_incident]
    for record in changed:
        record.had_incident = True
        session.add(record)
    if changed:
        record_event(
            session,
            kind="deployment.incident_marked",
            source="rollbot",
            actor=actor,
            incident_id=incident_id,
            summary=f"{model} version {version} marked as having had an incident",
            details={"model": model, "component": component, "version": version},
        )
    return len(changed)


def has_history(session: Session, *, model: str) -> bool:
    """Whether Rollbot has any deployment record of the model."""
    return (
        session.exec(select(DeploymentRecord.id).where(DeploymentRecord.model == model)).first()
        is not None
    )


def import_history(
    session: Session, *, model: str, entries: Iterable[Mapping[str, Any]], source: str = "seed"
) -> int:
    """Seed the history of a model Rollbot has never recorded (no-op otherwise).

    Each entry: ``version``, ``started_at`` and optional ``ended_at`` (ISO times with an
    offset), ``component`` (default ``model``), ``had_incident``, ``reason``.
    """
    if has_history(session, model=model):
        return 0
    records = [_imported_record(model, entry) for entry in entries]
    for record in sorted(records, key=lambda r: (r.component, r.started_at)):
        session.add(record)
        session.flush()
    if records:
        record_event(
            session,
            kind="deployment.history_imported",
            source=source,
            actor="rollbot",
            summary=f"Imported {len(records)} deployment record(s) of {model}",
            details={"model": model, "records": len(records)},
        )
    return len(records)


def _imported_record(model: str, entry: Mapping[str, Any]) -> DeploymentRecord:
    try:
        started_at = _aware(entry["started_at"])
        ended = entry.get("ended_at")
        return DeploymentRecord(
            model=model,
            component=str(entry.get("component", MODEL_COMPONENT)),
            version=str(entry["version"]),
            started_at=started_at,
            ended_at=_aware(ended) if ended is not None else None,
            reason=str(entry.get("reason", "imported")),
            had_incident=bool(entry.get("had_incident", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"deployment history of {model!r}: bad entry {dict(entry)!r}: {exc}"
        ) from None


def _aware(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} needs a UTC offset")
    return parsed


def version_served_with(
    session: Session, *, model: str, component: str, model_version: str
) -> str | None:
    """The component's version serving when ``model_version`` of the model last stopped serving."""
    served = [
        r
        for r in _history(session, model=model, component=MODEL_COMPONENT)
        if r.version == model_version and r.ended_at is not None
    ]
    if not served:
        return None
    moment = max(r.ended_at for r in served if r.ended_at is not None)
    for record in reversed(_history(session, model=model, component=component)):
        if record.started_at < moment and (record.ended_at is None or record.ended_at >= moment):
            return record.version
    return None
