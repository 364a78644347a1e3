"""Build the integrations a configuration names: registries, deployers, the metrics source.

Secrets come from the environment only: an option such as ``token_env: MLFLOW_TOKEN`` names
the variable, and a variable that is not set is a ConfigError naming the option. Paths of
the local kinds are relative to the configuration file; their optional ``seed`` file is
copied into place the first time the state file is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from bot.config.models import IntegrationConfig, RollbotConfig
from bot.config.settings import Settings
from bot.errors import ConfigError, NotFoundError, validation_reason
from bot.runbooks.problems import FieldPath, config_lines, field_name, line_of
from bot.runbooks.render import dependency_order
from bot.runs.contracts import Component
from bot.safe_versions import MODEL_COMPONENT
from bot.serving import Served
from integrations.deployers.base import Deployer
from integrations.deployers.kserve import KServeDeployer
from integrations.deployers.kubernetes import KubernetesDeployer
from integrations.deployers.local import LocalDeployer
from integrations.deployers.webhook import WebhookDeployer
from integrations.http import DEFAULT_TIMEOUT
from integrations.kube import KubeClient, KubeConfig
from integrations.metrics.base import MetricsSource
from integrations.metrics.prometheus import PrometheusSource
from integrations.registry.base import ModelRegistry
from integrations.registry.local import LocalRegistry
from integrations.registry.mlflow import MLflowRegistry

_PLACEHOLDER_API = "https://kubernetes.default.svc"
_SINGULAR = {"registries": "registry", "deployers": "deployer"}


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalOptions(_Options):
    path: str
    seed: str | None = None


class MLflowOptions(_Options):
    url: str
    token_env: str | None = None


class KubeOptions(_Options):
    api_url: str | None = None
    token_env: str | None = None
    ca_file: str | None = None


class WebhookOptions(_Options):
    url: str
    secret_env: str | None = None


REGISTRY_KINDS: dict[str, type[_Options]] = {"local": LocalOptions, "mlflow": MLflowOptions}
DEPLOYER_KINDS: dict[str, type[_Options]] = {
    "kserve": KubeOptions,
    "kubernetes": KubeOptions,
    "local": LocalOptions,
    "webhook": WebhookOptions,
}


def option_problems(
    section: str, name: str, integration: IntegrationConfig
) -> list[tuple[FieldPath, str]]:
    """What is wrong with one registry or deployer entry: (field path, reason)."""
    kinds = REGISTRY_KINDS if section == "registries" else DEPLOYER_KINDS
    where: FieldPath = (section, name)
    options_model = kinds.get(integration.kind)
    if options_model is None:
        known = ", ".join(sorted(kinds))
        return [((*where, "kind"), f"unknown kind {integration.kind!r} (known: {known})")]
    try:
        options_model.model_validate(integration.options())
    except ValidationError as exc:
        problems: list[tuple[FieldPath, str]] = []
        for error in exc.errors():
            reason = validation_reason(error)
            if error["type"] == "extra_forbidden":
                reason = f"unknown option for kind {integration.kind!r} (check the spelling)"
            elif error["type"] == "missing":
                reason = f"required option for kind {integration.kind!r} is missing"
            problems.append(((*where, *error["loc"]), reason))
        return problems
    return []


def build_registry(
    name: str,
    config: RollbotConfig,
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
) -> ModelRegistry:
    """The named registry."""
    integration = _entry(config.registries, "registries", name, settings)
    wiring = _Wiring(settings, environ, ("registries", name))
    if integration.kind == "local":
        local = LocalOptions.model_validate(integration.options())
        return LocalRegistry(wiring.state_file(local))
    mlflow = MLflowOptions.model_validate(integration.options())
    token = wiring.secret("token_env", mlflow.token_env)
    return MLflowRegistry(mlflow.url, client=httpx.Client(timeout=DEFAULT_TIMEOUT), token=token)


def build_deployer(
    name: str,
    config: RollbotConfig,
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    checking: bool = False,
) -> Deployer:
    """The named deployer (``checking=True``: for validating targets, no secrets, no seeding)."""
    integration = _entry(config.deployers, "deployers", name, settings)
    wiring = _Wiring(settings, environ, ("deployers", name), checking=checking)
    kind = integration.kind
    if kind == "local":
        return LocalDeployer(wiring.state_file(LocalOptions.model_validate(integration.options())))
    if kind == "webhook":
        hook = WebhookOptions.model_validate(integration.options())
        secret = wiring.secret("secret_env", hook.secret_env)
        return WebhookDeployer(
            hook.url, client=httpx.Client(timeout=DEFAULT_TIMEOUT), secret=secret
        )
    kube = wiring.kube_client(KubeOptions.model_validate(integration.options()))
    return KServeDeployer(kube) if kind == "kserve" else KubernetesDeployer(kube)


def build_metrics_source(config: RollbotConfig, settings: Settings) -> MetricsSource | None:
    """Prometheus at ``metrics.url`` or ``PROMETHEUS_URL``; None when neither is set."""
    url = metrics_url(config, settings)
    if url is None:
        return None
    return PrometheusSource(url, timeout=config.metrics.timeout.total_seconds())


def metrics_url(config: RollbotConfig, settings: Settings) -> str | None:
    """``metrics.url``, else ``PROMETHEUS_URL``; None when neither is set."""
    return config.metrics.url or settings.prometheus_url or None


def no_metrics_source(models: Collection[str]) -> str:
    """Why these models' watches cannot run: there is no metrics source to read."""
    names = ", ".join(sorted(models))
    subject = f"model {names} has" if len(models) == 1 else f"models {names} have"
    return f"{subject} a watch but no metrics source: set metrics.url or PROMETHEUS_URL"


