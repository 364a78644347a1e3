"""KServe ``InferenceService`` (serving.kserve.io/v1beta1) deployer with canary traffic splits.

KServe keeps only the newest predictor spec; during a canary it sends
``spec.predictor.canaryTrafficPercent`` percent to the latest ready revision and the rest to
the last revision rolled out at 100 %. The spec therefore cannot say which *version* the
stable revision serves, so Rollbot records it in annotations on the InferenceService:

``rollbot.io/model-version``         the version in the spec now
``rollbot.io/model-source``          the storage URI written with it (storage_uri mode)
``rollbot.io/stable-model-version``  the version rolled out at 100 % while a canary runs
``rollbot.io/idempotency-key``       the key of the last change Rollbot applied

Target keys: ``namespace``, ``name`` and optional ``version_from``: ``storage_uri`` (default;
the registry's source goes into ``storageUri``), ``runtime_version`` (``runtimeVersion``) or
``label`` (pod label ``rollbot.io/model-version`` via ``spec.predictor.labels``).
"""

from __future__ import annotations

import re
from typing import Any

from integrations.deployers.base import DeploymentState, DeployTarget
from integrations.deployers.kube_object import KubeObjectDeployer
from integrations.errors import InvalidRequest, Unsupported
from integrations.kube import JsonObject, object_name_problems

VERSION_ANNOTATION = "rollbot.io/model-version"


SOURCE_ANNOTATION = "rollbot.io/model-source"
STABLE_ANNOTATION = "rollbot.io/stable-model-version"
IDEMPOTENCY_ANNOTATION = "rollbot.io/idempotency-key"
VERSION_FROM = ("storage_uri", "runtime_version", "label")

# Before KServe 0.8 a predictor named its framework directly instead of using ``model``.
_LEGACY_FRAMEWORKS = (
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "pmml",
    "lightgbm",
    "paddle",
    "huggingface",
)
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


class KServeDeployer(KubeObjectDeployer):
    """Shift traffic between model versions of one KServe InferenceService."""

    kind = "kserve"
    supports_traffic_split = True
    resource = "InferenceService"
    api_path = "/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}"

    def validate_target(self, target: DeployTarget) -> list[str]:
        """Problems with a configured target; empty when it is fine."""
        problems = object_name_problems(target, ("namespace", "name"))
        version_from = target.get("version_from", "storage_uri")
        if version_from not in VERSION_FROM:
            problems.append(
                f"target 'version_from' must be one of {', '.join(VERSION_FROM)}, "
                f"got {version_from!r}"
            )
        return problems

    def current_state(self, target: DeployTarget) -> DeploymentState:
        """Versions and traffic as the KServe controller reports them."""
        self._require_valid(target, "current_state")
        return self._state(target, self._read(target, "current_state"))

    def shift_traffic(
        self,
        target: DeployTarget,
        *,
        version: str,
        source: str | None,
        percent: int,
        idempotency_key: str,
    ) -> DeploymentState:
        """Send ``percent`` of traffic to ``version``; a no-op when the spec already says so."""
        operation = "shift_traffic"
        where = self._require_valid(target, operation)
        if not 0 <= percent <= 100:
            raise InvalidRequest(f"percent must be between 0 and 100, got {percent}", **where)
        mode = _version_from(target)
        if mode == "storage_uri" and not source:
            raise InvalidRequest(
                f"version {version} has no source (storage URI) in the registry", **where
            )
        if mode == "label" and not _LABEL_VALUE.match(version):
            raise InvalidRequest(f"version {version!r} is not a valid label value", **where)

        obj = self._read(target, operation)
        predictor = _predictor(obj)
        current = _spec_version(obj, mode)
        current_percent = _spec_percent(predictor)
        stable = _annotations(obj).get(STABLE_ANNOTATION)
        in_canary = current_percent < 100 and stable is not None and stable != current
        same_source = mode != "storage_uri" or _model_spec(predictor).get("storageUri") == source

        # A retried step (after a crash or a lost answer) must not apply the change twice;
        # below 100 % with no canary running the version already has all there is to have.
        nothing_to_split = percent < 100 and not in_canary and current_percent == 100
        if current == version and same_source and (current_percent == percent or nothing_to_split):
            return self._state(target, obj)
        if percent < 100 and in_canary and version == stable:
            raise Unsupported(
                f"cannot send part of the traffic back to the stable version {version} while "
                f"a canary of {current} runs; shift {version} to 100 instead",
                **where,
            )
        new_stable = None
        if percent < 100:
            # An unknown stable version is recorded as "" so the canary still shows as one.
            new_stable = (stable if in_canary else current) or ""

        patch = _patch(
            obj,
            mode=mode,
            version=version,
            source=source,
            percent=percent,
            stable=new_stable,
            idempotency_key=idempotency_key,
        )
        patched = self._kube.merge_patch(self._path(target), patch, **where)
        return self._state(target, patched)

    def _state(self, target: DeployTarget, obj: JsonObject) -> DeploymentState:
        """Combine the spec, Rollbot's annotations and the controller's status."""
        predictor = _predictor(obj)
        spec_version = _spec_version(obj, _version_from(target))
        spec_percent = _spec_percent(predictor)
        annotations = _annotations(obj)
        observed, ready, message = _rollout_status(obj)
        canary_percent = spec_percent
        if observed and (latest := _latest_traffic_percent(obj)) is not None:
            canary_percent = latest  # KServe pins traffic to the old revision if the new fails
        stable = annotations.get(STABLE_ANNOTATION)
        source = _model_spec(predictor).get("storageUri")
        source = str(source) if source else None
        if spec_percent < 100 and stable is not None and stable != spec_version:
            return DeploymentState(
                target=self._describe(target),
                version=stable or None,
                canary_version=spec_version,
                canary_percent=canary_percent,
                ready=ready,
                message=message,
                source=source,
            )
        return DeploymentState(
            target=self._describe(target),
            version=spec_version,
            ready=ready,
            message=message,
            source=source,
        )


