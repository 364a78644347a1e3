"""Read runbook files; every problem names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.errors import ConfigError, validation_reason
from bot.runbooks.format import Runbook
from bot.runbooks.problems import (
    FieldPath,
    LineMap,
    Problem,
    config_lines,
    display_path,
    field_name,
    index_lines,
    line_of,
)

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = (".yaml", ".yml")


def shipped_runbooks_dir() -> Path:
    """The runbooks shipped with Rollbot: inside the wheel, or the source tree's ``runbooks/``."""
    for candidate in (_PACKAGE_ROOT / "_shipped" / "runbooks", _PACKAGE_ROOT.parent / "runbooks"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("Rollbot's shipped runbooks folder is missing from this installation")


def locate_runbooks_dir(runbooks_dir: str | None, config_path: Path) -> Path:
    """``runbooks_dir`` relative to the configuration file; ConfigError if it is not a folder.

    Without one, ``runbooks/`` beside the configuration file if it exists, else the shipped
    runbooks.
    """
    if runbooks_dir is None:
        beside = (config_path.parent / "runbooks").resolve()
        return beside if beside.is_dir() else shipped_runbooks_dir()
    candidate = Path(runbooks_dir)
    if not candidate.is_absolute():
        candidate = (config_path.parent / candidate).resolve()
    if not candidate.is_dir():
        line = line_of(("runbooks_dir",), config_lines(config_path))
        raise ConfigError(
            f"{display_path(config_path)}:{line}: runbooks_dir: runbooks folder "
            f"{runbooks_dir!r} not found (looked for {display_path(candidate)})"
        )
    return candidate


def read_runbook(path: Path) -> tuple[Runbook | None, list[Problem]]:
    """One runbook file: the runbook, or None and what is wrong with it."""
    source = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(source, 0, "(file)", f"cannot read: {exc.strerror or exc}")]
    try:
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        return None, [Problem(source, line, "(file)", f"invalid YAML: {exc.problem}")]
    if not isinstance(data, dict):
        return None, [Problem(source, 1, "(top level)", "a runbook must be a mapping")]
    lines = index_lines(node)
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        return None, _validation_problems(source, exc, lines)
    if runbook.name != path.stem:
        reason = f"must match the file name {path.stem!r}, got {runbook.name!r}"
        return None, [Problem(source, line_of(("name",), lines), "name", reason)]
    return runbook.located(path, lines), []


def read_runbooks(
    directory: Path, *, paths: list[Path] | None = None
) -> tuple[dict[str, Runbook], list[Problem]]:
    """Every runbook in ``directory`` (or only ``paths``: files, and folders' runbook files),
    and the problems found reading them."""
    files = runbook_files(directory) if paths is None else named_runbook_files(paths)
    runbooks: dict[str, Runbook] = {}
    problems: list[Problem] = []
    for path in files:
        runbook, found = read_runbook(path)
        problems.extend(found)
        if runbook is None:
            continue
        if runbook.name in runbooks:
            other = runbooks[runbook.name].source
            reason = f"runbook {runbook.name!r} is also defined in {other}"
            problems.append(Problem(runbook.source, runbook.line(("name",)), "name", reason))
            continue
        runbooks[runbook.name] = runbook
    return runbooks, problems


def runbook_files(directory: Path) -> list[Path]:
    """The runbook files of a folder, in name order."""
    if not directory.is_dir():
        raise ConfigError(f"{display_path(directory)}: runbooks folder not found")
    return sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())


def named_runbook_files(paths: list[Path]) -> list[Path]:
    """The files named, each folder replaced by its runbook files; a file named twice once."""
    files: dict[Path, Path] = {}
    for path in paths:
        for file in runbook_files(path) if path.is_dir() else [path]:
            files.setdefault(file.resolve(), file)
    return list(files.values())


def load_runbooks(directory: Path) -> dict[str, Runbook]:
    """Every runbook in the folder by name; ConfigError listing every problem otherwise."""
    runbooks, problems = read_runbooks(directory)
    if problems:
        raise ConfigError("\n".join(str(problem) for problem in sorted(problems)))
    return runbooks


def _validation_problems(source: str, exc: ValidationError, lines: LineMap) -> list[Problem]:
    problems = []
    for error in exc.errors():
        where: FieldPath = tuple(error["loc"])
        message = validation_reason(error)
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        elif error["type"] == "missing":
            message = "required field is missing"
        problems.append(Problem(source, line_of(where, lines), field_name(where), message))
    return problems
