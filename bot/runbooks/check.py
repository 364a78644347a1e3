"""``rollbot runbooks check``: every runbook and every model's use of one, before an incident.

Runbooks are rendered with sample versions (once for no model in particular, then once per
model that uses them) so that unknown actions, bad parameters, template errors and undefined
variables surface here rather than halfway through a rollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.config.models import ModelConfig, RollbotConfig
from bot.config.settings import Settings
from bot.errors import ConfigError, RollbotError
from bot.runbooks.format import Runbook
from bot.runbooks.loader import read_runbooks
from bot.runbooks.problems import (
    FieldPath,
    LineMap,
    Problem,
    config_lines,
    display_path,
    field_name,
    line_of,
)
from bot.runbooks.render import (
    ComponentVersions,
    dependency_order,
    render_steps,
    resolve_parameters,
    template_context,
)
from bot.runbooks.templating import SampleMapping
from bot.runs.contracts import PlanStep
from integrations.deployers.base import Deployer

SAMPLE_FROM, SAMPLE_TO = "1", "2"
_SHIFT = "deployer.shift_traffic"


def check(
    config: RollbotConfig,
    runbooks_dir: Path,
    *,
    paths: list[Path] | None = None,
    config_path: Path | None = None,
) -> list[Problem]:
    """Every problem in the runbooks (all of ``runbooks_dir``, or only ``paths``) and in the
    configuration's use of them, sorted by file and line."""
    runbooks, problems = read_runbooks(runbooks_dir)
    if paths is not None:
        named, problems = read_runbooks(runbooks_dir, paths=paths)
        runbooks = {**runbooks, **named}
        checked = named.values()
    else:
        checked = runbooks.values()
    broken: set[str] = set()
    for runbook in checked:
        found = _runbook_problems(runbook, config)
        if found:
            broken.add(runbook.name)
        problems.extend(found)
    problems.extend(ConfigCheck(config, runbooks, config_path, broken=broken).problems())
    return sorted(set(problems))


def _runbook_problems(runbook: Runbook, config: RollbotConfig) -> list[Problem]:
    problems: list[Problem] = []

    def report(path: FieldPath, reason: str) -> None:
        problems.append(Problem(runbook.source, runbook.line(path), field_name(path), reason))

    policy = runbook.approval_policy
    if policy is not None and policy not in config.approval_policies:
        known = ", ".join(sorted(config.approval_policies)) or "none configured"
        report(("approval_policy",), f"unknown approval policy {policy!r} (known: {known})")
    params = {name: spec.default for name, spec in runbook.parameters.items()}
    context = {
        "model": "sample-model",
        "from_version": SAMPLE_FROM,
        "to_version": SAMPLE_TO,
        "params": {name: _sample(runbook, name, value) for name, value in params.items()},
        "target": SampleMapping(),
        "watch": SampleMapping(),
        "components": [
            {
                "name": "sample-component",
                "from_version": SAMPLE_FROM,
                "to_version": SAMPLE_TO,
                "target": SampleMapping(),
                "depends_on": [],
            }
        ],
    }
    render_steps(runbook, context, report, every_step=True)
    return problems


def _sample(runbook: Runbook, name: str, value: Any) -> Any:
    spec = runbook.parameters[name]
    if value is not None:
        return spec.coerce(value)
    samples = {"integer": 1, "number": 1.0, "boolean": True, "duration": "1m"}
    return samples.get(spec.type.value, f"<{name}>")


