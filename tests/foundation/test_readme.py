"""The README's examples are what the loaders accept: a newcomer can copy them as they are."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import parse_config
from bot.runbooks.loader import read_runbook

README = Path(__file__).resolve().parents[2] / "README.md"


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_configuration_example_validates() -> None:
    [example] = [block for block in _yaml_blocks() if block.startswith("version: 1")]

    config = parse_config(example)

    model = config.models["fraud-detector"]
    assert model.watch is not None and model.owners == ["S0FRAUDTEAM"]
    assert config.metrics.url == "http://prometheus:9090"


def test_the_runbook_example_validates(tmp_path: Path) -> None:
    [example] = [block for block in _yaml_blocks() if block.startswith("name: ")]
    path = tmp_path / "staged-rollback.yaml"
    path.write_text(example, encoding="utf-8")

    runbook, problems = read_runbook(path)

    assert problems == [] and runbook is not None
    assert [step.name for step in runbook.steps] == ["shift-25", "bake-25", "verify-25"]
