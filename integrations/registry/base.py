"""The model registry protocol the domain depends on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, as the registry describes it."""

    model: str
    version: str
    source: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    created_at: datetime | None = None
    status: str | None = None


@runtime_checkable
class ModelRegistry(Protocol):
    """Read versions and move aliases. Every write carries an idempotency key."""

    kind: str

    def get_version(self, model: str, version: str) -> ModelVersion:
        """The version, or :class:`integrations.errors.NotFound`."""
        ...

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Every version of the model, oldest first."""
        ...

    def get_alias(self, model: str, alias: str) -> ModelVersion | None:
        """The version the alias points to, or None when the alias is not set."""
        ...

    def set_alias(self, model: str, alias: str, version: str, *, idempotency_key: str) -> None:
        """Point the alias at the version (idempotent: setting it twice is harmless)."""
        ...

    def set_version_tag(
        self, model: str, version: str, key: str, value: str, *, idempotency_key: str
    ) -> None:
        """Set one tag on one version."""
        ...
