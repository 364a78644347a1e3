"""Noticing deploys: what each deployer serves, kept as Rollbot's deployment history.

Nothing tells Rollbot that a pipeline deployed a new version, so it asks. Every poll reads
each configured model's (and linked component's) deployment from its deployer and records a
change of the version that takes new traffic: a canary's version while a canary serves, the
stable version otherwise. That history is what watches judge (the new version, since when,
and the safe version it is compared with) and what the safe-version policy counts.

A model whose rollback is running is left alone: the engine records its own shifts, and a
half-done shift is not a deploy. A reading older than the newest record is dropped, so a
slow deployer cannot overwrite what a rollback recorded meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.runs.service import active_run_for_model
from bot.safe_versions import MODEL_COMPONENT, current_deployment, record_deployment
from bot.store.db import session_scope
from bot.store.models import DeploymentRecord
from bot.store.types import utcnow
from bot.telemetry import DEPLOYS_RECORDED
from integrations.deployers.base import Deployer, DeploymentState, DeployTarget
from integrations.errors import IntegrationError

log = logging.getLogger(__name__)

SOURCE = "deployer"
ACTOR = "rollbot"


@dataclass(frozen=True)
class Served:
    """Where one model or linked component is served: what a poll asks."""

    model: str
    component: str
    deployer: Deployer
    target: DeployTarget


@dataclass(frozen=True)
class Reading:
    """One component's deployment as its deployer reported it, and when it was asked."""

    model: str
    component: str
    state: DeploymentState
    asked_at: datetime


def newest_version(state: DeploymentState) -> str | None:
    """The version taking new traffic: the canary while one serves, else the stable one."""
    if state.canary_version and state.canary_percent > 0:
        return state.canary_version
    return state.version


def record_reading(session: Session, reading: Reading) -> DeploymentRecord | None:
    """Record the reading's version as serving since it was asked, when that is news.

    Returns the new record, or None when nothing changed, the deployer could not name the
    version, the model's rollback is running, or a newer record already exists.
    """
    version = newest_version(reading.state)
    if version is None:
        return None
    if active_run_for_model(session, model=reading.model) is not None:
        return None
    current = current_deployment(session, model=reading.model, component=reading.component)
    if current is not None and (
        current.version == version or current.started_at > reading.asked_at
    ):
        return None
    return record_deployment(
        session,
        model=reading.model,
        component=reading.component,
        version=version,
        reason="seen at the deployer" if current is not None else "first seen at the deployer",
        actor=ACTOR,
        at=reading.asked_at,
        source=SOURCE,
    )


class ServingPoller:
    """Reads every deployment in turn and records what changed, one transaction per reading.

    A deployer that cannot be reached costs only its own readings; its trouble is logged
    when it starts and when it ends, not at every poll.
    """

    def __init__(
        self,
        engine: Engine,
        served: Sequence[Served],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._served = list(served)
        self._clock = clock
        self._failing: dict[tuple[str, str], str] = {}

    def poll(self) -> list[DeploymentRecord]:
        """Ask every deployer once; the records this poll made."""
        made = []
        for where in self._served:
            reading = self._read(where)
            if reading is None:
                continue
            with session_scope(self._engine) as session:
                record = record_reading(session, reading)
            if record is not None:
                log.info("%s", _describe(record))
                DEPLOYS_RECORDED.inc()
                made.append(record)
        return made

    def _read(self, where: Served) -> Reading | None:
        key = (where.model, where.component)
        asked_at = self._clock()
        try:
            state = where.deployer.current_state(where.target)
        except IntegrationError as exc:
            if self._failing.get(key) != str(exc):
                log.warning("cannot read what %s serves: %s", _name(where), exc)
            self._failing[key] = str(exc)
            return None
        if self._failing.pop(key, None) is not None:
            log.info("reading what %s serves again", _name(where))
        return Reading(where.model, where.component, state, asked_at)


def _name(where: Served) -> str:
    if where.component == MODEL_COMPONENT:
        return where.model
    return f"{where.model} component {where.component}"


def _describe(record: DeploymentRecord) -> str:
    return f"{record.model} ({record.component}) serves version {record.version}: {record.reason}"
