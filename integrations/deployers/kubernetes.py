"""Plain Kubernetes ``Deployment`` (apps/v1) deployer: one version at a time, no traffic split.

Target keys: ``namespace``, ``name``, ``container`` and exactly one of ``image`` (a template
such as ``registry.example.com/fraud:{version}``) or ``env_var`` (an environment variable of
the container that holds the model version). Changes go in as a JSON patch because a merge
patch would replace the whole container list; the patch tests the container's name at the
index it was read from, and carries the ``resourceVersion`` read, so a concurrent edit makes
the API server refuse it instead of changing the wrong container.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from integrations.deployers.base import DeploymentState, DeployTarget
from integrations.deployers.kube_object import KubeObjectDeployer
from integrations.errors import InvalidRequest, Unsupported, Where
from integrations.kube import JsonObject, escape_pointer, object_name_problems

VERSION_ANNOTATION = "rollbot.io/model-version"


IDEMPOTENCY_ANNOTATION = "rollbot.io/idempotency-key"
_PLACEHOLDER = "{version}"


class KubernetesDeployer(KubeObjectDeployer):
    """Switch the model version of one container in a Deployment by a rolling update."""

    kind = "kubernetes"
    supports_traffic_split = False
    resource = "Deployment"
    api_path = "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"

    def validate_target(self, target: DeployTarget) -> list[str]:
        """Problems with a configured target; empty when it is fine."""
        problems = object_name_problems(target, ("namespace", "name"))
        if not target.get("container"):
            problems.append("target is missing 'container'")
        image, env_var = target.get("image"), target.get("env_var")
        if image and env_var:
            problems.append("target must set only one of 'image' and 'env_var'")
        elif not image and not env_var:
            problems.append("target is missing 'image' (a template) or 'env_var'")
        elif image and (not isinstance(image, str) or image.count(_PLACEHOLDER) != 1):
            problems.append(f"target 'image' must contain '{{version}}' once, got {image!r}")
        return problems

    def current_state(self, target: DeployTarget) -> DeploymentState:
        """The container's version and whether the rollout has finished."""
        self._require_valid(target, "current_state")
        return self._state(target, self._read(target, "current_state"), "current_state")

    def shift_traffic(
        self,
        target: DeployTarget,
        *,
        version: str,
        source: str | None,
        percent: int,
        idempotency_key: str,
    ) -> DeploymentState:
        """Roll the Deployment to ``version``; only ``percent=100`` is possible."""
        operation = "shift_traffic"
        where = self._require_valid(target, operation)
        if percent != 100:
            raise Unsupported(
                f"a Deployment cannot split traffic; only percent=100 is possible, got {percent}",
                **where,
            )
        if not version or any(char.isspace() for char in version):
            raise InvalidRequest(f"version {version!r} cannot go into a container", **where)

        obj = self._read(target, operation)
        with _malformed_is_invalid(where):
            index, container = _container(obj, target, where)
            # A retried step must not start a second rollout.
            if _container_version(container, target) == version:
                return self._state(target, obj, operation)
            operations = _version_operations(index, container, target, version)
            operations += _annotation_operations(
                obj, {VERSION_ANNOTATION: version, IDEMPOTENCY_ANNOTATION: idempotency_key}
            )
        patched = self._kube.json_patch(
            self._path(target),
            [
                {"op": "replace", "path": "/metadata/resourceVersion", "value": _rv(obj)},
                {
                    "op": "test",
                    "path": _container_pointer(index, "name"),
                    "value": container["name"],
                },
                *operations,
            ],
            integration=self.kind,
            operation=operation,
            target=where["target"],
        )
        return self._state(target, patched, operation)

    def _state(self, target: DeployTarget, obj: JsonObject, operation: str) -> DeploymentState:
        where = self._where(target, operation)
        with _malformed_is_invalid(where):
            _, container = _container(obj, target, where)
            ready, message = _rollout_status(obj)
            version = _container_version(container, target)
        if version is None:
            message = "; ".join(
                filter(
                    None, [f"cannot tell the version of container {container['name']!r}", message]
                )
            )
        return DeploymentState(
            target=self._describe(target), version=version, ready=ready, message=message
        )