def components_for(
    config: RollbotConfig,
    settings: Settings,
    model: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Component]:
    """The model's linked components in dependency order, then the model itself."""
    model_config = config.models.get(model)
    if model_config is None:
        known = ", ".join(sorted(config.models)) or "none configured"
        raise NotFoundError(f"unknown model {model!r} (known: {known})")
    registries: dict[str, ModelRegistry] = {}
    deployers: dict[str, Deployer] = {}

    def registry(name: str) -> ModelRegistry:
        if name not in registries:
            registries[name] = build_registry(name, config, settings, environ=environ)
        return registries[name]

    def deployer(name: str) -> Deployer:
        if name not in deployers:
            deployers[name] = build_deployer(name, config, settings, environ=environ)
        return deployers[name]

    components = {
        linked.name: Component(
            name=linked.name,
            registry=registry(linked.registry or model_config.registry),
            registry_model=linked.registry_model or linked.name,
            deployer=deployer(linked.deployer),
            target=dict(linked.target),
        )
        for linked in dependency_order(model_config.components)
    }
    components[model] = Component(
        name=model,
        registry=registry(model_config.registry),
        registry_model=model_config.registry_model or model,
        deployer=deployer(model_config.deployer),
        target=dict(model_config.target),
    )
    return components


def served_deployments(
    config: RollbotConfig, settings: Settings, *, environ: Mapping[str, str] | None = None
) -> tuple[list[Served], list[str]]:
    """Every model and linked component with its deployer and registry, each built once;
    and, in words, what could not be built (a model without its deployer is left out, one
    without its registry only loses naming versions by their source)."""
    built: dict[tuple[str, str], Any] = {}
    problems: list[str] = []

    def build(kind: str, name: str) -> Any:
        if (kind, name) not in built:
            make = build_deployer if kind == "deployer" else build_registry
            try:
                built[kind, name] = make(name, config, settings, environ=environ)
            except (ConfigError, NotFoundError) as exc:
                built[kind, name] = None
                problems.append(f"{kind} {name!r}: {exc}")
        return built[kind, name]

    served = []
    for model, spec in config.models.items():
        places = [
            (
                MODEL_COMPONENT,
                spec.deployer,
                spec.target,
                spec.registry,
                spec.registry_model or model,
            )
        ]
        places += [
            (c.name, c.deployer, c.target, c.registry or spec.registry, c.registry_model or c.name)
            for c in spec.components
        ]
        for component, deployer_name, target, registry_name, registry_model in places:
            if (deployer := build("deployer", deployer_name)) is not None:
                registry = build("registry", registry_name)
                served.append(
                    Served(model, component, deployer, dict(target), registry, registry_model)
                )
    return served, problems


