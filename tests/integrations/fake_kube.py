"""A fake Kubernetes API server behind ``httpx.MockTransport``.

It stores objects by URL path, answers GET and PATCH (merge patch and JSON patch) the way the
API server does: Status bodies on errors, ``resourceVersion`` bumped on every change and used
as an optimistic lock, ``generation`` bumped on spec changes, status untouched by patches. With
``auto_reconcile`` it also plays the KServe and Deployment controllers, so the status follows
the spec. Tests can queue failures: an HTTP status or a timeout for the next N requests.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from integrations.kube import JSON_PATCH, MERGE_PATCH, KubeClient, KubeConfig

API_URL = "https://kube.test:6443"
TOKEN = "kube-token-7f3a9c-do-not-leak"
_PLURALS = {"InferenceService": "inferenceservices", "Deployment": "deployments"}
_NOW = datetime(2025, 1, 1, tzinfo=UTC).isoformat().replace("+00:00", "Z")


class JsonPatchError(Exception):
    """A JSON patch operation that cannot be applied."""


def merge_patch(document: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(document) if isinstance(document, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise JsonPatchError(f"invalid pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _parent(document: Any, parts: list[str]) -> Any:
    node = document
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise JsonPatchError(f"missing path segment {part!r}") from exc
    return node


def apply_json_patch(document: Any, operations: list[dict[str, Any]]) -> Any:
    """RFC 6902 for the operations deployers use: test, add, replace, remove."""
    result = copy.deepcopy(document)
    for op in operations:
        parts = _pointer(op["path"])
        parent, last = _parent(result, parts), parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, op["value"])
            elif index >= len(parent):
                raise JsonPatchError(f"index {index} out of range")
            elif kind == "replace":
                parent[index] = op["value"]
            elif kind == "remove":
                del parent[index]
            elif kind == "test" and parent[index] != op["value"]:
                raise JsonPatchError(f"test failed at {op['path']}")
        elif isinstance(parent, dict):
            if kind == "add":
                parent[last] = op["value"]
            elif last not in parent:
                raise JsonPatchError(f"missing key at {op['path']}")
            elif kind == "replace":
                parent[last] = op["value"]
            elif kind == "remove":
                del parent[last]
            elif kind == "test" and parent[last] != op["value"]:
                raise JsonPatchError(f"test failed at {op['path']}")
        else:
            raise JsonPatchError(f"cannot apply {kind} at {op['path']}")
    return result


def object_path(obj: dict[str, Any]) -> str:
    """The REST path of a namespaced object."""
    group_version = obj["apiVersion"]
    prefix = "/api/v1" if "/" not in group_version else f"/apis/{group_version}"
    metadata = obj["metadata"]
    return f"{prefix}/namespaces/{metadata['namespace']}/{_PLURALS[obj['kind']]}/{metadata['name']}"


def status_response(code: int, reason: str, message: str) -> httpx.Response:
    """An error answer shaped like the API server's ``Status`` object."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return httpx.Response(code, json=body)