@contextmanager
def _malformed_is_invalid(where: Where) -> Iterator[None]:
    """A Deployment whose fields have unexpected types is refused, not a crash."""
    try:
        yield
    except (AttributeError, TypeError, KeyError) as exc:
        raise InvalidRequest(f"malformed Deployment: {type(exc).__name__}: {exc}", **where) from exc


def _rv(obj: JsonObject) -> Any:
    return obj.get("metadata", {}).get("resourceVersion")


def _container_pointer(index: int, *rest: str) -> str:
    return "/".join(["/spec/template/spec/containers", str(index), *rest])


def _container(obj: JsonObject, target: DeployTarget, where: Where) -> tuple[int, dict[str, Any]]:
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    for index, container in enumerate(containers):
        if container.get("name") == target["container"]:
            return index, container
    names = ", ".join(str(c.get("name")) for c in containers) or "none"
    raise InvalidRequest(f"has no container {target['container']!r} (containers: {names})", **where)


def _container_version(container: dict[str, Any], target: DeployTarget) -> str | None:
    """The version the container runs, read from its image or its environment."""
    if target.get("image"):
        before, after = str(target["image"]).split(_PLACEHOLDER)
        pattern = re.escape(before) + r"(?P<version>[^/@]+?)" + re.escape(after)
        match = re.fullmatch(pattern, str(container.get("image", "")))
        return match.group("version") if match else None
    for entry in container.get("env") or []:
        if entry.get("name") == target["env_var"]:
            value = entry.get("value")  # a valueFrom reference cannot be read from here
            return str(value) if value else None
    return None


def _version_operations(
    index: int, container: dict[str, Any], target: DeployTarget, version: str
) -> list[dict[str, Any]]:
    if target.get("image"):
        image = str(target["image"]).replace(_PLACEHOLDER, version)
        return [{"op": "replace", "path": _container_pointer(index, "image"), "value": image}]
    variable = {"name": target["env_var"], "value": version}
    env = container.get("env")
    if env is None:
        return [{"op": "add", "path": _container_pointer(index, "env"), "value": [variable]}]
    for position, entry in enumerate(env):
        if entry.get("name") == target["env_var"]:
            pointer = _container_pointer(index, "env", str(position))
            # Replace the whole entry: a leftover valueFrom would win over the new value.
            return [
                {"op": "test", "path": pointer + "/name", "value": target["env_var"]},
                {"op": "replace", "path": pointer, "value": variable},
            ]
    return [{"op": "add", "path": _container_pointer(index, "env", "-"), "value": variable}]


def _annotation_operations(obj: JsonObject, values: dict[str, str]) -> list[dict[str, Any]]:
    if obj.get("metadata", {}).get("annotations") is None:
        return [{"op": "add", "path": "/metadata/annotations", "value": values}]
    return [
        {"op": "add", "path": "/metadata/annotations/" + escape_pointer(key), "value": value}
        for key, value in values.items()
    ]


def _rollout_status(obj: JsonObject) -> tuple[bool, str]:
    """Ready when the rollout is complete, judged the way ``kubectl rollout status`` does."""
    metadata, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    generation = metadata.get("generation")
    if generation is not None and status.get("observedGeneration", 0) < generation:
        return False, "waiting for the Deployment controller to observe the new spec"
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conditions.get("Progressing", {})
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return (
            False,
            f"rollout failed: {progressing.get('message') or 'progress deadline exceeded'}",
        )
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < wanted:
        return False, f"{updated} of {wanted} replicas updated"
    old = status.get("replicas", 0) - updated
    if old > 0:
        return False, f"{old} old replicas pending termination"
    ready = status.get("readyReplicas", 0)
    available = status.get("availableReplicas", 0)
    if min(ready, available) < updated:
        return False, f"{min(ready, available)} of {updated} updated replicas available"
    if conditions.get("Available", {}).get("status") == "False":
        return False, f"not available: {conditions['Available'].get('message') or ''}".strip()
    return True, ""
