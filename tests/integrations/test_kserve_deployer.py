"""KServeDeployer against the fake API server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from integrations.deployers.base import Deployer, DeploymentState
from integrations.deployers.kserve import KServeDeployer
from integrations.errors import (
    Conflict,
    IntegrationError,
    IntegrationTimeout,
    IntegrationUnavailable,
    InvalidRequest,
    NotFound,
    Unsupported,
)
from tests.integrations.fake_kube import TOKEN, FakeKube, inference_service

TARGET = {"namespace": "models", "name": "fraud"}
PATH = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/fraud"


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.add(inference_service())
    return fake


@pytest.fixture
def deployer(kube: FakeKube) -> KServeDeployer:
    return KServeDeployer(kube.kube_client())


def shift(deployer: KServeDeployer, version: str, percent: int, key: str) -> DeploymentState:
    return deployer.shift_traffic(
        TARGET,
        version=version,
        source=f"s3://models/fraud/{version}",
        percent=percent,
        idempotency_key=key,
    )


def predictor(kube: FakeKube) -> dict[str, Any]:
    return kube.objects[PATH]["spec"]["predictor"]


def isvc_annotations(kube: FakeKube) -> dict[str, str]:
    return kube.objects[PATH]["metadata"]["annotations"]


def test_is_a_deployer_with_traffic_split(deployer: KServeDeployer) -> None:
    assert isinstance(deployer, Deployer)
    assert deployer.kind == "kserve"
    assert deployer.supports_traffic_split is True


def test_current_state_reads_version_and_readiness(deployer: KServeDeployer) -> None:
    state = deployer.current_state(TARGET)

    assert state == DeploymentState(
        target="InferenceService models/fraud", version="6", source="s3://models/fraud/6"
    )


def test_shift_25_50_100_changes_spec_and_reports_canary(
    deployer: KServeDeployer, kube: FakeKube
) -> None:
    state = shift(deployer, "7", 25, "run-1:step-1")

    assert predictor(kube)["canaryTrafficPercent"] == 25
    assert predictor(kube)["model"]["storageUri"] == "s3://models/fraud/7"
    assert isvc_annotations(kube)["rollbot.io/model-version"] == "7"
    assert isvc_annotations(kube)["rollbot.io/stable-model-version"] == "6"
    assert isvc_annotations(kube)["rollbot.io/idempotency-key"] == "run-1:step-1"
    assert (state.version, state.canary_version, state.canary_percent) == ("6", "7", 25)
    assert state.serving_percent("7") == 25

    state = shift(deployer, "7", 50, "run-1:step-2")

    assert predictor(kube)["canaryTrafficPercent"] == 50
    assert (state.version, state.canary_version, state.canary_percent) == ("6", "7", 50)
    status = kube.objects[PATH]["status"]["components"]["predictor"]
    assert {t["tag"]: t["percent"] for t in status["traffic"]} == {"latest": 50, "prev": 50}

    state = shift(deployer, "7", 100, "run-1:step-3")

    assert "canaryTrafficPercent" not in predictor(kube)
    assert "rollbot.io/stable-model-version" not in isvc_annotations(kube)
    assert state == DeploymentState(
        target="InferenceService models/fraud", version="7", source="s3://models/fraud/7"
    )
    assert deployer.current_state(TARGET) == state


def test_keeps_unrelated_spec_fields(deployer: KServeDeployer, kube: FakeKube) -> None:
    shift(deployer, "7", 100, "k")

    model = predictor(kube)["model"]
    assert model["modelFormat"] == {"name": "sklearn"}
    assert model["runtime"] == "kserve-sklearnserver"
    assert predictor(kube)["minReplicas"] == 1
    assert isvc_annotations(kube)["serving.kserve.io/deploymentMode"] == "Serverless"


def test_repeated_shift_is_a_no_op(deployer: KServeDeployer, kube: FakeKube) -> None:
    shift(deployer, "7", 25, "run-1:step-1")
    generation = kube.objects[PATH]["metadata"]["generation"]

    state = shift(deployer, "7", 25, "run-1:step-1")

    assert len(kube.patches()) == 1
    assert kube.objects[PATH]["metadata"]["generation"] == generation
    assert (state.canary_version, state.canary_percent) == ("7", 25)


def test_shift_to_the_version_already_serving_patches_nothing(
    deployer: KServeDeployer, kube: FakeKube
) -> None:
    state = deployer.shift_traffic(
        TARGET, version="6", source="s3://models/fraud/6", percent=100, idempotency_key="k"
    )

    assert kube.patches() == []
    assert state.version == "6"


def test_patch_is_a_merge_patch_guarded_by_resource_version(
    deployer: KServeDeployer, kube: FakeKube
) -> None:
    resource_version = kube.objects[PATH]["metadata"]["resourceVersion"]

    shift(deployer, "7", 100, "k")

    (request,) = kube.patches()
    assert request.headers["content-type"] == "application/merge-patch+json"
    body = json.loads(request.content)
    assert body["metadata"]["resourceVersion"] == resource_version
    assert body["spec"]["predictor"]["canaryTrafficPercent"] is None


def test_rolling_back_a_canary_to_the_stable_version(
    deployer: KServeDeployer, kube: FakeKube
) -> None:
    shift(deployer, "7", 25, "a")

    state = shift(deployer, "6", 100, "b")

    assert state.version == "6" and state.canary_version is None
    assert predictor(kube)["model"]["storageUri"] == "s3://models/fraud/6"


def test_partial_shift_back_to_stable_during_canary_is_unsupported(
    deployer: KServeDeployer, kube: FakeKube
) -> None:
    shift(deployer, "7", 25, "a")

    with pytest.raises(Unsupported, match=r"kserve shift_traffic InferenceService models/fraud"):
        shift(deployer, "6", 50, "b")
    assert len(kube.patches()) == 1


def test_status_not_yet_reconciled_is_not_ready() -> None:
    kube = FakeKube(auto_reconcile=False)
    kube.add(inference_service())
    deployer = KServeDeployer(kube.kube_client())

    state = shift(deployer, "7", 25, "a")

    assert state.ready is False
    assert "has not yet reconciled generation 2" in state.message
    kube.reconcile(PATH)
    assert deployer.current_state(TARGET).ready is True


def test_failed_canary_reports_traffic_actually_served(
    deployer: KServeDeployer, kube: FakeKube
) -> None:
    shift(deployer, "7", 25, "a")
    status = kube.objects[PATH]["status"]
    status["components"]["predictor"]["traffic"][0]["percent"] = 0
    status["components"]["predictor"]["traffic"][1]["percent"] = 100
    status["conditions"][-1].update(
        status="False", reason="RevisionFailed", message="Revision failed: ImagePullBackOff"
    )

    state = deployer.current_state(TARGET)

    assert (state.canary_version, state.canary_percent, state.ready) == ("7", 0, False)
    assert state.message == "RevisionFailed: Revision failed: ImagePullBackOff"


def test_runtime_version_mode(kube: FakeKube, deployer: KServeDeployer) -> None:
    target = {**TARGET, "version_from": "runtime_version"}
    assert deployer.current_state(target).version == "1.14.0"

    state = deployer.shift_traffic(
        target, version="1.15.2", source=None, percent=100, idempotency_key="k"
    )

    assert predictor(kube)["model"]["runtimeVersion"] == "1.15.2"
    assert predictor(kube)["model"]["storageUri"] == "s3://models/fraud/6"
    assert state.version == "1.15.2"


def test_label_mode_writes_pod_label(deployer: KServeDeployer, kube: FakeKube) -> None:
    target = {**TARGET, "version_from": "label"}

    state = deployer.shift_traffic(
        target, version="7", source=None, percent=100, idempotency_key="k"
    )

    assert predictor(kube)["labels"] == {"rollbot.io/model-version": "7"}
    assert state.version == "7"
    with pytest.raises(InvalidRequest, match="not a valid label value"):
        deployer.shift_traffic(
            target, version="7 beta", source=None, percent=100, idempotency_key="k"
        )


def test_storage_uri_changed_outside_rollbot_reads_as_unknown(
    deployer: KServeDeployer, kube: FakeKube
) -> None:
    shift(deployer, "7", 100, "k")
    predictor(kube)["model"]["storageUri"] = "s3://models/fraud/hotfix"

    state = deployer.current_state(TARGET)

    assert state.version is None
    assert state.source == "s3://models/fraud/hotfix"  # for finding it in the registry


def test_storage_uri_mode_needs_a_source(deployer: KServeDeployer, kube: FakeKube) -> None:
    with pytest.raises(InvalidRequest, match="version 7 has no source"):
        deployer.shift_traffic(TARGET, version="7", source=None, percent=100, idempotency_key="k")
    assert kube.patches() == []


def test_validate_target_names_each_problem(deployer: KServeDeployer) -> None:
    problems = deployer.validate_target({"name": "Fraud_Model", "version_from": "tag"})

    assert "target is missing 'namespace'" in problems
    assert any("'name' must be a lowercase DNS name" in p for p in problems)
    assert any("'version_from' must be one of storage_uri" in p for p in problems)
    assert deployer.validate_target(TARGET) == []


def test_invalid_target_is_refused_before_any_request(
    deployer: KServeDeployer, kube: FakeKube
) -> None:
    with pytest.raises(InvalidRequest, match="target is missing 'namespace'"):
        deployer.current_state({"name": "fraud"})
    assert kube.requests == []


def test_conflict_is_retryable(deployer: KServeDeployer, kube: FakeKube) -> None:
    kube.fail_next(409)

    with pytest.raises(Conflict) as caught:
        deployer.current_state(TARGET)

    assert caught.value.retryable is True
    assert str(caught.value).startswith(
        "kserve current_state InferenceService models/fraud: HTTP 409"
    )


def test_object_changed_between_read_and_patch_is_a_conflict(
    deployer: KServeDeployer, kube: FakeKube
) -> None:
    kube.before_next_patch(lambda: kube.objects[PATH]["metadata"].update(resourceVersion="9999"))

    with pytest.raises(Conflict, match="the object has been modified") as caught:
        shift(deployer, "7", 25, "a")

    assert caught.value.retryable is True
    assert "canaryTrafficPercent" not in predictor(kube)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_unavailable(
    deployer: KServeDeployer, kube: FakeKube, status: int
) -> None:
    kube.fail_next(status)

    with pytest.raises(
        IntegrationUnavailable, match=f"shift_traffic InferenceService models/fraud: HTTP {status}"
    ) as caught:
        shift(deployer, "7", 25, "a")

    assert caught.value.retryable is True
    assert "canaryTrafficPercent" not in predictor(kube)


def test_timeout_is_mapped(deployer: KServeDeployer, kube: FakeKube) -> None:
    kube.time_out_next()

    with pytest.raises(
        IntegrationTimeout, match="kserve current_state InferenceService models/fraud: timed out"
    ):
        deployer.current_state(TARGET)


def test_missing_inference_service_is_not_found(deployer: KServeDeployer) -> None:
    with pytest.raises(NotFound) as caught:
        deployer.current_state({"namespace": "models", "name": "churn"})

    assert caught.value.retryable is False
    assert "InferenceService models/churn" in str(caught.value)
    assert 'inferenceservices.serving.kserve.io "churn" not found' in str(caught.value)


@pytest.mark.parametrize("failure", [401, 404, 409, 500, 503, "timeout"])
def test_token_never_appears_in_errors(kube: FakeKube, failure: int | str) -> None:
    deployer = KServeDeployer(kube.kube_client())
    if failure == "timeout":
        kube.time_out_next()
    elif failure == 401:
        kube.token = "rotated"
    elif failure == 404:
        kube.objects.clear()
    else:
        kube.fail_next(int(failure))

    with pytest.raises(IntegrationError) as caught:
        shift(deployer, "7", 25, "a")

    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)
    assert caught.value.target == "InferenceService models/fraud"