def config_dir(settings: Settings) -> Path:
    """The folder relative paths in the configuration are resolved against."""
    return Path(settings.rollbot_config).resolve().parent


def _entry(
    pool: Mapping[str, IntegrationConfig], section: str, name: str, settings: Settings
) -> IntegrationConfig:
    integration = pool.get(name)
    if integration is None:
        known = ", ".join(sorted(pool)) or "none configured"
        raise ConfigError(
            f"{settings.rollbot_config}: {section}: unknown {_SINGULAR[section]} {name!r} "
            f"(known: {known})"
        )
    problems = option_problems(section, name, integration)
    if problems:
        lines = config_lines(Path(settings.rollbot_config))
        raise ConfigError(
            "\n".join(
                f"{settings.rollbot_config}:{line_of(path, lines)}: {field_name(path)}: {reason}"
                for path, reason in problems
            )
        )
    return integration


class _Wiring:
    """Resolves paths and secrets for one configuration entry, naming it in every error."""

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None,
        where: FieldPath,
        *,
        checking: bool = False,
    ) -> None:
        self._settings = settings
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._where = where
        self._checking = checking

    def secret(self, option: str, variable: str | None) -> str | None:
        """The value of the environment variable an option names."""
        if variable is None:
            return None
        value = self._environ.get(variable)
        if value:
            return value
        if self._checking:
            return "unset"
        path = (*self._where, option)
        lines = config_lines(Path(self._settings.rollbot_config))
        raise ConfigError(
            f"{self._settings.rollbot_config}:{line_of(path, lines)}: {field_name(path)}: "
            f"environment variable {variable} is not set"
        )

    def state_file(self, options: LocalOptions) -> Path:
        """The local state file, copied from its seed when missing."""
        path = self._resolve(options.path)
        if options.seed is not None and not path.exists() and not self._checking:
            _copy_seed(self._resolve(options.seed), path)
        return path

    def kube_client(self, options: KubeOptions) -> KubeClient:
        """A Kubernetes client: explicit API URL and token, else the pod's service account."""
        if options.api_url is not None:
            kube = KubeConfig(
                api_url=options.api_url,
                token=self.secret("token_env", options.token_env),
                ca_path=self._resolve(options.ca_file) if options.ca_file else None,
            )
        elif not self._checking:
            kube = KubeConfig.in_cluster(environ=self._environ)
        else:
            kube = KubeConfig(api_url=_PLACEHOLDER_API)
        return KubeClient(kube.http_client(), kube)

    def _resolve(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else config_dir(self._settings) / path


def _copy_seed(seed: Path, path: Path) -> None:
    """Copy atomically, so two processes starting together never see half a file."""
    if not seed.is_file():
        raise ConfigError(f"{seed}: seed file not found")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    shutil.copyfile(seed, temporary)
    if path.exists():  # another process seeded it first
        Path(temporary).unlink()
        return
    os.replace(temporary, path)


def seed_history(config: RollbotConfig, settings: Settings, model: str) -> list[dict[str, Any]]:
    """The ``history`` entries a local registry file carries for the model (demos and drills)."""
    model_config = config.models.get(model)
    if model_config is None:
        return []
    integration = config.registries.get(model_config.registry)
    if integration is None or integration.kind != "local":
        return []
    options = LocalOptions.model_validate(integration.options())
    path = _Wiring(settings, None, ("registries", model_config.registry)).state_file(options)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    history = data.get("history", {}) if isinstance(data, dict) else {}
    entries = history.get(model, []) if isinstance(history, dict) else []
    return [dict(entry) for entry in entries if isinstance(entry, dict)]
