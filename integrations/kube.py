"""A minimal Kubernetes REST client: get, merge patch and JSON patch over an injected httpx client.

Only what the deployers need. Every failure is mapped onto :mod:`integrations.errors` through
:mod:`integrations.http`: 404 → ``NotFound``, 409 → ``Conflict``, 5xx → ``IntegrationUnavailable``,
timeouts → ``IntegrationTimeout``. Messages name the resource, never the bearer token.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from integrations.errors import AuthFailed, InvalidRequest, Where
from integrations.http import DEFAULT_TIMEOUT, mapped_errors, raise_for_status

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class KubeConfig:
    """Where the API server is and how to authenticate to it."""

    api_url: str
    token: str | None = field(default=None, repr=False)
    token_path: Path | None = None
    ca_path: Path | None = None

    @classmethod
    def in_cluster(
        cls,
        *,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
        environ: Mapping[str, str] | None = None,
    ) -> KubeConfig:
        """The pod's own service account, as mounted by the kubelet."""
        env = os.environ if environ is None else environ
        host = env.get("KUBERNETES_SERVICE_HOST")
        port = env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise InvalidRequest(
                "KUBERNETES_SERVICE_HOST is not set; not running inside a cluster",
                integration="kubernetes",
                operation="configure",
                target="in-cluster config",
            )
        if ":" in host:  # an IPv6 service address needs brackets in a URL
            host = f"[{host}]"
        ca_path = service_account_dir / "ca.crt"
        return cls(
            api_url=f"https://{host}:{port}",
            token_path=service_account_dir / "token",
            ca_path=ca_path if ca_path.exists() else None,
        )

    def bearer_token(self) -> str | None:
        """The token to send; read from ``token_path`` on every call."""
        # Bound service-account tokens are rotated by the kubelet, so a cached copy expires.
        if self.token_path is not None:
            return self.token_path.read_text(encoding="utf-8").strip() or None
        return self.token

    def http_client(self, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> httpx.Client:
        """An httpx client that trusts the cluster CA when one is configured."""
        verify: ssl.SSLContext | bool = True
        if self.ca_path is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_path))
        return httpx.Client(verify=verify, timeout=timeout)


class KubeClient:
    """JSON in, JSON out against the Kubernetes API, with errors mapped at the boundary."""

    def __init__(self, client: httpx.Client, config: KubeConfig) -> None:
        self._client = client
        self._config = config
        self._base = config.api_url.rstrip("/")

    def get(
        self, path: str, *, integration: str, target: str, operation: str = "get"
    ) -> JsonObject:
        """GET one object."""
        return self._send("GET", path, integration=integration, operation=operation, target=target)

    def merge_patch(
        self,
        path: str,
        patch: Mapping[str, Any],
        *,
        integration: str,
        target: str,
        operation: str = "patch",
    ) -> JsonObject:
        """PATCH with an RFC 7386 merge patch; ``None`` values delete fields."""
        return self._send(
            "PATCH",
            path,
            body=dict(patch),
            content_type=MERGE_PATCH,
            integration=integration,
            operation=operation,
            target=target,
        )

    def json_patch(
        self,
        path: str,
        operations: Sequence[Mapping[str, Any]],
        *,
        integration: str,
        target: str,
        operation: str = "patch",
    ) -> JsonObject:
        """PATCH with an RFC 6902 JSON patch (needed to change one entry of a list)."""
        return self._send(
            "PATCH",
            path,
            body=[dict(op) for op in operations],
            content_type=JSON_PATCH,
            integration=integration,
            operation=operation,
            target=target,
        )

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        token = self._config.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        integration: str,
        operation: str,
        target: str,
        body: object = None,
        content_type: str | None = None,
    ) -> JsonObject:
        where: Where = {"integration": integration, "operation": operation, "target": target}
        try:
            headers = self._headers(content_type)
        except OSError as exc:
            raise AuthFailed(
                f"cannot read the service-account token ({type(exc).__name__})", **where
            ) from exc
        with mapped_errors(**where):
            response = self._client.request(method, self._base + path, headers=headers, json=body)
            raise_for_status(_status_message_only(response), **where)
            data = response.json()
        if not isinstance(data, dict):
            raise InvalidRequest("expected a JSON object from the API server", **where)
        return data


def _status_message_only(response: httpx.Response) -> httpx.Response:
    """Swap an error's ``Status`` JSON body for its human message, for readable errors."""
    if response.status_code < 400:
        return response
    try:
        body = response.json()
    except ValueError:
        return response
    if not (isinstance(body, dict) and body.get("kind") == "Status" and body.get("message")):
        return response
    # Only Retry-After matters for mapping; the other headers describe the old body.
    headers = {"retry-after": value} if (value := response.headers.get("retry-after")) else {}
    return httpx.Response(response.status_code, headers=headers, text=str(body["message"]))


def escape_pointer(key: str) -> str:
    """Escape one JSON-pointer segment (``rollbot.io/x`` → ``rollbot.io~1x``)."""
    return key.replace("~", "~0").replace("/", "~1")


_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def object_name_problems(target: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """Problems with the Kubernetes object names a target must carry (missing or malformed)."""
    problems = []
    for key in keys:
        value = target.get(key)
        if value is None or value == "":
            problems.append(f"target is missing {key!r}")
        elif not isinstance(value, str) or not _DNS_NAME.match(value):
            problems.append(
                f"target {key!r} must be a lowercase DNS name like 'fraud-model', got {value!r}"
            )
    return problems
