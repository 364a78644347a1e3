"""MLflow Model Registry adapter over the REST API 2.0.

Writes are naturally idempotent in MLflow: setting an alias or a tag to the value it already
has changes nothing, so the ``idempotency_key`` every write carries is accepted and not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from integrations.errors import InvalidRequest, NotFound
from integrations.http import mapped_errors, raise_for_status
from integrations.registry.base import ModelVersion

_API_PREFIX = "/api/2.0/mlflow"
_NOT_FOUND_CODE = "RESOURCE_DOES_NOT_EXIST"
_DEFAULT_PAGE_SIZE = 1000


class MLflowRegistry:
    """A :class:`~integrations.registry.base.ModelRegistry` backed by an MLflow tracking server."""

    kind = "mlflow"

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.Client,
        token: str | None = None,
        page_size: int = _DEFAULT_PAGE_SIZE,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._api_url = base_url.rstrip("/") + _API_PREFIX
        # The host alone goes into error messages: the URL may carry user:password.
        self._server = urlsplit(base_url).netloc.rpartition("@")[2] or base_url
        self._client = client
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._page_size = page_size

    def get_version(self, model: str, version: str) -> ModelVersion:
        """The version, or :class:`NotFound` when the model or version does not exist."""
        return self._fetch_version(model, version, operation="get_version")

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Every version of the model, oldest first; :class:`NotFound` for an unknown model."""
        target = self._model_target(model)
        # Search answers an empty list for an unknown model and omits aliases, so the
        # registered model is read first: it settles existence and carries the alias map.
        aliases = self._aliases(model, operation="list_versions")
        versions: list[ModelVersion] = []
        page_token: str | None = None
        seen_tokens: set[str] = set()
        while True:
            params = {
                "filter": f"name={_quote_filter_value(model)}",
                "max_results": str(self._page_size),
                "order_by": "version_number ASC",
            }
            if page_token:
                params["page_token"] = page_token
            body = self._call(
                "GET",
                "model-versions/search",
                operation="list_versions",
                target=target,
                params=params,
            )
            items = body.get("model_versions") or []
            if not isinstance(items, list):
                raise _malformed(
                    "model_versions is not a list", operation="list_versions", target=target
                )
            for item in items:
                parsed = _parse_version(item, operation="list_versions", target=target)
                attached = tuple(name for name, v in aliases.items() if v == parsed.version)
                versions.append(replace(parsed, aliases=attached))
            page_token = body.get("next_page_token") or None
            if page_token is None:
                break
            # A server handing back a token it already gave would otherwise loop forever.
            if page_token in seen_tokens:
                raise _malformed(
                    "search repeated a page token", operation="list_versions", target=target
                )
            seen_tokens.add(page_token)
        return sorted(versions, key=lambda v: _version_sort_key(v.version))

    def get_alias(self, model: str, alias: str) -> ModelVersion | None:
        """The version the alias points to, None when unset; :class:`NotFound` for no model."""
        # MLflow reports a missing alias as a generic INVALID_PARAMETER_VALUE, which we
        # could only tell apart by its wording; the model's alias map says it reliably.
        version = self._aliases(model, operation="get_alias").get(alias)
        if version is None:
            return None
        return self._fetch_version(model, version, operation="get_alias")

    def set_alias(self, model: str, alias: str, version: str, *, idempotency_key: str) -> None:
        """Point the alias at the version; repeating the call is harmless."""
        self._call(
            "POST",
            "registered-models/alias",
            operation="set_alias",
            target=f"{model} alias {alias} -> version {version} on {self._server}",
            json={"name": model, "alias": alias, "version": version},
        )

    def set_version_tag(
        self, model: str, version: str, key: str, value: str, *, idempotency_key: str
    ) -> None:
        """Set one tag on one version; repeating the call is harmless."""
        self._call(
            "POST",
            "model-versions/set-tag",
            operation="set_version_tag",
            target=f"{self._version_target(model, version)} tag {key}",
            json={"name": model, "version": version, "key": key, "value": value},
        )

    def _fetch_version(self, model: str, version: str, *, operation: str) -> ModelVersion:
        target = self._version_target(model, version)
        body = self._call(
            "GET",
            "model-versions/get",
            operation=operation,
            target=target,
            params={"name": model, "version": version},
        )
        return _parse_version(body.get("model_version"), operation=operation, target=target)

    def _aliases(self, model: str, *, operation: str) -> dict[str, str]:
        """Alias name → version for the model, read from the registered model."""
        target = self._model_target(model)
        body = self._call(
            "GET",
            "registered-models/get",
            operation=operation,
            target=target,
            params={"name": model},
        )
        try:
            entries = body["registered_model"].get("aliases", [])
            return {str(e["alias"]): str(e["version"]) for e in entries}
        except (KeyError, TypeError, AttributeError) as exc:
            raise _malformed(repr(exc), operation=operation, target=target) from exc

    def _call(
        self,
        method: str,
        endpoint: str,
        *,
        operation: str,
        target: str,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one request and return its JSON object, mapping every failure."""
        where = {"integration": self.kind, "operation": operation, "target": target}
        with mapped_errors(**where):
            response = self._client.request(
                method,
                f"{self._api_url}/{endpoint}",
                params=params,
                json=json,
                headers=self._headers,
            )
            _raise_for_mlflow_error(response, **where)
            body = response.json() if response.content else {}
        if not isinstance(body, dict):
            raise _malformed("expected a JSON object", operation=operation, target=target)
        return body

    def _model_target(self, model: str) -> str:
        return f"{model} on {self._server}"

    def _version_target(self, model: str, version: str) -> str:
        return f"{model} version {version} on {self._server}"


def _raise_for_mlflow_error(
    response: httpx.Response, *, integration: str, operation: str, target: str
) -> None:
    """Raise NotFound for MLflow's RESOURCE_DOES_NOT_EXIST, otherwise map by status."""
    if response.is_success:
        return
    error_code, message = _mlflow_error(response)
    # MLflow sends RESOURCE_DOES_NOT_EXIST with 404 and, depending on version and
    # endpoint, with 400 too; the code is the reliable signal, not the status.
    if error_code == _NOT_FOUND_CODE:
        raise NotFound(
            f"not found ({message})" if message else "not found",
            integration=integration,
            operation=operation,
            target=target,
        )
    raise_for_status(response, integration=integration, operation=operation, target=target)


def _mlflow_error(response: httpx.Response) -> tuple[str | None, str]:
    """The error_code and message of an MLflow error body, when it has one."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    return body.get("error_code"), str(body.get("message", ""))[:300]


def _parse_version(payload: object, *, operation: str, target: str) -> ModelVersion:
    """Build a ModelVersion from MLflow's ``model_version`` JSON object."""
    try:
        if not isinstance(payload, dict):
            raise TypeError("model_version is not an object")
        created_ms = payload.get("creation_timestamp")
        return ModelVersion(
            model=str(payload["name"]),
            version=str(payload["version"]),
            source=payload.get("source") or None,
            tags={str(t["key"]): str(t["value"]) for t in payload.get("tags", [])},
            aliases=tuple(str(a) for a in payload.get("aliases", [])),
            created_at=(
                datetime.fromtimestamp(int(created_ms) / 1000, tz=UTC)
                if created_ms is not None
                else None
            ),
            status=payload.get("status"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _malformed(repr(exc), operation=operation, target=target) from exc


def _malformed(detail: object, *, operation: str, target: str) -> InvalidRequest:
    """The error for an answer we cannot understand (never retried: it will not change)."""
    return InvalidRequest(
        f"malformed response: {detail}",
        integration=MLflowRegistry.kind,
        operation=operation,
        target=target,
    )


def _quote_filter_value(value: str) -> str:
    """Quote a string for an MLflow search filter, picking a quote the value lacks."""
    return f'"{value}"' if "'" in value else f"'{value}'"


def _version_sort_key(version: str) -> tuple[int, str]:
    """MLflow versions are integers; sort them numerically so 10 comes after 9."""
    return (int(version), "") if version.isdigit() else (0, version)
