"""``rollbot runbooks check`` and ``rollbot plan`` as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.runbooks.conftest import REPO
from tests.support.processes import rollbot_env, run_rollbot


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of examples/ with the shipped runbooks, so state files land in tmp_path."""
    shutil.copytree(
        REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("state")
    )
    shutil.copytree(REPO / "runbooks", tmp_path / "runbooks")
    return tmp_path / "examples" / "local.yaml"


def _env(tmp_path: Path, config: Path) -> dict[str, str]:
    return rollbot_env(f"sqlite:///{tmp_path / 'fresh.db'}", config)


def test_check_passes_on_the_local_example(tmp_path: Path, example: Path) -> None:
    result = run_rollbot(["runbooks", "check"], _env(tmp_path, example))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok: 3 runbooks, 3 models"
    assert not (example.parent / "state").exists()  # checking changes nothing


def test_check_prints_every_problem_and_exits_1(tmp_path: Path, example: Path) -> None:
    staged = tmp_path / "runbooks" / "staged-rollback.yaml"
    staged.write_text(staged.read_text().replace("percent: 25}", "percent: 250}"))
    config = example.read_text().replace("runbook: bundle-rollback", "runbook: bundle")
    config = config.replace("target: {name: recommender}", "target: {}")
    example.write_text(config)
    result = run_rollbot(["runbooks", "check"], _env(tmp_path, example), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "examples/local.yaml:51: models.recommender.target: target is missing 'name'",
        "examples/local.yaml:63: models.churn-model.runbook: unknown runbook 'bundle' "
        "(known: bundle-rollback, immediate-rollback, staged-rollback)",
        "runbooks/staged-rollback.yaml:41: steps[1].params.percent: "
        "Input should be less than or equal to 100",
    ]


def test_check_of_a_folder_checks_every_runbook_in_it(tmp_path: Path, example: Path) -> None:
    env = _env(tmp_path, example)
    passed = run_rollbot(["runbooks", "check", "runbooks/"], env, cwd=tmp_path)
    staged = tmp_path / "runbooks" / "staged-rollback.yaml"
    staged.write_text(staged.read_text().replace("percent: 25}", "percent: 250}"))
    failed = run_rollbot(["runbooks", "check", "runbooks/"], env, cwd=tmp_path)

    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.strip() == "ok: 3 runbooks, 3 models"
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        "runbooks/staged-rollback.yaml:41: steps[1].params.percent: "
        "Input should be less than or equal to 100"
    ]


def test_check_of_a_missing_file_names_it_without_a_line(tmp_path: Path, example: Path) -> None:
    result = run_rollbot(
        ["runbooks", "check", "runbooks/nope.yaml"], _env(tmp_path, example), cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "runbooks/nope.yaml: (file): cannot read: No such file or directory"
    ]


def test_check_reports_a_when_that_does_not_render_as_plan_would(
    tmp_path: Path, example: Path
) -> None:
    immediate = tmp_path / "runbooks" / "immediate-rollback.yaml"
    text = immediate.read_text().replace(
        '"{{ params.verify }}"', '"{{ params.verify and model == "'
    )
    immediate.write_text(text)
    env = _env(tmp_path, example)
    problem = (
        "runbooks/immediate-rollback.yaml:83: steps[5].when: "
        "template syntax error: unexpected 'end of template'"
    )

    checked = run_rollbot(["runbooks", "check"], env, cwd=tmp_path)
    planned = run_rollbot(["plan", "fraud-detector"], env, cwd=tmp_path)

    assert checked.returncode == 1
    assert checked.stderr.strip().splitlines() == [problem]
    assert planned.returncode == 1
    assert planned.stderr.strip().splitlines()[-1] == f"rollbot: {problem} (model 'fraud-detector')"


def test_check_refuses_a_staged_runbook_on_a_deployer_that_cannot_split(tmp_path: Path) -> None:
    config = tmp_path / "rollbot.yaml"
    config.write_text(
        "version: 1\n"
        + "registries: {local: {kind: local, path: r.json}}\n"
        + "deployers:\n  k8s: {kind: kubernetes, api_url: 'https://127.0.0.1:6443'}\n"
        + "models:\n  m:\n    registry: local\n    deployer: k8s\n    runbook: staged-rollback\n"
        + "    target: {namespace: ml, name: m, container: c, env_var: MODEL_VERSION}\n"
    )
    result = run_rollbot(["runbooks", "check"], _env(tmp_path, config), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "rollbot.yaml:9: models.m.runbook: runbook 'staged-rollback' step 'shift-25' sends 25% "
        "of traffic, but deployer 'k8s' (kubernetes) cannot split traffic",
        "rollbot.yaml:9: models.m.runbook: runbook 'staged-rollback' step 'shift-50' sends 50% "
        "of traffic, but deployer 'k8s' (kubernetes) cannot split traffic",
    ]


