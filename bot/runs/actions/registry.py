"""Registry actions: move an alias, tag a version."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from bot.runs.actions.base import ActionParams, component_of, typed
from bot.runs.contracts import StepContext


class SetAliasParams(ActionParams):
    """Point ``alias`` of the component's registered model at ``version``."""

    alias: str = Field(min_length=1)
    version: str = Field(min_length=1)
    component: str | None = None


class SetAlias:
    """``registry.set_alias``: point an alias (such as ``production``) at a version."""

    name = "registry.set_alias"
    params_model: type[BaseModel] = SetAliasParams
    description = "Point a registry alias (such as production) at a version."

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        p = typed(params, SetAliasParams)
        component = component_of(context, p.component)
        before = component.registry.get_alias(component.registry_model, p.alias)
        component.registry.set_alias(
            component.registry_model, p.alias, p.version, idempotency_key=idempotency_key
        )
        return _alias_output(component.registry_model, p, before.version if before else None)

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        p = typed(params, SetAliasParams)
        component = component_of(context, p.component)
        current = component.registry.get_alias(component.registry_model, p.alias)
        if current is None or current.version != p.version:
            return None
        return _alias_output(component.registry_model, p, None)


def _alias_output(registry_model: str, p: SetAliasParams, previous: str | None) -> dict[str, Any]:
    return {
        "registry_model": registry_model,
        "alias": p.alias,
        "version": p.version,
        "previous": previous,
    }


class TagVersionParams(ActionParams):
    """Set tag ``key`` to ``value`` on ``version`` of the component's registered model."""

    version: str = Field(min_length=1)
    key: str = Field(min_length=1)
    value: str
    component: str | None = None


class TagVersion:
    """``registry.tag_version``: mark a version, e.g. ``rolled_back_from=true``."""

    name = "registry.tag_version"
    params_model: type[BaseModel] = TagVersionParams
    description = "Set one tag on one version in the registry."

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        p = typed(params, TagVersionParams)
        component = component_of(context, p.component)
        component.registry.set_version_tag(
            component.registry_model, p.version, p.key, p.value, idempotency_key=idempotency_key
        )
        return _tag_output(component.registry_model, p)

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        p = typed(params, TagVersionParams)
        component = component_of(context, p.component)
        version = component.registry.get_version(component.registry_model, p.version)
        if version.tags.get(p.key) != p.value:
            return None
        return _tag_output(component.registry_model, p)


def _tag_output(registry_model: str, p: TagVersionParams) -> dict[str, Any]:
    return {"registry_model": registry_model, "version": p.version, "tag": {p.key: p.value}}
