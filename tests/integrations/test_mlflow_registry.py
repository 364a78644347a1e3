"""MLflowRegistry against a real MLflow server, and its failure paths."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from integrations.errors import (
    AuthFailed,
    IntegrationError,
    IntegrationTimeout,
    IntegrationUnavailable,
    InvalidRequest,
    NotFound,
)
from integrations.registry.base import ModelRegistry
from integrations.registry.mlflow import MLflowRegistry
from tests.support.mlflow_server import MLflowServer, free_port

TOKEN = "s3cr3t-token-do-not-leak"

RegistryActions = dict[str, Callable[[MLflowRegistry], object]]


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as client:
        yield client


@pytest.fixture
def registry(mlflow_server: MLflowServer, http_client: httpx.Client) -> MLflowRegistry:
    return MLflowRegistry(mlflow_server.base_url, client=http_client, token=TOKEN)


@pytest.fixture
def model(mlflow_server: MLflowServer) -> str:
    """A fresh model with versions 1-5; 4 is validated, production points at 5."""
    name = f"fraud-detector-{uuid.uuid4().hex[:8]}"
    mlflow_server.seed_model(
        name,
        versions=5,
        tags={"4": {"validated": "true", "benchmark": "passed"}, "5": {"validated": "true"}},
    )
    mlflow_server.set_alias(name, "production", "5")
    return name


def mock_registry(handler: Callable[[httpx.Request], httpx.Response]) -> MLflowRegistry:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return MLflowRegistry("http://mlflow.test:5000", client=client, token=TOKEN)


def test_satisfies_the_registry_protocol() -> None:
    registry = mock_registry(lambda request: httpx.Response(200, json={}))

    assert isinstance(registry, ModelRegistry)
    assert registry.kind == "mlflow"


@pytest.mark.mlflow
def test_get_version_reads_source_tags_aliases_and_time(
    registry: MLflowRegistry, model: str
) -> None:
    version = registry.get_version(model, "4")

    assert (version.model, version.version) == (model, "4")
    assert version.source == f"s3://rollbot-test/{model}/4"
    assert version.tags == {"validated": "true", "benchmark": "passed"}
    assert version.aliases == ()
    assert version.status == "READY"
    newer = registry.get_version(model, "5")
    assert version.created_at is not None and version.created_at.tzinfo is not None
    assert newer.created_at is not None and version.created_at <= newer.created_at
    assert newer.aliases == ("production",)


@pytest.mark.mlflow
def test_list_versions_follows_pagination_oldest_first(
    mlflow_server: MLflowServer, model: str
) -> None:
    search_requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/model-versions/search"):
            search_requests.append(request)

    with httpx.Client(event_hooks={"request": [record]}) as client:
        registry = MLflowRegistry(mlflow_server.base_url, client=client, page_size=2)
        versions = registry.list_versions(model)

    assert [v.version for v in versions] == ["1", "2", "3", "4", "5"]
    assert len(search_requests) == 3
    assert "page_token" in search_requests[-1].url.params
    assert {v.version: v.aliases for v in versions}["5"] == ("production",)
    assert versions[3].tags == {"validated": "true", "benchmark": "passed"}


@pytest.mark.mlflow
def test_move_production_alias_from_5_to_4(registry: MLflowRegistry, model: str) -> None:
    current = registry.get_alias(model, "production")
    assert current is not None and current.version == "5"

    registry.set_alias(model, "production", "4", idempotency_key="rollback-1")
    registry.set_alias(model, "production", "4", idempotency_key="rollback-1")  # a retry

    moved = registry.get_alias(model, "production")
    assert moved is not None
    assert (moved.version, moved.aliases) == ("4", ("production",))
    assert moved.tags["validated"] == "true"
    by_version = {v.version: v.aliases for v in registry.list_versions(model)}
    assert by_version == {"1": (), "2": (), "3": (), "4": ("production",), "5": ()}


@pytest.mark.mlflow
def test_unset_alias_reads_as_none(registry: MLflowRegistry, model: str) -> None:
    assert registry.get_alias(model, "staging") is None


@pytest.mark.mlflow
def test_set_version_tag_is_read_back(registry: MLflowRegistry, model: str) -> None:
    registry.set_version_tag(model, "3", "rolled_back", "true", idempotency_key="k-1")

    assert registry.get_version(model, "3").tags == {"rolled_back": "true"}


UNKNOWN_MODEL_ACTIONS: RegistryActions = {
    "get_version": lambda r: r.get_version("no-such-model", "1"),
    "list_versions": lambda r: r.list_versions("no-such-model"),
    "get_alias": lambda r: r.get_alias("no-such-model", "production"),
    "set_alias": lambda r: r.set_alias("no-such-model", "production", "1", idempotency_key="k"),
}


@pytest.mark.mlflow
@pytest.mark.parametrize("operation", UNKNOWN_MODEL_ACTIONS)
def test_unknown_model_is_not_found(registry: MLflowRegistry, operation: str) -> None:
    with pytest.raises(NotFound) as caught:
        UNKNOWN_MODEL_ACTIONS[operation](registry)

    assert (caught.value.integration, caught.value.operation) == ("mlflow", operation)
    assert "no-such-model" in str(caught.value)
    assert TOKEN not in str(caught.value)


@pytest.mark.mlflow
@pytest.mark.parametrize("operation", ["get_version", "set_alias", "set_version_tag"])
def test_unknown_version_is_not_found(registry: MLflowRegistry, model: str, operation: str) -> None:
    actions: RegistryActions = {
        "get_version": lambda r: r.get_version(model, "99"),
        "set_alias": lambda r: r.set_alias(model, "production", "99", idempotency_key="k"),
        "set_version_tag": lambda r: r.set_version_tag(model, "99", "a", "b", idempotency_key="k"),
    }
    with pytest.raises(NotFound) as caught:
        actions[operation](registry)

    message = str(caught.value)
    assert message.startswith(f"mlflow {operation} {model}")
    assert "99" in message


@pytest.mark.mlflow
def test_failed_alias_move_leaves_alias_in_place(registry: MLflowRegistry, model: str) -> None:
    with pytest.raises(NotFound):
        registry.set_alias(model, "production", "99", idempotency_key="k")

    current = registry.get_alias(model, "production")
    assert current is not None and current.version == "5"


@pytest.mark.mlflow
def test_malformed_version_number_is_an_invalid_request(
    registry: MLflowRegistry, model: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        registry.get_version(model, "latest")

    assert not caught.value.retryable
    assert "mlflow get_version" in str(caught.value)


def test_server_down_is_unavailable(http_client: httpx.Client) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    registry = MLflowRegistry(closed, client=http_client, token=TOKEN)

    with pytest.raises(IntegrationUnavailable) as caught:
        registry.get_version("fraud-detector", "5")

    assert caught.value.retryable
    message = str(caught.value)
    assert message.startswith("mlflow get_version fraud-detector version 5")
    assert closed.removeprefix("http://") in message
    assert TOKEN not in message


def test_timeout_names_integration_operation_and_target_without_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    with pytest.raises(IntegrationTimeout) as caught:
        mock_registry(handler).set_alias("fraud-detector", "production", "4", idempotency_key="k")

    error = caught.value
    assert (error.integration, error.operation) == ("mlflow", "set_alias")
    assert "fraud-detector" in error.target and "production" in error.target
    assert str(error).startswith("mlflow set_alias fraud-detector alias production")
    assert error.retryable
    assert TOKEN not in str(error) and TOKEN not in repr(error.args)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_unavailable(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error_code": "INTERNAL_ERROR", "message": "boom"})

    with pytest.raises(IntegrationUnavailable) as caught:
        mock_registry(handler).get_version("fraud-detector", "5")

    assert f"HTTP {status}" in str(caught.value)
    assert str(caught.value).startswith("mlflow get_version fraud-detector version 5")


def test_not_found_error_code_wins_over_a_400_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Model Version not found"}
        return httpx.Response(400, json=body)

    with pytest.raises(NotFound, match="Model Version not found"):
        mock_registry(handler).get_version("fraud-detector", "9")


def test_token_is_sent_as_bearer_and_never_in_auth_errors() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(401, json={"error_code": "UNAUTHENTICATED", "message": TOKEN})

    with pytest.raises(AuthFailed) as caught:
        mock_registry(handler).get_version("fraud-detector", "5")

    assert seen == [f"Bearer {TOKEN}"]
    assert TOKEN not in str(caught.value)


def test_no_authorization_header_without_token() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"model_version": {"name": "m", "version": "1"}})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    MLflowRegistry("http://mlflow.test", client=client).get_version("m", "1")

    assert seen == [None]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>login page</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"model_version": {"name": "m"}}),
    ],
    ids=["html", "json-list", "missing-version"],
)
def test_unintelligible_answers_are_invalid_requests(answer: httpx.Response) -> None:
    with pytest.raises(InvalidRequest) as caught:
        mock_registry(lambda request: answer).get_version("fraud-detector", "5")

    assert str(caught.value).startswith("mlflow get_version fraud-detector version 5")
    assert not isinstance(caught.value, IntegrationUnavailable)


def test_base_url_credentials_never_reach_messages() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    registry = MLflowRegistry("http://admin:hunter2@mlflow.test:5000", client=client)

    with pytest.raises(IntegrationError) as caught:
        registry.list_versions("fraud-detector")

    assert "hunter2" not in str(caught.value)
    assert "mlflow.test:5000" in str(caught.value)


def test_search_that_repeats_a_page_token_fails_instead_of_looping() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/registered-models/get"):
            return httpx.Response(200, json={"registered_model": {"name": "m", "aliases": []}})
        page = {"model_versions": [{"name": "m", "version": "1"}], "next_page_token": "same"}
        return httpx.Response(200, json=page)

    with pytest.raises(InvalidRequest, match="repeated a page token"):
        mock_registry(handler).list_versions("m")
