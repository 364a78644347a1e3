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
from bot.safe_versions import (
    MODEL_COMPONENT,
    current_deployment,
    record_deployment,
    version_by_source,
)
from bot.store.db import session_scope
from bot.store.models import DeploymentRecord
from bot.store.types import utcnow
from bot.telemetry import DEPLOYS_RECORDED
from integrations.deployers.base import Deployer, DeployTarget
from integrations.errors import IntegrationError
from integrations.registry.base import ModelRegistry

log = logging.getLogger(__name__)

SOURCE = "deployer"
ACTOR = "rollbot"


@dataclass(frozen=True)
class Served:
    """Where one model or linked component is served: what a poll asks. The registry, when
    known, names a version the deployer cannot, by the artifact's source."""

    model: str
    component: str
    deployer: Deployer
    target: DeployTarget
    registry: ModelRegistry | None = None
    registry_model: str | None = None


@dataclass(frozen=True)
class Reading:
    """The version taking new traffic at one component, and when the deployer was asked."""

    model: str
    component: str
    version: str
    asked_at: datetime


def record_reading(session: Session, reading: Reading) -> DeploymentRecord | None:
    """Record the reading's version as serving since it was asked, when that is news.

    Returns the new record, or None when nothing changed, the model's rollback is running,
    or a newer record already exists.
    """
    version = reading.version
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
        # Registry versions by artifact source; a version's source never changes.
        self._by_source: dict[tuple[str, str], str] = {}

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
            version = state.newest_version
            if version is None and state.source is not None:
                version = self._version_by_source(where, state.source)
        except IntegrationError as exc:
            self._trouble(key, f"cannot read what {_name(where)} serves: {exc}")
            return None
        if version is None:
            self._trouble(
                key,
                f"cannot tell which version of {_name(where)} serves: the deployer names none"
                + (
                    f" and no registry version has the source {state.source}"
                    if state.source
                    else ""
                ),
            )
            return None
        if self._failing.pop(key, None) is not None:
            log.info("reading what %s serves again", _name(where))
        return Reading(where.model, where.component, version, asked_at)

    def _version_by_source(self, where: Served, source: str) -> str | None:
        """The registry version whose artifact is ``source`` (as a pipeline deploys it)."""
        if where.registry is None or where.registry_model is None:
            return None
        known = (where.registry_model, source)
        if known not in self._by_source:
            version = version_by_source(where.registry, where.registry_model, source)
            if version is None:
                return None
            self._by_source[known] = version
        return self._by_source[known]

    def _trouble(self, key: tuple[str, str], message: str) -> None:
        """Log a problem when it starts or changes, not at every poll."""
        if self._failing.get(key) != message:
            log.warning("%s", message)
        self._failing[key] = message


def _name(where: Served) -> str:
    if where.component == MODEL_COMPONENT:
        return where.model
    return f"{where.model} component {where.component}"


def _describe(record: DeploymentRecord) -> str:
    return f"{record.model} ({record.component}) serves version {record.version}: {record.reason}"
