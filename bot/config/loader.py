"""Load the YAML configuration and report errors with the file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.config.models import RollbotConfig
from bot.config.yaml_lines import FieldPath, LineMap, index_lines, line_of
from bot.errors import ConfigError, validation_reason


def _dotted(path: FieldPath) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def load_config(path: str | Path) -> RollbotConfig:
    """Read and validate the configuration; raise :class:`ConfigError` on the first problems."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: configuration file not found (set ROLLBOT_CONFIG to its path)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "<config>") -> RollbotConfig:
    """Validate configuration text; errors name ``source``, the line and the field."""
    try:
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(f"{source}:{line}: invalid YAML: {exc.problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the configuration must be a mapping of sections")
    lines = index_lines(node)
    try:
        config = RollbotConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc, lines)) from None
    problems = config.reference_problems()
    if problems:
        raise ConfigError(
            "\n".join(
                f"{source}:{line_of(where, lines)}: {_dotted(where)}: {message}"
                for where, message in problems
            )
        )
    return config


def _format_errors(source: str, exc: ValidationError, lines: LineMap) -> str:
    rendered = []
    for error in exc.errors():
        where: FieldPath = tuple(error["loc"])
        message = validation_reason(error)
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        elif error["type"] == "missing":
            message = "required field is missing"
        rendered.append(f"{source}:{line_of(where, lines)}: {_dotted(where)}: {message}")
    return "\n".join(rendered)