class FakeKube:
    """Stores objects, applies patches, plays the controllers, fails on request."""

    def __init__(self, *, token: str = TOKEN, auto_reconcile: bool = True) -> None:
        self.token = token
        self.auto_reconcile = auto_reconcile
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self._failures: deque[int | str] = deque()
        self._resource_version = 1000
        self._revisions: dict[str, tuple[Any, int]] = {}
        self._before_patch: list[Callable[[], None]] = []

    # --- set-up and inspection -------------------------------------------------------------

    def add(self, obj: dict[str, Any]) -> str:
        """Create an object as the API server would; returns its path."""
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("generation", 1)
        metadata.setdefault("uid", f"uid-{metadata['name']}")
        metadata.setdefault("creationTimestamp", _NOW)
        metadata["resourceVersion"] = self._next_resource_version()
        path = object_path(obj)
        self.objects[path] = obj
        if self.auto_reconcile:
            self.reconcile(path)
        return path

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests with this HTTP status."""
        self._failures.extend([status] * times)

    def time_out_next(self, times: int = 1) -> None:
        """Let the next ``times`` requests time out."""
        self._failures.extend(["timeout"] * times)

    def before_next_patch(self, edit: Callable[[], None]) -> None:
        """Run ``edit`` (a concurrent writer, say) just before the next PATCH is handled."""
        self._before_patch.append(edit)

    def patches(self) -> list[httpx.Request]:
        """Every PATCH request received, oldest first."""
        return [request for request in self.requests if request.method == "PATCH"]

    def kube_client(self) -> KubeClient:
        """A real :class:`KubeClient` wired to this fake."""
        transport = httpx.MockTransport(self.handle)
        return KubeClient(httpx.Client(transport=transport), KubeConfig(API_URL, token=TOKEN))

    # --- the API server --------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The MockTransport handler."""
        self.requests.append(request)
        if self._failures:
            failure = self._failures.popleft()
            if failure == "timeout":
                raise httpx.ReadTimeout("timed out", request=request)
            return status_response(int(failure), "InternalError", "etcdserver: leader changed")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return status_response(401, "Unauthorized", "Unauthorized")
        path = request.url.path
        current = self.objects.get(path)
        if current is None:
            plural, name = path.rsplit("/", 2)[-2:]
            group = path.split("/")[2] if path.startswith("/apis/") else ""
            resource = f"{plural}.{group}" if group else plural
            return status_response(404, "NotFound", f'{resource} "{name}" not found')
        if request.method == "GET":
            return httpx.Response(200, json=current)
        if request.method == "PATCH":
            if self._before_patch:
                self._before_patch.pop(0)()
                current = self.objects[path]
            return self._patch(path, current, request)
        return status_response(405, "MethodNotAllowed", "the server does not allow this method")

    def _patch(self, path: str, current: dict[str, Any], request: httpx.Request) -> httpx.Response:
        content_type = request.headers.get("content-type", "")
        body = json.loads(request.content)
        try:
            if content_type == MERGE_PATCH:
                updated = merge_patch(current, body)
            elif content_type == JSON_PATCH:
                updated = apply_json_patch(current, body)
            else:
                return status_response(415, "UnsupportedMediaType", f"{content_type} unsupported")
        except (JsonPatchError, KeyError, ValueError) as exc:
            return status_response(422, "Invalid", f"the server rejected the patch: {exc}")
        old_meta, new_meta = current["metadata"], updated.setdefault("metadata", {})
        if (
            new_meta.get("resourceVersion", old_meta["resourceVersion"])
            != old_meta["resourceVersion"]
        ):
            name = old_meta["name"]
            return status_response(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {path.split("/")[-2]} "{name}": the object '
                "has been modified; please apply your changes to the latest version and try again",
            )
        for key in ("name", "namespace", "uid", "generation", "creationTimestamp"):
            new_meta[key] = old_meta[key]
        new_meta["resourceVersion"] = old_meta["resourceVersion"]
        if "status" in current:  # the status subresource cannot be patched through the object
            updated["status"] = current["status"]
        else:
            updated.pop("status", None)
        if updated != current:
            if updated.get("spec") != current.get("spec"):
                new_meta["generation"] = old_meta["generation"] + 1
            new_meta["resourceVersion"] = self._next_resource_version()
            self.objects[path] = updated
            if self.auto_reconcile:
                self.reconcile(path)
        return httpx.Response(200, json=self.objects[path])

    def _next_resource_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    # --- the controllers -------------------------------------------------------------------

    def reconcile(self, path: str) -> None:
        """Bring the status in line with the spec, as the owning controller would."""
        obj = self.objects[path]
        if obj["kind"] == "InferenceService":
            self._reconcile_inference_service(path, obj)
        elif obj["kind"] == "Deployment":
            _reconcile_deployment(obj)
        obj["metadata"]["resourceVersion"] = self._next_resource_version()

    def _reconcile_inference_service(self, path: str, obj: dict[str, Any]) -> None:
        predictor = obj["spec"]["predictor"]
        template = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
        last_template, number = self._revisions.get(path, (None, 0))
        if template != last_template:
            number += 1  # Knative cuts a new revision only when the pod template changes
            self._revisions[path] = (template, number)
        name = obj["metadata"]["name"]
        latest = f"{name}-predictor-{number:05d}"
        status = obj.setdefault("status", {})
        component = status.setdefault("components", {}).setdefault("predictor", {})
        rolled_out = component.get("latestRolledoutRevision")
        canary = predictor.get("canaryTrafficPercent")
        url = f"http://{name}-predictor.{obj['metadata']['namespace']}.example.com"
        if canary is None or rolled_out is None or rolled_out == latest:
            if rolled_out not in (None, latest):
                component["previousRolledoutRevision"] = rolled_out
            component["latestRolledoutRevision"] = latest
            traffic = [{"latestRevision": True, "percent": 100, "revisionName": latest}]
        else:
            traffic = [
                {
                    "latestRevision": True,
                    "percent": canary,
                    "revisionName": latest,
                    "tag": "latest",
                },
                {
                    "latestRevision": False,
                    "percent": 100 - canary,
                    "revisionName": rolled_out,
                    "tag": "prev",
                },
            ]
        component.update(
            latestCreatedRevision=latest, latestReadyRevision=latest, traffic=traffic, url=url
        )
        status["url"] = url
        status["observedGeneration"] = obj["metadata"]["generation"]
        status["conditions"] = [
            {"type": kind, "status": "True", "lastTransitionTime": _NOW}
            for kind in ("IngressReady", "PredictorReady", "Ready")
        ]


def _reconcile_deployment(obj: dict[str, Any]) -> None:
    replicas = obj["spec"].get("replicas", 1)
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": "ReplicaSet has successfully progressed.",
            },
        ],
    }


def inference_service(
    *,
    name: str = "fraud",
    namespace: str = "models",
    storage_uri: str = "s3://models/fraud/6",
    version: str | None = "6",
) -> dict[str, Any]:
    """An InferenceService as a user would create it (modern ``predictor.model`` shape)."""
    annotations = {"serving.kserve.io/deploymentMode": "Serverless"}
    if version is not None:
        annotations["rollbot.io/model-version"] = version
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "runtime": "kserve-sklearnserver",
                    "runtimeVersion": "1.14.0",
                    "storageUri": storage_uri,
                },
            }
        },
    }


def deployment(
    *,
    name: str = "fraud",
    namespace: str = "models",
    image: str = "registry.example.com/fraud:6",
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An apps/v1 Deployment with a sidecar before the model container."""
    labels = {"app": name}
    model_container: dict[str, Any] = {
        "name": "model",
        "image": image,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
    }
    if env is not None:
        model_container["env"] = env
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "envoy", "image": "envoyproxy/envoy:v1.31.0"},
                        model_container,
                    ]
                },
            },
        },
    }