def _version_from(target: DeployTarget) -> str:
    return str(target.get("version_from", "storage_uri"))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _annotations(obj: JsonObject) -> dict[str, Any]:
    return _dict(_dict(obj.get("metadata")).get("annotations"))


def _predictor(obj: JsonObject) -> dict[str, Any]:
    return _dict(_dict(obj.get("spec")).get("predictor"))


def _model_key(predictor: dict[str, Any]) -> str:
    if "model" in predictor:
        return "model"
    return next((key for key in _LEGACY_FRAMEWORKS if key in predictor), "model")


def _model_spec(predictor: dict[str, Any]) -> dict[str, Any]:
    return _dict(predictor.get(_model_key(predictor)))


def _spec_percent(predictor: dict[str, Any]) -> int:
    value = predictor.get("canaryTrafficPercent")
    return value if isinstance(value, int) and 0 <= value < 100 else 100


def _spec_version(obj: JsonObject, mode: str) -> str | None:
    """The version the predictor spec asks for, read the way the target is configured."""
    predictor = _predictor(obj)
    annotations = _annotations(obj)
    model = _model_spec(predictor)
    if mode == "runtime_version":
        value = model.get("runtimeVersion")
    elif mode == "label":
        value = _dict(predictor.get("labels")).get(VERSION_ANNOTATION) or annotations.get(
            VERSION_ANNOTATION
        )
    else:
        # Trust the version annotation only if it was written with the storage URI now in use.
        recorded_source = annotations.get(SOURCE_ANNOTATION)
        if recorded_source is not None and recorded_source != model.get("storageUri"):
            return None
        value = annotations.get(VERSION_ANNOTATION)
    return str(value) if value not in (None, "") else None


def _rollout_status(obj: JsonObject) -> tuple[bool, bool, str]:
    """(controller saw the latest spec, Ready, why not ready)."""
    generation = _dict(obj.get("metadata")).get("generation")
    status = _dict(obj.get("status"))
    observed_generation = status.get("observedGeneration")
    if generation is not None and (observed_generation is None or observed_generation < generation):
        return False, False, f"KServe has not yet reconciled generation {generation}"
    for condition in status.get("conditions") or []:
        if _dict(condition).get("type") == "Ready":
            if condition.get("status") == "True":
                return True, True, ""
            reason = condition.get("reason") or "not ready"
            detail = condition.get("message")
            return True, False, f"{reason}: {detail}" if detail else str(reason)
    return True, False, "no Ready condition reported yet"


def _latest_traffic_percent(obj: JsonObject) -> int | None:
    """Percent the controller routes to the latest ready revision."""
    components = _dict(_dict(obj.get("status")).get("components"))
    traffic = _dict(components.get("predictor")).get("traffic") or []
    for entry in traffic:
        entry = _dict(entry)
        if entry.get("latestRevision") is True or entry.get("tag") == "latest":
            percent = entry.get("percent")
            return percent if isinstance(percent, int) else 0
    return None


def _patch(
    obj: JsonObject,
    *,
    mode: str,
    version: str,
    source: str | None,
    percent: int,
    stable: str | None,
    idempotency_key: str,
) -> dict[str, Any]:
    """A merge patch; resourceVersion makes the API server refuse it if the object moved on."""
    predictor = _predictor(obj)
    spec: dict[str, Any] = {"canaryTrafficPercent": percent if percent < 100 else None}
    if mode == "storage_uri":
        spec[_model_key(predictor)] = {"storageUri": source}
    elif mode == "runtime_version":
        spec[_model_key(predictor)] = {"runtimeVersion": version}
    else:
        spec["labels"] = {VERSION_ANNOTATION: version}
    metadata = _dict(obj.get("metadata"))
    return {
        "metadata": {
            "resourceVersion": metadata.get("resourceVersion"),
            "annotations": {
                VERSION_ANNOTATION: version,
                SOURCE_ANNOTATION: source,
                STABLE_ANNOTATION: stable,
                IDEMPOTENCY_ANNOTATION: idempotency_key,
            },
        },
        "spec": {"predictor": spec},
    }
