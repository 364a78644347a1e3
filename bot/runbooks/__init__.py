"""Rollback runbooks: YAML with Jinja2, loaded, checked and rendered into plans."""

from bot.runbooks.check import check
from bot.runbooks.format import ParameterSpec, ParameterType, Runbook, StepSpec
from bot.runbooks.loader import (
    load_runbooks,
    locate_runbooks_dir,
    read_runbooks,
    shipped_runbooks_dir,
)
from bot.runbooks.planning import plan_rollback, serving_version
from bot.runbooks.problems import Problem
from bot.runbooks.render import ComponentVersions, render_plan, resolve_parameters
from bot.safe_versions import NoSafeVersion

__all__ = [
    "ComponentVersions",
    "NoSafeVersion",
    "ParameterSpec",
    "ParameterType",
    "Problem",
    "Runbook",
    "StepSpec",
    "check",
    "load_runbooks",
    "locate_runbooks_dir",
    "plan_rollback",
    "read_runbooks",
    "render_plan",
    "resolve_parameters",
    "serving_version",
    "shipped_runbooks_dir",
]