@pytest.mark.parametrize("args", [["runbooks", "check"], ["plan", "fraud-detector"]])
def test_a_runbooks_dir_that_is_not_there_is_an_error_naming_it(
    tmp_path: Path, example: Path, args: list[str]
) -> None:
    example.write_text(example.read_text().replace("runbooks_dir: ../", "runbooks_dir: ../typo-"))
    result = run_rollbot(args, _env(tmp_path, example), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == (
        "rollbot: examples/local.yaml:10: runbooks_dir: runbooks folder '../typo-runbooks' "
        "not found (looked for typo-runbooks)"
    )


def test_check_refuses_a_watch_without_a_metrics_source_as_the_worker_would(
    tmp_path: Path,
) -> None:
    config = tmp_path / "rollbot.yaml"
    config.write_text(
        "version: 1\n"
        + "registries: {local: {kind: local, path: r.json}}\n"
        + "deployers: {local: {kind: local, path: d.json}}\n"
        + "models:\n  fraud-detector:\n    registry: local\n    deployer: local\n"
        + "    target: {name: fraud-detector}\n    watch: {}\n"
    )
    env = _env(tmp_path, config)

    unsourced = run_rollbot(["runbooks", "check"], env, cwd=tmp_path)
    sourced = run_rollbot(
        ["runbooks", "check"], {**env, "PROMETHEUS_URL": "http://127.0.0.1:9"}, cwd=tmp_path
    )

    assert unsourced.returncode == 1
    assert unsourced.stderr.strip().splitlines() == [
        "rollbot.yaml:9: models.fraud-detector.watch: model fraud-detector has a watch but "
        "no metrics source: set metrics.url or PROMETHEUS_URL"
    ]
    assert sourced.returncode == 0, sourced.stderr


def test_plan_on_a_fresh_database_shows_from_to_steps_and_hash(
    tmp_path: Path, example: Path
) -> None:
    env = _env(tmp_path, example)
    result = run_rollbot(["plan", "fraud-detector"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "fraud-detector: 5 → 4"
    assert lines[1] == "runbook: immediate-rollback"
    assert "  2. shift-traffic: deployer.shift_traffic" in result.stdout
    assert lines[-1].startswith("plan hash: ")
    again = run_rollbot(["plan", "fraud-detector", "--json"], env, cwd=tmp_path)
    plan = json.loads(again.stdout)
    assert (plan["from_version"], plan["to_version"]) == ("5", "4")
    assert lines[-1] == f"plan hash: {plan['plan_hash']}"
    state = json.loads((example.parent / "state" / "deployments.json").read_text())
    assert state["targets"]["fraud-detector"]["version"] == "5"  # nothing was shifted


def test_plan_with_a_runbook_and_version_given(tmp_path: Path, example: Path) -> None:
    result = run_rollbot(
        ["plan", "fraud-detector", "--to", "2", "--runbook", "staged-rollback"],
        _env(tmp_path, example),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["fraud-detector: 5 → 2", "runbook: staged-rollback"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["plan", "nope"],
            "rollbot: unknown model 'nope' (known: churn-model, fraud-detector, recommender)",
        ),
        (
            ["plan", "fraud-detector", "--to", "9"],
            "rollbot: version '9' of 'fraud-detector' does not exist in the local registry",
        ),
        (
            ["plan", "fraud-detector", "--runbook", "yolo"],
            "rollbot: unknown runbook 'yolo' (known: bundle-rollback, immediate-rollback, "
            "staged-rollback)",
        ),
    ],
)
def test_plan_failures_are_one_line_and_exit_1(
    tmp_path: Path, example: Path, args: list[str], message: str
) -> None:
    result = run_rollbot(args, _env(tmp_path, example))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == message


def test_plan_says_so_plainly_when_nothing_is_safe(tmp_path: Path, example: Path) -> None:
    config = example.read_text().replace("min_serving: 1h", "min_serving: 365d")
    example.write_text(config)
    result = run_rollbot(["plan", "fraud-detector"], _env(tmp_path, example))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "rollbot: no safe version of 'fraud-detector' to roll back to: 5: is serving now; "
        "4: served only 14d of the 365d required; 3: served only 14d of the 365d required, "
        "has tag validated=false, needs validated=true; 2: had an incident while serving; "
        "1: served only 27d21h30m of the 365d required, lacks tag validated=true"
    )


def test_web_and_worker_seed_the_demo_history_once_and_proposals_find_its_safe_version(
    tmp_path: Path, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlmodel import select

    from bot.cli.context import import_demo_histories, load_runtime
    from bot.proposals import default_tools, propose_with
    from bot.store import migrate, session_scope
    from bot.store.models import DeploymentRecord

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("ROLLBOT_CONFIG", str(example))
    migrate.upgrade(url)
    runtime = load_runtime()

    import_demo_histories(runtime)  # the web process
    import_demo_histories(runtime)  # the worker, starting next
    with session_scope(runtime.engine) as session:
        records = session.exec(
            select(DeploymentRecord).where(DeploymentRecord.model == "fraud-detector")
        ).all()
        proposal = propose_with(
            session,
            model="fraud-detector",
            to_version=None,
            requested_by="U-alice",
            via="slack",
            reason=None,
            tools=default_tools(runtime.config, runtime.settings),
        )

    assert len(records) == len({(r.version, r.started_at) for r in records}) > 1
    assert (proposal.from_version, proposal.to_version) == ("5", "4")
