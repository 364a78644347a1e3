"""A file-backed model registry for demos and drills: one JSON file, safe for many writers.

The file looks like::

    {"models": {"fraud-detector": {
        "versions": {"4": {"source": "s3://…/4", "tags": {"validated": "true"},
                           "created_at": "2025-01-01T00:00:00+00:00", "status": "READY"}},
        "aliases": {"production": "4"}}}}

Versions keep their registration order, which is what "oldest first" means here. Writes
take an exclusive ``fcntl`` lock on a sidecar ``<file>.lock``, re-read the file, and replace
it atomically, so readers never see half a file and concurrent writers never lose updates.
Every write is naturally idempotent, so the ``idempotency_key`` is accepted and not stored.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from integrations.errors import IntegrationUnavailable, InvalidRequest, NotFound
from integrations.registry.base import ModelVersion

_READY = "READY"


class LocalRegistry:
    """A :class:`~integrations.registry.base.ModelRegistry` kept in one local JSON file."""

    kind = "local"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def get_version(self, model: str, version: str) -> ModelVersion:
        """The version, or :class:`NotFound` when the model or version does not exist."""
        operation, target = "get_version", _version_target(model, version)
        data = self._read(operation=operation, target=target)
        return self._find_version(data, model, version, operation=operation, target=target)

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Every version of the model in registration order; :class:`NotFound` for no model."""
        operation, target = "list_versions", model
        entry = self._find_model(self._read(operation=operation, target=target), model, operation)
        return [_to_model_version(model, v, entry) for v in entry["versions"]]

    def get_alias(self, model: str, alias: str) -> ModelVersion | None:
        """The version the alias points to, None when unset; :class:`NotFound` for no model."""
        operation = "get_alias"
        entry = self._find_model(self._read(operation=operation, target=model), model, operation)
        version = entry["aliases"].get(alias)
        return None if version is None else _to_model_version(model, version, entry)

    def set_alias(self, model: str, alias: str, version: str, *, idempotency_key: str) -> None:
        """Point the alias at the version; repeating the call is harmless."""
        operation, target = "set_alias", f"{model} alias {alias} -> version {version}"
        with self._update(operation=operation, target=target) as data:
            self._find_version(data, model, version, operation=operation, target=target)
            data["models"][model]["aliases"][alias] = version

    def set_version_tag(
        self, model: str, version: str, key: str, value: str, *, idempotency_key: str
    ) -> None:
        """Set one tag on one version; repeating the call is harmless."""
        operation, target = "set_version_tag", f"{_version_target(model, version)} tag {key}"
        with self._update(operation=operation, target=target) as data:
            self._find_version(data, model, version, operation=operation, target=target)
            data["models"][model]["versions"][version].setdefault("tags", {})[key] = value

    def register_version(
        self,
        model: str,
        version: str,
        *,
        source: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Add a version (creating the model); re-registering updates source and merges tags."""
        operation, target = "register_version", _version_target(model, version)
        if not model or not version:
            raise InvalidRequest(
                "model and version must be non-empty",
                integration=self.kind,
                operation=operation,
                target=target,
            )
        with self._update(operation=operation, target=target) as data:
            entry = data["models"].setdefault(model, {"versions": {}, "aliases": {}})
            record = entry["versions"].setdefault(
                version,
                {"source": None, "tags": {}, "created_at": datetime.now(UTC).isoformat()},
            )
            record["status"] = _READY
            if source is not None:
                record["source"] = source
            record.setdefault("tags", {}).update(tags or {})
            return _to_model_version(model, version, entry)

    def _find_model(self, data: dict[str, Any], model: str, operation: str) -> dict[str, Any]:
        entry: dict[str, Any] | None = data["models"].get(model)
        if entry is None:
            raise NotFound(
                f"no such model in {self.path}",
                integration=self.kind,
                operation=operation,
                target=model,
            )
        return entry

    def _find_version(
        self, data: dict[str, Any], model: str, version: str, *, operation: str, target: str
    ) -> ModelVersion:
        entry = data["models"].get(model)
        if entry is None or version not in entry["versions"]:
            what = "model" if entry is None else "version"
            raise NotFound(
                f"no such {what} in {self.path}",
                integration=self.kind,
                operation=operation,
                target=target,
            )
        return _to_model_version(model, version, entry)

    def _read(self, *, operation: str, target: str) -> dict[str, Any]:
        """The whole registry; readers need no lock because writers replace atomically."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"models": {}}
        except OSError as exc:
            raise IntegrationUnavailable(
                f"cannot read registry file {self.path}: {exc.strerror or exc}",
                integration=self.kind,
                operation=operation,
                target=target,
            ) from exc
        return self._parse(text, operation=operation, target=target)

    def _parse(self, text: str, *, operation: str, target: str) -> dict[str, Any]:
        """Decode and shape-check the file, naming it in every complaint."""

        def corrupt(detail: str) -> InvalidRequest:
            return InvalidRequest(
                f"registry file {self.path} is corrupt: {detail}",
                integration=self.kind,
                operation=operation,
                target=target,
            )

        try:
            data = json.loads(text) if text.strip() else {"models": {}}
        except json.JSONDecodeError as exc:
            raise corrupt(f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, dict):
            raise corrupt('expected a JSON object with a "models" object')
        for name, entry in models.items():
            problem = _entry_problem(entry)
            if problem:
                raise corrupt(f"model {name!r}: {problem}")
        return data

    @contextmanager
    def _update(self, *, operation: str, target: str) -> Iterator[dict[str, Any]]:
        """Yield the registry under an exclusive lock and write it back atomically."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = self._lock_path.open("a")
        except OSError as exc:
            raise IntegrationUnavailable(
                f"cannot lock registry file {self.path}: {exc.strerror or exc}",
                integration=self.kind,
                operation=operation,
                target=target,
            ) from exc
        with lock_file:
            # The lock lives on a sidecar file because os.replace swaps the data file's
            # inode, and a lock on the old inode would not exclude the next writer.
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            data = self._read(operation=operation, target=target)
            yield data
            self._write(data, operation=operation, target=target)

    def _write(self, data: dict[str, Any], *, operation: str, target: str) -> None:
        """Write to a temporary file next to the target, then swap it in with os.replace."""
        tmp_name: str | None = None
        try:
            with tempfile.NamedTemporaryFile(
                "w",
                encoding="utf-8",
                dir=self.path.parent,
                prefix=f".{self.path.name}.",
                suffix=".tmp",
                delete=False,
            ) as tmp:
                tmp_name = tmp.name
                json.dump(data, tmp, indent=2, sort_keys=False)
                tmp.write("\n")
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, self.path)
        except OSError as exc:
            if tmp_name is not None:
                Path(tmp_name).unlink(missing_ok=True)
            raise IntegrationUnavailable(
                f"cannot write registry file {self.path}: {exc.strerror or exc}",
                integration=self.kind,
                operation=operation,
                target=target,
            ) from exc


def _entry_problem(entry: object) -> str | None:
    """What is wrong with one model's entry, or None when it is well formed."""
    if not isinstance(entry, dict):
        return "expected an object"
    versions, aliases = entry.get("versions"), entry.get("aliases")
    if not isinstance(versions, dict) or not isinstance(aliases, dict):
        return 'expected "versions" and "aliases" objects'
    for version, record in versions.items():
        if not isinstance(record, dict) or not isinstance(record.get("tags", {}), dict):
            return f'version {version!r}: expected an object with a "tags" object'
        created_at = record.get("created_at")
        if created_at is not None and not _is_aware_timestamp(created_at):
            return f"version {version!r}: created_at must be an ISO time with a UTC offset"
    for alias, version in aliases.items():
        if not isinstance(version, str) or version not in versions:
            return f"alias {alias!r} points at unknown version {version!r}"
    return None


def _is_aware_timestamp(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _to_model_version(model: str, version: str, entry: Mapping[str, Any]) -> ModelVersion:
    record = entry["versions"][version]
    created_at = record.get("created_at")
    return ModelVersion(
        model=model,
        version=version,
        source=record.get("source"),
        tags=dict(record.get("tags", {})),
        aliases=tuple(a for a, v in entry["aliases"].items() if v == version),
        created_at=datetime.fromisoformat(created_at) if created_at else None,
        status=record.get("status", _READY),
    )


def _version_target(model: str, version: str) -> str:
    return f"{model} version {version}"
