"""Problems found in runbooks and configuration, each pointing at a file, a line and a field."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.config.yaml_lines import FieldPath, LineMap, index_lines, line_of

__all__ = ["FieldPath", "LineMap", "Problem", "config_lines", "index_lines", "line_of"]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong, rendered as ``file:line: field: reason`` (``file: field: reason`` when
    it is about the whole file, ``line`` 0: one that cannot be read)."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.reason}"


def display_path(path: Path | str) -> str:
    """The path as a person would type it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def field_name(path: FieldPath) -> str:
    """``("steps", 2, "params", "percent")`` → ``steps[2].params.percent``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def config_lines(config_path: Path | None) -> LineMap:
    """The line map of a configuration file; empty when it cannot be read."""
    if config_path is None:
        return {}
    try:
        return index_lines(yaml.compose(config_path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError):
        return {}
