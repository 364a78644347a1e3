"""The README's examples are what the loaders accept: a newcomer can copy them as they are."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import parse_config
from bot.config.models import RollbotConfig
from bot.runbooks.check import check
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


def test_the_custom_metrics_example_validates_in_the_configuration_example() -> None:
    [config_example] = [block for block in _yaml_blocks() if block.startswith("version: 1")]
    [metrics] = [block for block in _yaml_blocks() if block.startswith("      metrics:")]
    watched = re.sub(r"      metrics: \[.*\]\n", lambda _: metrics, config_example)

    watch = parse_config(watched).models["fraud-detector"].watch

    assert watch is not None and set(watch.metrics) == {"timeouts", "recall"}
    assert watch.metrics["recall"].min_value == 0.8


def test_the_runbook_example_validates(tmp_path: Path) -> None:
    [example] = [block for block in _yaml_blocks() if block.startswith("name: ")]
    path = tmp_path / "staged-rollback.yaml"
    path.write_text(example, encoding="utf-8")

    runbook, problems = read_runbook(path)

    assert problems == [] and runbook is not None
    assert [step.name for step in runbook.steps] == ["shift-25", "bake-25", "verify-25"]
    assert check(RollbotConfig(), tmp_path) == []  # rendered as `rollbot runbooks check` does


def test_the_runbook_reference_example_checks(tmp_path: Path) -> None:
    reference = README.parent / "docs" / "runbooks.md"
    blocks = re.findall(r"```yaml\n(.*?)```", reference.read_text(encoding="utf-8"), re.S)
    [example] = [block for block in blocks if block.startswith("name: staged-rollback")]
    (tmp_path / "staged-rollback.yaml").write_text(example, encoding="utf-8")
    config = parse_config(
        "approval_policies: {default: {approvals: 1}, two-person: {approvals: 2}}\n"
    )

    assert check(config, tmp_path) == []
