"""Loading runbooks: the shipped ones load, and every broken one says file:line: field: reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import parse_config
from bot.errors import ConfigError
from bot.runbooks import (
    check,
    load_runbooks,
    locate_runbooks_dir,
    read_runbooks,
    shipped_runbooks_dir,
)
from tests.runbooks.conftest import SHIPPED

GOOD_STEP = """\
name: {name}
steps:
  - name: shift
    action: deployer.shift_traffic
    params:
      version: "{{{{ to_version }}}}"
      percent: 100
"""


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def _problems(tmp_path: Path, text: str, config: str = "version: 1\n") -> list[str]:
    path = _write(tmp_path / "runbooks", "broken", text)
    found = check(parse_config(config), tmp_path / "runbooks", paths=[path])
    return [
        str(problem).replace(str(path.parent) + "/", "").split("broken.yaml", 1)[-1]
        for problem in found
    ]


def test_the_shipped_runbooks_load_and_check_clean() -> None:
    runbooks = load_runbooks(SHIPPED)
    assert set(runbooks) == {"immediate-rollback", "staged-rollback", "bundle-rollback"}
    assert check(parse_config("version: 1\n"), SHIPPED) == []
    assert all(runbook.description for runbook in runbooks.values())


def test_a_problem_reads_file_line_field_reason(tmp_path: Path) -> None:
    text = GOOD_STEP.format(name="broken").replace("percent: 100", "percent: 250")
    path = _write(tmp_path / "runbooks", "broken", text)
    (problem,) = check(parse_config("version: 1\n"), tmp_path / "runbooks", paths=[path])
    assert problem.line == 7
    assert problem.field == "steps[0].params.percent"
    assert problem.reason == "Input should be less than or equal to 100"
    assert str(problem).endswith("broken.yaml:7: steps[0].params.percent: " + problem.reason)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("action: deployer.shift_traffic", "action: deployer.shift_trafic"),
            ":4: steps[0].action: unknown action 'deployer.shift_trafic' (known: deployer."
            "shift_traffic, deployer.wait_ready, notify, registry.set_alias, "
            "registry.tag_version, verify, wait)",
        ),
        (
            ("percent: 100", "percnt: 100"),
            ":7: steps[0].params.percnt: unknown parameter of deployer.shift_traffic "
            "(check the spelling)",
        ),
        (
            ('"{{ to_version }}"', '"{{ to_version }"'),
            ":6: steps[0].params.version: template syntax error: unexpected '}'",
        ),
        (
            ('"{{ to_version }}"', '"{{ to_verison }}"'),
            ":6: steps[0].params.version: undefined variable: 'to_verison' is undefined",
        ),
        (
            ('"{{ to_version }}"', '"{{ target.namespace }}-{{ nope.x }}"'),
            ":6: steps[0].params.version: undefined variable: 'nope' is undefined",
        ),
        (
            ("      percent: 100", '      percent: 100\n    when: "{{ to_version and model == "'),
            ":8: steps[0].when: template syntax error: unexpected 'end of template'",
        ),
        (
            ("      percent: 100", '      percent: 100\n    when: "{{ params.notify_team }}"'),
            ":8: steps[0].when: undefined variable: 'dict object' has no attribute 'notify_team'",
        ),
        (
            ("steps:", "descripton: oops\nsteps:"),
            ":2: descripton: unknown field (check the spelling)",
        ),
        (
            ("name: broken", "name: other"),
            ":1: name: must match the file name 'broken', got 'other'",
        ),
        (
            ("steps:", "approval_policy: four-eyes\nsteps:"),
            ":2: approval_policy: unknown approval policy 'four-eyes' (known: default)",
        ),
        (
            ("      percent: 100", "      percent: 100\n    on_failure: compensate"),
            ":3: steps[0]: on_failure 'compensate' needs a 'compensation' step",
        ),
        (
            ("      percent: 100", "      percent: 100\n    timeout: soon"),
            ":8: steps[0].timeout: expected a duration such as 30s, 5m or 1h, got 'soon'",
        ),
        (
            ("steps:", "parameters:\n  bake: {type: duration, default: forever}\nsteps:"),
            ":3: parameters.bake: expected a duration such as 30s, 5m or 1h, got 'forever'",
        ),
        (
            ("      percent: 100", "      percent: 100\n  - name: shift\n    action: wait"),
            ":8: steps[1].name: two steps are named 'shift'",
        ),
        (
            ("percent: 100", "percent: [1"),
            ":8: (file): invalid YAML: expected ',' or ']', but got '<stream end>'",
        ),
    ],
)
def test_each_kind_of_broken_runbook_is_reported_exactly(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    text = GOOD_STEP.format(name="broken").replace(*edit)
    assert _problems(tmp_path, text) == [expected]


def test_a_compensation_with_bad_params_points_into_the_compensation(tmp_path: Path) -> None:
    text = GOOD_STEP.format(name="broken") + (
        "    compensation:\n"
        "      name: undo\n"
        "      action: registry.set_alias\n"
        "      params: {version: '{{ from_version }}'}\n"
    )
    assert _problems(tmp_path, text) == [":11: steps[0].compensation.params.alias: Field required"]


def test_load_runbooks_refuses_a_folder_with_a_broken_runbook(tmp_path: Path) -> None:
    _write(tmp_path, "good", GOOD_STEP.format(name="good"))
    _write(tmp_path, "bad", "name: bad\nsteps: []\n")
    with pytest.raises(ConfigError) as raised:
        load_runbooks(tmp_path)
    assert str(raised.value).endswith(
        "bad.yaml:2: steps: List should have at least 1 item after validation, not 0"
    )


def test_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="runbooks folder not found"):
        read_runbooks(tmp_path / "nowhere")


def test_without_a_runbooks_dir_the_folder_beside_the_configuration_else_the_shipped_one(
    tmp_path: Path,
) -> None:
    config_path = tmp_path / "rollbot.yaml"
    assert locate_runbooks_dir(None, config_path) == shipped_runbooks_dir()
    (tmp_path / "runbooks").mkdir()
    assert locate_runbooks_dir(None, config_path) == (tmp_path / "runbooks").resolve()


def test_a_runbook_that_fails_only_for_one_model_is_reported_at_that_model(
    tmp_path: Path,
) -> None:
    text = GOOD_STEP.format(name="ns").replace('"{{ to_version }}"', '"{{ target.namespace }}"')
    _write(tmp_path / "runbooks", "ns", text)
    config = parse_config(
        "version: 1\nregistries: {r: {kind: local, path: r.json}}\n"
        "deployers: {d: {kind: local, path: d.json}}\n"
        "models:\n  m: {registry: r, deployer: d, runbook: ns, target: {name: m}}\n"
    )
    (problem,) = check(config, tmp_path / "runbooks")
    assert (problem.file, problem.line, problem.field) == ("<config>", 1, "models.m.runbook")
    assert problem.reason.startswith("runbook 'ns' does not render for this model: ")
    assert problem.reason.endswith(
        "ns.yaml:6: steps[0].params.version: undefined variable: "
        "'dict object' has no attribute 'namespace'"
    )
