"""File-backed deployer for demos and drills: real state, no cluster.

State lives in one JSON file shared by every process on the machine (web, worker, CLI): reads
take a shared ``fcntl`` lock, changes an exclusive one, and every write replaces the file
atomically so a crash never leaves half a file. Each applied idempotency key is recorded, so a
retried step is a no-op and drills can count the side effects with ``applied_operations``.

Target keys: ``name`` and optional ``initial_version`` (what serves before the first shift).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from integrations.deployers.base import DeploymentState, DeployTarget
from integrations.errors import InvalidRequest, Where


@dataclass(frozen=True)
class AppliedOperation:
    """One traffic shift the local deployer carried out."""

    idempotency_key: str
    version: str
    source: str | None
    percent: int
    applied_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


class LocalDeployer:
    """Keep serving state in a local JSON file."""

    kind = "local"
    supports_traffic_split = True

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _now) -> None:
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._clock = clock

    def validate_target(self, target: DeployTarget) -> list[str]:
        """Problems with a configured target; empty when it is fine."""
        name = target.get("name")
        if not name:
            return ["target is missing 'name'"]
        if not isinstance(name, str):
            return [f"target 'name' must be text, got {name!r}"]
        return []

    def current_state(self, target: DeployTarget) -> DeploymentState:
        """What the state file says serves now."""
        where = self._where(target, "current_state")
        with self._locked(fcntl.LOCK_SH):
            entry = self._entry(self._load(where), target)
        return self._state(target, entry)

    def shift_traffic(
        self,
        target: DeployTarget,
        *,
        version: str,
        source: str | None,
        percent: int,
        idempotency_key: str,
    ) -> DeploymentState:
        """Send ``percent`` of traffic to ``version``; a key already applied changes nothing."""
        where = self._where(target, "shift_traffic")
        if not 0 <= percent <= 100:
            raise InvalidRequest(f"percent must be between 0 and 100, got {percent}", **where)
        with self._locked(fcntl.LOCK_EX):
            data = self._load(where)
            entry = self._entry(data, target)
            if any(op["idempotency_key"] == idempotency_key for op in entry["operations"]):
                return self._state(target, entry)
            _apply(entry, version, percent)
            operation = AppliedOperation(idempotency_key, version, source, percent, self._clock())
            entry["operations"].append({**asdict(operation), "applied_at": _iso(operation)})
            data.setdefault("targets", {})[target["name"]] = entry
            self._save(data)
        return self._state(target, entry)

    def applied_operations(self, target: DeployTarget) -> list[AppliedOperation]:
        """Every shift applied to the target, oldest first (repeats of a key excluded)."""
        where = self._where(target, "applied_operations")
        with self._locked(fcntl.LOCK_SH):
            entry = self._entry(self._load(where), target)
        return [
            AppliedOperation(
                idempotency_key=op["idempotency_key"],
                version=op["version"],
                source=op["source"],
                percent=op["percent"],
                applied_at=datetime.fromisoformat(op["applied_at"]),
            )
            for op in entry["operations"]
        ]

    def _where(self, target: DeployTarget, operation: str) -> Where:
        where: Where = {
            "integration": self.kind,
            "operation": operation,
            "target": f"local {target.get('name')}",
        }
        if problems := self.validate_target(target):
            raise InvalidRequest("; ".join(problems), **where)
        return where

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        # A separate lock file: the state file itself is replaced on every write.
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, mode)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self, where: Where) -> dict[str, Any]:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"targets": {}}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidRequest(
                f"state file {self._path} is not valid JSON: {exc}", **where
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("targets", {}), dict):
            raise InvalidRequest(f"state file {self._path} has an unexpected shape", **where)
        return data

    def _save(self, data: dict[str, Any]) -> None:
        handle, temporary = tempfile.mkstemp(dir=self._path.parent, prefix=self._path.name + ".")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=2, sort_keys=True)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self._path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @staticmethod
    def _entry(data: dict[str, Any], target: DeployTarget) -> dict[str, Any]:
        stored = data.get("targets", {}).get(target["name"])
        if stored is not None:
            return dict(stored)
        initial = target.get("initial_version")
        return {
            "version": str(initial) if initial is not None else None,
            "canary_version": None,
            "canary_percent": 0,
            "operations": [],
        }

    @staticmethod
    def _state(target: DeployTarget, entry: dict[str, Any]) -> DeploymentState:
        return DeploymentState(
            target=f"local {target['name']}",
            version=entry["version"],
            canary_version=entry["canary_version"],
            canary_percent=entry["canary_percent"],
        )


def _iso(operation: AppliedOperation) -> str:
    return operation.applied_at.isoformat()


def _apply(entry: dict[str, Any], version: str, percent: int) -> None:
    """Change the serving state in place the way a canary-capable server would."""
    if percent == 100 or entry["version"] is None:
        entry.update(version=version, canary_version=None, canary_percent=0)
    elif version == entry["version"]:
        # Traffic back to the stable version: the canary (if any) keeps the remainder.
        if entry["canary_version"] is not None:
            entry["canary_percent"] = 100 - percent
    else:
        entry.update(canary_version=version, canary_percent=percent)
    if entry["canary_version"] is not None and entry["canary_percent"] == 0:
        entry.update(canary_version=None)
