"""The YAML configuration, as pydantic models. Unknown keys are errors: typos must not pass."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from bot.config.durations import Duration
from bot.config.watch import WatchConfig

_SLACK_ID_SHAPES = {  # allowed first letters → (what, what one looks like)
    "UW": ("a Slack user id", "U or W, then capital letters and digits, like U024BE7LH"),
    "S": ("a Slack user-group id", "S, then capital letters and digits, like S0FRAUDTEAM"),
    "UWS": (
        "a Slack user or user-group id",
        "U or W for a user, S for a user group, then capital letters and digits, "
        "like U024BE7LH or S0FRAUDTEAM",
    ),
}


def _slack_id(value: str, *, prefixes: str) -> str:
    """Slack refuses handles where it wants ids: catch ``@name`` when the file loads."""
    if re.fullmatch(f"[{prefixes}][A-Z0-9]+", value):
        return value
    what, shape = _SLACK_ID_SHAPES[prefixes]
    raise ValueError(f"{value!r} is not {what} ({shape})")


SlackUserId = Annotated[str, AfterValidator(partial(_slack_id, prefixes="UW"))]
SlackGroupId = Annotated[str, AfterValidator(partial(_slack_id, prefixes="S"))]
SlackMemberId = Annotated[str, AfterValidator(partial(_slack_id, prefixes="UWS"))]


class Section(BaseModel):
    """Base of every configuration block: strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackConfig(Section):
    """How Rollbot appears in Slack."""

    command: str = Field(default="/rollbot", pattern=r"^/[a-z0-9_-]+$")
    channel_prefix: str = Field(default="inc-", pattern=r"^[a-z0-9_-]*$", max_length=20)
    announce_channel: str | None = None
    responders: list[SlackMemberId] = Field(default_factory=list)
    pin_reaction: str = "pushpin"
    # Where the work a Slack request leaves after its ack is done: in the web process that
    # acked it (fastest replies), or only in the worker (acks never share a CPU with it).
    follow_ups: Literal["web", "worker"] = "web"


class IntegrationConfig(Section):
    """One named registry or deployer: its kind and the kind's own settings.

    Secrets are never written here: name the environment variable that holds them
    (``token_env``, ``secret_env``).
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str

    def options(self) -> dict[str, Any]:
        """The kind-specific settings."""
        return dict(self.model_extra or {})


class MetricsConfig(Section):
    """Where PromQL queries go; ``PROMETHEUS_URL`` is the default."""

    url: str | None = None
    timeout: Duration = timedelta(seconds=10)


class ServingConfig(Section):
    """How Rollbot notices deploys: it asks each model's deployer what serves."""

    poll_interval: Duration = timedelta(seconds=15)

    @field_validator("poll_interval")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("poll_interval must be at least 1s")
        return value


class ApprovalPolicy(Section):
    """Who must approve a rollback, and for how long the request stands."""

    approvals: int = Field(default=1, ge=1, le=10)
    approver_groups: list[SlackGroupId] = Field(default_factory=list)
    approvers: list[SlackUserId] = Field(default_factory=list)
    allow_self_approval: bool = False
    expires_after: Duration = timedelta(minutes=30)


class SafeVersionPolicy(Section):
    """What makes a version safe to roll back to."""

    require_tags: dict[str, str] = Field(default_factory=dict)
    min_serving: Duration = timedelta(hours=1)


class ComponentConfig(Section):
    """A linked component (feature pipeline, preprocessing) rolled back with the model."""

    name: str
    registry: str | None = None
    registry_model: str | None = None
    deployer: str
    target: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)


class ModelConfig(Section):
    """One model Rollbot looks after."""

    registry: str
    registry_model: str | None = None
    deployer: str
    target: dict[str, Any] = Field(default_factory=dict)
    runbook: str = "immediate-rollback"
    # Values for the runbook's parameters (e.g. a longer bake time for this model).
    runbook_parameters: dict[str, Any] = Field(default_factory=dict)
    approval_policy: str = "default"
    safe_version: SafeVersionPolicy = SafeVersionPolicy()
    components: list[ComponentConfig] = Field(default_factory=list)
    watch: WatchConfig | None = None
    # Slack user or user-group ids invited to the model's incident channels, with responders.
    owners: list[SlackMemberId] = Field(default_factory=list)


class AlertmanagerConfig(Section):
    """How Alertmanager alerts map onto models and incidents."""

    model_label: str = "model"
    propose_rollback: bool = False


class PostmortemConfig(Section):
    """Where postmortem templates come from."""

    templates_dir: str | None = None


class RollbotConfig(Section):
    """The whole configuration file."""

    version: Literal[1] = 1
    slack: SlackConfig = SlackConfig()
    metrics: MetricsConfig = MetricsConfig()
    serving: ServingConfig = ServingConfig()
    registries: dict[str, IntegrationConfig] = Field(default_factory=dict)
    deployers: dict[str, IntegrationConfig] = Field(default_factory=dict)
    approval_policies: dict[str, ApprovalPolicy] = Field(
        default_factory=lambda: {"default": ApprovalPolicy()}
    )
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    # Relative to the configuration file. Unset: its runbooks/ folder if there is one, else
    # the shipped runbooks; set, the folder must exist (a typo must not run other runbooks).
    runbooks_dir: str | None = None
    alertmanager: AlertmanagerConfig = AlertmanagerConfig()
    postmortem: PostmortemConfig = PostmortemConfig()

    def models_by_metrics_name(self) -> dict[str, str]:
        """Models by the name their metrics and alerts label them with, where it differs."""
        return {
            model.watch.metrics_name: name
            for name, model in self.models.items()
            if model.watch is not None and model.watch.metrics_name
        }

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Names that point at nothing: (path of the field, message)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []

        def check(path: tuple[str | int, ...], name: str | None, pool: dict[str, Any], what: str):
            if name is not None and name not in pool:
                known = ", ".join(sorted(pool)) or "none configured"
                problems.append((path, f"unknown {what} {name!r} (known: {known})"))

        for model_name, model in self.models.items():
            base: tuple[str | int, ...] = ("models", model_name)
            check((*base, "registry"), model.registry, self.registries, "registry")
            check((*base, "deployer"), model.deployer, self.deployers, "deployer")
            check(
                (*base, "approval_policy"),
                model.approval_policy,
                self.approval_policies,
                "approval policy",
            )
            for index, component in enumerate(model.components):
                where = (*base, "components", index)
                check((*where, "registry"), component.registry, self.registries, "registry")
                check((*where, "deployer"), component.deployer, self.deployers, "deployer")
        problems.extend(self._metrics_name_clashes())
        return problems

    def _metrics_name_clashes(self) -> list[tuple[tuple[str | int, ...], str]]:
        """A metrics name is one model's: not another model's own name, nor shared."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        claimed: dict[str, str] = {}
        for name, model in self.models.items():
            alias = model.watch.metrics_name if model.watch is not None else None
            if not alias or alias == name:
                continue
            path: tuple[str | int, ...] = ("models", name, "watch", "metrics_name")
            if alias in self.models:
                problems.append((path, f"{alias!r} is the name of another model"))
            elif alias in claimed:
                problems.append(
                    (path, f"{alias!r} is already the metrics name of {claimed[alias]}")
                )
            else:
                claimed[alias] = name
        return problems
