"""The deployer protocol the domain depends on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

DeployTarget = Mapping[str, Any]
"""Where a model is deployed, as configured per model (for example namespace and name)."""


@dataclass(frozen=True)
class DeploymentState:
    """What is serving now.

    ``version`` is the stable version; during a traffic shift ``canary_version`` serves
    ``canary_percent`` percent of requests and ``version`` the rest.
    """

    target: str
    version: str | None
    canary_version: str | None = None
    canary_percent: int = 0
    ready: bool = True
    message: str = ""
    # Where the newest spec's artifact comes from (KServe's storageUri), when the deployer
    # knows it: a version the deployer cannot name is found in the registry by its source.
    source: str | None = None

    @property
    def newest_version(self) -> str | None:
        """The version taking new traffic: a canary in flight, else the stable one (None when
        the deployer cannot name it)."""
        return self.canary_version if self.canary_percent > 0 else self.version

    def serving_percent(self, version: str) -> int:
        """Percent of traffic the given version receives."""
        if self.canary_version == version:
            return self.canary_percent
        if self.version == version:
            return 100 - (self.canary_percent if self.canary_version else 0)
        return 0


@runtime_checkable
class Deployer(Protocol):
    """Switch the serving version of one deployment target."""

    kind: str
    supports_traffic_split: bool

    def validate_target(self, target: DeployTarget) -> list[str]:
        """Problems with a configured target (missing keys and such); empty when it is fine."""
        ...

    def current_state(self, target: DeployTarget) -> DeploymentState:
        """Read what serves now, from the live system."""
        ...

    def shift_traffic(
        self,
        target: DeployTarget,
        *,
        version: str,
        source: str | None,
        percent: int,
        idempotency_key: str,
    ) -> DeploymentState:
        """Send ``percent`` of traffic to ``version``; 100 makes it the only version."""
        ...
