"""The tables of the whole product. Timestamps are timezone-aware on every backend.

Status values are plain strings (see the ``*Status`` enums) so that adding one never needs
a database enum migration.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from bot.store.types import UTCDateTime, utcnow


def _time() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


def _now() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class IncidentStatus(StrEnum):
    OPEN = "open"
    MITIGATING = "mitigating"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class Incident(SQLModel, table=True):
    """One degradation of one model, from detection to resolution."""

    __table_args__ = (
        # One open incident per model: alerts and detections join it instead of opening more.
        Index(
            "uq_incident_open_model",
            "model",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    model: str | None = Field(default=None, max_length=200, index=True)
    title: str = Field(max_length=500)
    severity: str = Field(default="sev3", max_length=10)
    status: str = Field(default=IncidentStatus.OPEN, max_length=20, index=True)
    declared_by: str | None = Field(default=None, max_length=200)
    channel_id: str | None = Field(default=None, max_length=50)
    headline_ts: str | None = Field(default=None, max_length=50)
    from_version: str | None = Field(default=None, max_length=100)
    to_version: str | None = Field(default=None, max_length=100)
    created_at: datetime = _now()
    degraded_at: datetime | None = _time()
    detected_at: datetime | None = _time()
    acknowledged_at: datetime | None = _time()
    approved_at: datetime | None = _time()
    mitigated_at: datetime | None = _time()
    verified_at: datetime | None = _time()
    resolved_at: datetime | None = _time()


class TimelineEvent(SQLModel, table=True):
    """An append-only, hash-chained record of something that happened.

    ``chain`` groups events (one chain per incident, ``global`` otherwise); ``seq`` numbers
    them within it, and ``hash`` covers the content and ``prev_hash``, so editing or
    deleting a stored event breaks the chain where it happened.
    """

    __tablename__ = "timeline_event"
    __table_args__ = (UniqueConstraint("chain", "seq", name="uq_timeline_chain_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    chain: str = Field(max_length=50)
    seq: int
    occurred_at: datetime = _now()
    recorded_at: datetime = _now()
    kind: str = Field(max_length=50, index=True)
    source: str = Field(max_length=30)
    actor: str | None = Field(default=None, max_length=200)
    summary: str = Field(sa_column=Column(Text, nullable=False))
    details: dict[str, Any] = _json()
    pinned: bool = False
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(SQLModel, table=True):
    """An Alertmanager alert, deduplicated by fingerprint."""

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(max_length=100, unique=True)
    alertname: str = Field(default="", max_length=200)
    model: str | None = Field(default=None, max_length=200, index=True)
    status: str = Field(default=AlertStatus.FIRING, max_length=20)
    labels: dict[str, Any] = _json()
    annotations: dict[str, Any] = _json()
    generator_url: str | None = Field(default=None, max_length=2000)
    starts_at: datetime | None = _time()
    ends_at: datetime | None = _time()
    first_seen: datetime = _now()
    last_seen: datetime = _now()
    receive_count: int = 1
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ApprovalRequest(SQLModel, table=True):
    """A proposed rollback waiting for the approvals its policy demands.

    ``plan`` and ``plan_hash`` are the exact plan shown to approvers; the policy is copied
    in so that a later configuration change cannot loosen a request already made.
    """

    __tablename__ = "approval_request"
    __table_args__ = (
        # At most one proposal per model awaits approval, enforced by the database itself.
        Index(
            "uq_approval_request_pending_model",
            "model",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    model: str = Field(max_length=200, index=True)
    from_version: str | None = Field(default=None, max_length=100)
    to_version: str = Field(max_length=100)
    # The version the requester named; None when Rollbot chose the newest safe version, which
    # an approval then checks is still the one it would choose.
    requested_version: str | None = Field(default=None, max_length=100)
    runbook: str = Field(max_length=200)
    plan: dict[str, Any] = _json()
    plan_hash: str = Field(max_length=64)
    policy_name: str = Field(max_length=100)
    policy: dict[str, Any] = _json()
    evidence: dict[str, Any] = _json()
    requested_by: str = Field(max_length=200)
    requested_via: str = Field(default="slack", max_length=30)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    status: str = Field(default=ApprovalStatus.PENDING, max_length=20, index=True)
    created_at: datetime = _now()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    decided_at: datetime | None = _time()
    slack_channel: str | None = Field(default=None, max_length=50)
    slack_ts: str | None = Field(default=None, max_length=50)


class ApprovalDecision(SQLModel, table=True):
    """One person's approve or reject on one request; a second click by them changes nothing."""

    __tablename__ = "approval_decision"
    __table_args__ = (
        UniqueConstraint("request_id", "approver", name="uq_approval_decision_approver"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="approval_request.id", index=True)
    approver: str = Field(max_length=200)
    decision: str = Field(max_length=20)
    plan_hash: str = Field(max_length=64)
    comment: str | None = Field(default=None, sa_column=Column(Text))
    decided_at: datetime = _now()


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPENSATING = "compensating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"

    @classmethod
    def active(cls) -> tuple[RunStatus, ...]:
        """States in which a run holds its model."""
        return (cls.PENDING, cls.RUNNING, cls.COMPENSATING)


class RunbookRun(SQLModel, table=True):
    """One execution of a rendered runbook plan."""

    __tablename__ = "runbook_run"
    __table_args__ = (
        # At most one active run per model, enforced by the database itself.
        Index(
            "uq_runbook_run_active_model",
            "model",
            unique=True,
            sqlite_where=text("status IN ('pending', 'running', 'compensating')"),
            postgresql_where=text("status IN ('pending', 'running', 'compensating')"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    approval_request_id: int | None = Field(
        default=None, foreign_key="approval_request.id", unique=True
    )
    model: str = Field(max_length=200, index=True)
    runbook: str = Field(max_length=200)
    plan: dict[str, Any] = _json()
    plan_hash: str = Field(max_length=64)
    from_version: str | None = Field(default=None, max_length=100)
    to_version: str = Field(max_length=100)
    status: str = Field(default=RunStatus.PENDING, max_length=20, index=True)
    drill: bool = False
    abort_requested: bool = False
    abort_requested_by: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, sa_column=Column(Text))
    claimed_by: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = _time()
    created_at: datetime = _now()
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class StepRun(SQLModel, table=True):
    """One step of a run: marked running before it acts and finished after."""

    __tablename__ = "step_run"
    __table_args__ = (UniqueConstraint("run_id", "phase", "position", name="uq_step_run_position"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runbook_run.id", index=True)
    phase: str = Field(default="forward", max_length=20)
    position: int
    name: str = Field(max_length=200)
    action: str = Field(max_length=100)
    params: dict[str, Any] = _json()
    state: str = Field(default=StepState.PENDING, max_length=20)
    attempt: int = 0
    idempotency_key: str | None = Field(default=None, max_length=200)
    output: dict[str, Any] = _json()
    error: str | None = Field(default=None, sa_column=Column(Text))
    next_attempt_at: datetime | None = _time()
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()


class DeploymentRecord(SQLModel, table=True):
    """Which version of which model (or linked component) served from when to when, and why.

    Registries overwrite aliases without history; this table is Rollbot's own memory of
    what served, which safe-version selection depends on.
    """

    __tablename__ = "deployment_record"
    __table_args__ = (
        Index("ix_deployment_record_model_started", "model", "component", "started_at"),
        Index(
            "uq_deployment_record_current",
            "model",
            "component",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=200)
    component: str = Field(default="model", max_length=200)
    version: str = Field(max_length=100)
    started_at: datetime = _now()
    ended_at: datetime | None = _time()
    reason: str = Field(default="deploy", max_length=30)
    actor: str | None = Field(default=None, max_length=200)
    incident_id: int | None = Field(default=None, foreign_key="incident.id")
    run_id: int | None = Field(default=None, foreign_key="runbook_run.id")
    had_incident: bool = False


class WatchState(SQLModel, table=True):
    """What a model's watch last decided, kept between evaluations (hysteresis, cooldown)."""

    __tablename__ = "watch_state"

    model: str = Field(primary_key=True, max_length=200)
    state: dict[str, Any] = _json()
    last_decision: dict[str, Any] = _json()
    evaluated_at: datetime | None = _time()


class SchedulerLease(SQLModel, table=True):
    """Leadership lease for workers on databases without advisory locks (SQLite)."""

    __tablename__ = "scheduler_lease"

    name: str = Field(primary_key=True, max_length=100)
    holder: str = Field(max_length=200)
    acquired_at: datetime = _now()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class SlackInboxStatus(StrEnum):
    ACKED = "acked"  # nothing to do after the ack
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class SlackInbox(SQLModel, table=True):
    """Every Slack request accepted once (the replay guard), and its follow-up work until done.

    ``key`` is the request's signature (HTTP) or envelope id (Socket Mode): inserting the same
    key again is a replay. A row outlives its work until ``expires_at``, so its key refuses
    replays for as long as Slack's five-minute timestamp window would let one through.
    """

    __tablename__ = "slack_inbox"

    key: str = Field(primary_key=True, max_length=120)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    status: str = Field(default=SlackInboxStatus.ACKED, max_length=10, index=True)
    kind: str | None = Field(default=None, max_length=30)
    payload: dict[str, Any] = _json()
    attempts: int = 0
    lease_until: datetime | None = _time()
    received_at: datetime = _now()
    error: str | None = Field(default=None, sa_column=Column(Text))
