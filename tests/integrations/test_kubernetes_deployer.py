"""KubernetesDeployer against the fake API server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from integrations.deployers.base import Deployer, DeploymentState
from integrations.deployers.kubernetes import KubernetesDeployer
from integrations.errors import (
    AuthFailed,
    Conflict,
    IntegrationError,
    IntegrationTimeout,
    IntegrationUnavailable,
    InvalidRequest,
    NotFound,
    Unsupported,
)
from integrations.kube import KubeClient, KubeConfig
from tests.integrations.fake_kube import API_URL, TOKEN, FakeKube, deployment

IMAGE_TARGET = {
    "namespace": "models",
    "name": "fraud",
    "container": "model",
    "image": "registry.example.com/fraud:{version}",
}
ENV_TARGET = {
    "namespace": "models",
    "name": "fraud",
    "container": "model",
    "env_var": "MODEL_VERSION",
}
PATH = "/apis/apps/v1/namespaces/models/deployments/fraud"
DESCRIBED = "Deployment models/fraud"


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.add(deployment())
    return fake


@pytest.fixture
def deployer(kube: FakeKube) -> KubernetesDeployer:
    return KubernetesDeployer(kube.kube_client())


def containers(kube: FakeKube) -> list[dict[str, Any]]:
    return kube.objects[PATH]["spec"]["template"]["spec"]["containers"]


def shift(deployer: KubernetesDeployer, target: Any, version: str, percent: int = 100) -> Any:
    return deployer.shift_traffic(
        target, version=version, source=None, percent=percent, idempotency_key="run-1:step-1"
    )


def test_is_a_deployer_without_traffic_split(deployer: KubernetesDeployer) -> None:
    assert isinstance(deployer, Deployer)
    assert deployer.supports_traffic_split is False


def test_current_state_reads_version_from_image(deployer: KubernetesDeployer) -> None:
    assert deployer.current_state(IMAGE_TARGET) == DeploymentState(target=DESCRIBED, version="6")


def test_shift_to_100_replaces_only_the_model_container_image(
    deployer: KubernetesDeployer, kube: FakeKube
) -> None:
    state = shift(deployer, IMAGE_TARGET, "7")

    assert [c["image"] for c in containers(kube)] == [
        "envoyproxy/envoy:v1.31.0",
        "registry.example.com/fraud:7",
    ]
    annotations = kube.objects[PATH]["metadata"]["annotations"]
    assert annotations == {
        "rollbot.io/model-version": "7",
        "rollbot.io/idempotency-key": "run-1:step-1",
    }
    assert kube.objects[PATH]["metadata"]["generation"] == 2
    assert state == DeploymentState(target=DESCRIBED, version="7")


def test_patch_is_a_guarded_json_patch(deployer: KubernetesDeployer, kube: FakeKube) -> None:
    resource_version = kube.objects[PATH]["metadata"]["resourceVersion"]

    shift(deployer, IMAGE_TARGET, "7")

    (request,) = kube.patches()
    assert request.headers["content-type"] == "application/json-patch+json"
    ops = json.loads(request.content)
    assert {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version} in ops
    assert {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "model"} in ops


def test_repeated_shift_is_a_no_op(deployer: KubernetesDeployer, kube: FakeKube) -> None:
    shift(deployer, IMAGE_TARGET, "7")

    state = shift(deployer, IMAGE_TARGET, "7")

    assert len(kube.patches()) == 1
    assert kube.objects[PATH]["metadata"]["generation"] == 2
    assert state.version == "7"


@pytest.mark.parametrize("percent", [25, 50, 0])
def test_partial_percent_is_unsupported(
    deployer: KubernetesDeployer, kube: FakeKube, percent: int
) -> None:
    with pytest.raises(Unsupported) as caught:
        shift(deployer, IMAGE_TARGET, "7", percent)

    assert str(caught.value) == (
        f"kubernetes shift_traffic {DESCRIBED}: a Deployment cannot split traffic; "
        f"only percent=100 is possible, got {percent}"
    )
    assert kube.requests == []


def test_env_var_mode_replaces_the_variable(kube: FakeKube) -> None:
    kube.objects.clear()
    kube.add(
        deployment(
            env=[
                {"name": "LOG_LEVEL", "value": "info"},
                {
                    "name": "MODEL_VERSION",
                    "valueFrom": {"configMapKeyRef": {"name": "m", "key": "v"}},
                },
            ]
        )
    )
    deployer = KubernetesDeployer(kube.kube_client())
    assert deployer.current_state(ENV_TARGET).version is None

    state = shift(deployer, ENV_TARGET, "7")

    assert containers(kube)[1]["env"] == [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "MODEL_VERSION", "value": "7"},
    ]
    assert state.version == "7"


def test_env_var_mode_adds_a_missing_env_list(deployer: KubernetesDeployer, kube: FakeKube) -> None:
    shift(deployer, ENV_TARGET, "7")

    assert containers(kube)[1]["env"] == [{"name": "MODEL_VERSION", "value": "7"}]
    assert "env" not in containers(kube)[0]


def test_rollout_in_progress_is_not_ready() -> None:
    kube = FakeKube(auto_reconcile=False)
    kube.add(deployment())
    kube.reconcile(PATH)
    deployer = KubernetesDeployer(kube.kube_client())

    state = shift(deployer, IMAGE_TARGET, "7")
    assert (state.ready, state.message) == (
        False,
        "waiting for the Deployment controller to observe the new spec",
    )

    kube.objects[PATH]["status"].update(observedGeneration=2, updatedReplicas=1, replicas=4)
    assert deployer.current_state(IMAGE_TARGET).message == "1 of 3 replicas updated"

    kube.objects[PATH]["status"].update(updatedReplicas=3, replicas=4)
    assert deployer.current_state(IMAGE_TARGET).message == "1 old replicas pending termination"

    kube.reconcile(PATH)
    assert deployer.current_state(IMAGE_TARGET).ready is True


def test_failed_rollout_reports_progress_deadline(
    deployer: KubernetesDeployer, kube: FakeKube
) -> None:
    progressing = kube.objects[PATH]["status"]["conditions"][1]
    progressing.update(
        status="False",
        reason="ProgressDeadlineExceeded",
        message='ReplicaSet "fraud-7c9f" has timed out progressing.',
    )

    state = deployer.current_state(IMAGE_TARGET)

    assert state.ready is False
    assert state.message == 'rollout failed: ReplicaSet "fraud-7c9f" has timed out progressing.'


def test_image_not_matching_template_reads_as_unknown(kube: FakeKube) -> None:
    kube.objects[PATH]["spec"]["template"]["spec"]["containers"][1]["image"] = "other/fraud:6"
    state = KubernetesDeployer(kube.kube_client()).current_state(IMAGE_TARGET)

    assert state.version is None
    assert "cannot tell the version of container 'model'" in state.message


def test_missing_container_is_named(deployer: KubernetesDeployer) -> None:
    with pytest.raises(InvalidRequest) as caught:
        deployer.current_state({**IMAGE_TARGET, "container": "server"})

    assert str(caught.value) == (
        f"kubernetes current_state {DESCRIBED}: has no container 'server' "
        "(containers: envoy, model)"
    )


def test_validate_target_names_each_problem(deployer: KubernetesDeployer) -> None:
    assert deployer.validate_target({"name": "fraud"}) == [
        "target is missing 'namespace'",
        "target is missing 'container'",
        "target is missing 'image' (a template) or 'env_var'",
    ]
    assert deployer.validate_target({**IMAGE_TARGET, "env_var": "V"}) == [
        "target must set only one of 'image' and 'env_var'"
    ]
    assert deployer.validate_target({**IMAGE_TARGET, "image": "registry/fraud:latest"}) == [
        "target 'image' must contain '{version}' once, got 'registry/fraud:latest'"
    ]
    assert deployer.validate_target(IMAGE_TARGET) == []
    assert deployer.validate_target(ENV_TARGET) == []


def test_concurrent_edit_is_a_conflict(deployer: KubernetesDeployer, kube: FakeKube) -> None:
    kube.before_next_patch(lambda: kube.objects[PATH]["metadata"].update(resourceVersion="9999"))

    with pytest.raises(Conflict, match=f"kubernetes shift_traffic {DESCRIBED}: HTTP 409"):
        shift(deployer, IMAGE_TARGET, "7")
    assert containers(kube)[1]["image"] == "registry.example.com/fraud:6"


def test_moved_container_is_refused_by_the_patch_test(
    deployer: KubernetesDeployer, kube: FakeKube
) -> None:
    kube.before_next_patch(lambda: containers(kube).reverse())

    with pytest.raises(InvalidRequest, match="HTTP 422: the server rejected the patch"):
        shift(deployer, IMAGE_TARGET, "7")
    assert containers(kube)[0]["image"] == "registry.example.com/fraud:6"


@pytest.mark.parametrize(
    ("failure", "error", "text"),
    [
        (409, Conflict, "HTTP 409"),
        (500, IntegrationUnavailable, "HTTP 500"),
        (503, IntegrationUnavailable, "HTTP 503"),
        ("timeout", IntegrationTimeout, "timed out"),
    ],
)
def test_api_failures_are_mapped(
    deployer: KubernetesDeployer,
    kube: FakeKube,
    failure: int | str,
    error: type[IntegrationError],
    text: str,
) -> None:
    if failure == "timeout":
        kube.time_out_next()
    else:
        kube.fail_next(int(failure))

    with pytest.raises(error) as caught:
        shift(deployer, IMAGE_TARGET, "7")

    assert str(caught.value).startswith(f"kubernetes shift_traffic {DESCRIBED}: {text}")
    assert caught.value.retryable is True
    assert TOKEN not in str(caught.value)
    assert containers(kube)[1]["image"] == "registry.example.com/fraud:6"


def test_missing_deployment_is_not_found(deployer: KubernetesDeployer) -> None:
    with pytest.raises(NotFound) as caught:
        deployer.current_state({**IMAGE_TARGET, "name": "churn"})

    assert str(caught.value) == (
        'kubernetes current_state Deployment models/churn: HTTP 404: deployments.apps "churn" '
        "not found"
    )


# --- KubeConfig: how the client finds and authenticates to the API server -------------------


def service_account(tmp_path: Path, token: str = "sa-token-1") -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir(exist_ok=True)
    (directory / "token").write_text(token + "\n", encoding="utf-8")
    (directory / "namespace").write_text("models", encoding="utf-8")
    return directory


def test_in_cluster_config_uses_service_account(tmp_path: Path) -> None:
    directory = service_account(tmp_path)
    (directory / "ca.crt").write_text("not used here", encoding="utf-8")

    config = KubeConfig.in_cluster(
        service_account_dir=directory,
        environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
    )

    assert config.api_url == "https://10.0.0.1:443"
    assert config.ca_path == directory / "ca.crt"
    assert config.bearer_token() == "sa-token-1"
    assert "sa-token-1" not in repr(config)


def test_in_cluster_config_outside_a_cluster_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="KUBERNETES_SERVICE_HOST is not set"):
        KubeConfig.in_cluster(service_account_dir=tmp_path, environ={})


def test_rotated_token_is_picked_up(tmp_path: Path) -> None:
    directory = service_account(tmp_path, "old-token")
    kube = FakeKube(token="new-token")
    kube.add(deployment())
    transport = httpx.MockTransport(kube.handle)
    config = KubeConfig(API_URL, token_path=directory / "token")
    deployer = KubernetesDeployer(KubeClient(httpx.Client(transport=transport), config))

    with pytest.raises(AuthFailed, match="HTTP 401: not authorized") as caught:
        deployer.current_state(IMAGE_TARGET)
    assert "old-token" not in str(caught.value)

    service_account(tmp_path, "new-token")
    assert deployer.current_state(IMAGE_TARGET).version == "6"


def test_unreadable_token_file_is_an_auth_failure(tmp_path: Path) -> None:
    config = KubeConfig(API_URL, token_path=tmp_path / "missing-token")
    client = KubeClient(httpx.Client(transport=httpx.MockTransport(FakeKube().handle)), config)

    with pytest.raises(AuthFailed, match="cannot read the service-account token"):
        KubernetesDeployer(client).current_state(IMAGE_TARGET)


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": None, "spec": None},
        {"metadata": {}, "spec": {"template": {"spec": {"containers": ["model"]}}}},
        {
            "metadata": {"generation": 2},
            "status": {"observedGeneration": "2"},
            "spec": {"template": {"spec": {"containers": [{"name": "model", "image": "x"}]}}},
        },
    ],
    ids=["null-sections", "container-not-object", "generation-as-text"],
)
def test_a_malformed_deployment_is_an_invalid_request(body: dict[str, Any]) -> None:
    answer = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    client = KubeClient(httpx.Client(transport=answer), KubeConfig(api_url=API_URL, token=TOKEN))
    deployer = KubernetesDeployer(client)

    for call in (
        lambda: deployer.current_state(IMAGE_TARGET),
        lambda: shift(deployer, IMAGE_TARGET, "3"),
    ):
        with pytest.raises(InvalidRequest, match=r"malformed Deployment: "):
            call()
