"""What the KServe and Deployment deployers share: one namespaced object on the API server."""

from __future__ import annotations

from integrations.deployers.base import DeployTarget
from integrations.errors import InvalidRequest, Where
from integrations.kube import JsonObject, KubeClient


class KubeObjectDeployer:
    """Reads and names the target object; subclasses say which object and how to change it.

    ``resource`` names the object kind in messages; ``api_path`` is its URL with
    ``{namespace}`` and ``{name}`` placeholders.
    """

    kind: str
    resource: str
    api_path: str

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    def validate_target(self, target: DeployTarget) -> list[str]:
        """Problems with a configured target; empty when it is fine."""
        raise NotImplementedError

    def _describe(self, target: DeployTarget) -> str:
        return f"{self.resource} {target.get('namespace')}/{target.get('name')}"

    def _path(self, target: DeployTarget) -> str:
        return self.api_path.format(namespace=target["namespace"], name=target["name"])

    def _where(self, target: DeployTarget, operation: str) -> Where:
        return {"integration": self.kind, "operation": operation, "target": self._describe(target)}

    def _require_valid(self, target: DeployTarget, operation: str) -> Where:
        """The error context of the operation; InvalidRequest when the target is malformed."""
        where = self._where(target, operation)
        if problems := self.validate_target(target):
            raise InvalidRequest("; ".join(problems), **where)
        return where

    def _read(self, target: DeployTarget, operation: str) -> JsonObject:
        return self._kube.get(self._path(target), **self._where(target, operation))