class ConfigCheck:
    """The configuration's side: integrations, targets, each model's runbook and whether
    its watch has a metrics source."""

    def __init__(
        self,
        config: RollbotConfig,
        runbooks: Mapping[str, Runbook],
        config_path: Path | None,
        *,
        broken: set[str] | None = None,
    ) -> None:
        self.config = config
        # Runbooks whose own problems are already reported: no second report per model.
        self.broken = broken or set()
        self.runbooks = runbooks
        self.source = display_path(config_path) if config_path else "<config>"
        self.lines: LineMap = config_lines(config_path)
        self.settings = Settings(rollbot_config=str(config_path or "rollbot.yaml"))
        self.found: list[Problem] = []

    def report(self, path: FieldPath, reason: str) -> None:
        """Note a problem at a configuration field."""
        self.found.append(Problem(self.source, line_of(path, self.lines), field_name(path), reason))

    def problems(self) -> list[Problem]:
        """Everything wrong with the configuration."""
        # Imported here: wiring uses this package's helpers.
        from bot.wiring import metrics_url, no_metrics_source, option_problems

        for path, reason in self.config.reference_problems():
            self.report(path, reason)
        for section, pool in (
            ("registries", self.config.registries),
            ("deployers", self.config.deployers),
        ):
            for name, integration in pool.items():
                for path, reason in option_problems(section, name, integration):
                    self.report(path, reason)
        # The worker would refuse to start without one; the check says so first, at the watch.
        no_metrics = metrics_url(self.config, self.settings) is None
        for name, model in self.config.models.items():
            if model.watch is not None and no_metrics:
                self.report(("models", name, "watch"), no_metrics_source([name]))
            self._model(name, model)
        return self.found

    def _model(self, name: str, model: ModelConfig) -> None:
        where: FieldPath = ("models", name)
        self._target(model.deployer, model.target, (*where, "target"))
        for index, component in enumerate(model.components):
            self._target(component.deployer, component.target, (*where, "components", index))
        try:
            dependency_order(model.components)
        except ConfigError as exc:
            self.report((*where, "components"), str(exc))
            return
        runbook = self.runbooks.get(model.runbook)
        if runbook is None:
            known = ", ".join(sorted(self.runbooks)) or "none"
            self.report((*where, "runbook"), f"unknown runbook {model.runbook!r} (known: {known})")
            return
        steps = self._render(name, model, runbook)
        if steps is not None:
            self._traffic_splits(name, model, runbook, steps)

    def _target(self, deployer: str, target: Mapping[str, Any], where: FieldPath) -> None:
        if deployer not in self.config.deployers:
            return  # reported by reference_problems
        built = self._deployer(deployer)
        if built is None:
            return  # the deployer's own options are reported where they are written
        for reason in built.validate_target(target):
            self.report(where if where[-1] == "target" else (*where, "target"), reason)

    def _render(self, name: str, model: ModelConfig, runbook: Runbook) -> list[PlanStep] | None:
        where: FieldPath = ("models", name, "runbook")
        try:
            params = resolve_parameters(runbook, model.runbook_parameters)
        except RollbotError as exc:
            self.report(("models", name, "runbook_parameters"), str(exc))
            return None
        context = template_context(
            model=name,
            model_config=model,
            from_version=SAMPLE_FROM,
            to_version=SAMPLE_TO,
            params=params,
            component_versions={
                c.name: ComponentVersions(SAMPLE_FROM, SAMPLE_TO) for c in model.components
            },
        )
        failed: list[str] = []

        def report(path: FieldPath, reason: str) -> None:
            failed.append(f"{runbook.where(path)}: {reason}")

        steps = render_steps(runbook, context, report, every_step=True)
        if runbook.name in self.broken:
            return None
        for message in failed:
            self.report(
                where, f"runbook {runbook.name!r} does not render for this model: {message}"
            )
        return None if failed else steps

    def _traffic_splits(
        self, name: str, model: ModelConfig, runbook: Runbook, steps: list[PlanStep]
    ) -> None:
        deployers = {c.name: c.deployer for c in model.components}
        for step in steps:
            for candidate in (step, step.compensation):
                if candidate is None or candidate.action != _SHIFT:
                    continue
                percent = int(candidate.params.get("percent", 100))
                deployer = deployers.get(candidate.params.get("component") or "", model.deployer)
                if percent in (0, 100) or deployer not in self.config.deployers:
                    continue
                if self._splits(deployer):
                    continue
                self.report(
                    ("models", name, "runbook"),
                    f"runbook {runbook.name!r} step {candidate.name!r} sends {percent}% of "
                    f"traffic, but deployer {deployer!r} "
                    f"({self.config.deployers[deployer].kind}) cannot split traffic",
                )

    def _splits(self, deployer: str) -> bool:
        built = self._deployer(deployer)
        return built is None or built.supports_traffic_split

    def _deployer(self, name: str) -> Deployer | None:
        """The deployer, built without secrets (checking needs none); None if it cannot be."""
        from bot.wiring import build_deployer  # wiring uses this package's helpers

        try:
            return build_deployer(name, self.config, self.settings, checking=True)
        except (RollbotError, ValueError, OSError):
            return None
