"""The command line: every command has help, every failure is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.incidents import service as incidents
from bot.store import migrate, session_scope
from bot.store.db import make_engine
from tests.support.processes import rollbot_env, run_rollbot


def _env(tmp_path: Path, config: str = "version: 1\n") -> dict[str, str]:
    path = tmp_path / "rollbot.yaml"
    path.write_text(config)
    return rollbot_env(f"sqlite:///{tmp_path / 'r.db'}", path)


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run_rollbot(["--help"], _env(tmp_path))
    assert result.returncode == 0
    for command in ("web", "worker", "db", "audit"):
        assert f"  {command} " in result.stdout


def test_an_unknown_command_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_rollbot(["deploy-everything"], _env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "rollbot: error: No such command 'deploy-everything'. (see 'rollbot --help')"
    ]


def test_a_bad_option_names_the_command(tmp_path: Path) -> None:
    result = run_rollbot(["web", "--prot", "80"], _env(tmp_path))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("rollbot web: error: No such option: --prot")


def test_a_configuration_error_stops_the_process_before_it_starts(tmp_path: Path) -> None:
    result = run_rollbot(["worker"], _env(tmp_path, "version: 1\nslak: {}\n"))
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "rollbot.yaml:2: slak: unknown field (check the spelling)"
    )
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("command", [["web", "--port", "1"], ["worker"]])
def test_a_runbooks_dir_that_is_not_there_stops_the_process(
    tmp_path: Path, command: list[str]
) -> None:
    env = _env(tmp_path, "version: 1\nrunbooks_dir: runbookz\n")
    result = run_rollbot(command, env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "rollbot: rollbot.yaml:2: runbooks_dir: runbooks folder 'runbookz' not found "
        "(looked for runbookz)"
    ]
    assert not (tmp_path / "r.db").exists()


def test_db_upgrade_reports_the_revision(tmp_path: Path) -> None:
    result = run_rollbot(["db", "upgrade"], _env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"database at {migrate.head_revision()}"


def test_half_a_slack_configuration_stops_the_web_process(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "SLACK_BOT_TOKEN": "xoxb-test"}
    result = run_rollbot(["web", "--port", "1"], env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "rollbot: SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not: HTTP mode needs "
        "both (or set SLACK_APP_TOKEN for Socket Mode)"
    ]


@pytest.mark.parametrize(
    ("models", "subject"),
    [(["fraud"], "model fraud has"), (["fraud", "churn"], "models churn, fraud have")],
)
def test_a_watch_without_a_metrics_source_stops_the_worker(
    tmp_path: Path, models: list[str], subject: str
) -> None:
    config = (
        "version: 1\n"
        "registries: {local: {kind: local, path: r.json}}\n"
        "deployers: {local: {kind: local, path: d.json}}\n"
        "models:\n"
    )
    for name in models:
        config += f"  {name}:\n    registry: local\n    deployer: local\n    watch: {{}}\n"
        config += f"    target: {{name: {name}}}\n"
    result = run_rollbot(["worker"], _env(tmp_path, config))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"rollbot: {subject} a watch but no metrics source: set metrics.url or PROMETHEUS_URL"
    ]


def test_a_database_without_tables_is_one_line_saying_how_to_fix_it(tmp_path: Path) -> None:
    result = run_rollbot(["audit", "verify"], _env(tmp_path))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("rollbot: the database lacks Rollbot's tables (no such table: ")
    assert line.endswith("): run `rollbot db upgrade`")


def test_a_missing_output_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert run_rollbot(["db", "upgrade"], env).returncode == 0
    engine = make_engine(env["DATABASE_URL"])
    with session_scope(engine) as session:
        incidents.open_or_join(session, model="fraud", title="t", actor="UALICE", source="cli")
    engine.dispose()
    for format in ("html", "md"):
        out = tmp_path / "nowhere" / f"pm.{format}"

        result = run_rollbot(["postmortem", "1", "--format", format, "--out", str(out)], env)

        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"rollbot: {out}: No such file or directory"
        ], format


def test_a_bad_environment_value_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    for name, value, message in (
        ("PORT", "abc", "rollbot: environment: PORT: Input should be a valid integer"),
        ("DATABASE_URL", "garbage", "rollbot: DATABASE_URL: Could not parse SQLAlchemy URL"),
    ):
        result = run_rollbot(["worker"], {**_env(tmp_path), name: value})

        assert result.returncode == 1
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(message)


def test_a_metrics_port_in_use_stops_the_worker_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_rollbot(["worker", "--metrics-port", str(port)], _env(tmp_path))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"rollbot: --metrics-port {port}: Address already in use"
    ]


def test_the_db_commands_name_a_bad_database_url_in_one_line(tmp_path: Path) -> None:
    for command in (["db", "upgrade"], ["db", "downgrade", "base"], ["db", "current"]):
        result = run_rollbot(command, {**_env(tmp_path), "DATABASE_URL": "garbage"})

        assert result.returncode == 1, command
        assert result.stderr.strip().splitlines() == [
            "rollbot: DATABASE_URL: Could not parse SQLAlchemy URL from given URL string"
        ], command


def test_a_database_rollbot_does_not_support_is_one_line_naming_those_it_does(
    tmp_path: Path,
) -> None:
    for command in (["db", "upgrade"], ["worker"], ["audit", "verify"]):
        result = run_rollbot(command, {**_env(tmp_path), "DATABASE_URL": "mysql://x/y"})

        assert result.returncode == 1, command
        assert result.stderr.strip().splitlines() == [
            "rollbot: DATABASE_URL: mysql is not supported: Rollbot runs on SQLite "
            "(sqlite:///PATH) and PostgreSQL (postgresql://USER:PASSWORD@HOST/NAME)"
        ], command


def test_every_command_names_a_bad_environment_variable_in_one_line(tmp_path: Path) -> None:
    for command in (["db", "upgrade"], ["audit", "verify"], ["runbooks", "check"]):
        result = run_rollbot(command, {**_env(tmp_path), "PORT": "abc"})

        assert result.returncode == 1, command
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("rollbot: environment: PORT: Input should be a valid integer")


def test_a_sqlite_file_in_a_missing_directory_is_one_line_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "x.db"
    for command in (["db", "upgrade"], ["audit", "verify"], ["worker"]):
        result = run_rollbot(command, {**_env(tmp_path), "DATABASE_URL": f"sqlite:///{path}"})

        assert result.returncode == 1, command
        assert result.stderr.strip().splitlines() == [
            f"rollbot: DATABASE_URL: {path}: directory {path.parent} does not exist"
        ], command

    result = run_rollbot(
        ["db", "upgrade"], {**_env(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}"}
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"rollbot: DATABASE_URL: {tmp_path}: is a directory, not a database file"
    ]


def test_an_unknown_revision_is_one_line_listing_the_revisions(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert run_rollbot(["db", "upgrade"], env).returncode == 0
    revisions = ", ".join(["base", *migrate.revisions()[:-1], f"{migrate.head_revision()} (head)"])
    for command, revision in (("upgrade", "9999"), ("downgrade", "nonsense")):
        result = run_rollbot(["db", command, revision], env)

        assert result.returncode == 1, command
        assert result.stderr.strip().splitlines() == [
            f"rollbot: db {command}: no revision {revision!r}; the revisions are {revisions}"
        ]
    assert run_rollbot(["db", "current"], env).stdout.startswith(
        f"current: {migrate.head_revision()}\n"
    )


def test_a_downgrade_to_a_later_revision_is_one_line(tmp_path: Path) -> None:
    env = _env(tmp_path)
    first = migrate.revisions()[0]
    assert run_rollbot(["db", "upgrade", first], env).returncode == 0

    result = run_rollbot(["db", "downgrade", migrate.head_revision() or ""], env)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"rollbot: db downgrade: Destination {migrate.head_revision()} is not a valid "
        "downgrade target from current head(s)"
    ]


def test_a_port_out_of_range_is_one_line_naming_the_option(tmp_path: Path) -> None:
    for command, option in (("worker", "--metrics-port"), ("web", "--port")):
        for port, rule in (
            ("99999", "less than or equal to 65535"),
            ("0", "greater than or equal to 1"),
        ):
            result = run_rollbot([command, option, port], _env(tmp_path))

            assert result.returncode == 2, (command, port)
            assert result.stderr.strip().splitlines() == [
                f"rollbot {command}: error: Invalid value for '{option}': Input should be {rule} "
                f"(see 'rollbot {command} --help')"
            ], (command, port)
    # The same rule as the PORT variable's.
    result = run_rollbot(["web"], {**_env(tmp_path), "PORT": "99999"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "rollbot: environment: PORT: Input should be less than or equal to 65535"
    ]


def test_a_web_port_in_use_stops_the_web_process_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        given = run_rollbot(["web", "--host", "127.0.0.1", "--port", str(port)], _env(tmp_path))
        from_environment = run_rollbot(
            ["web", "--host", "127.0.0.1"], {**_env(tmp_path), "PORT": str(port)}
        )

    assert given.returncode == 1
    assert given.stderr.strip().splitlines() == [f"rollbot: --port {port}: Address already in use"]
    assert from_environment.returncode == 1
    assert from_environment.stderr.strip().splitlines() == [
        f"rollbot: PORT {port}: Address already in use"
    ]

    # 192.0.2.1 is reserved for documentation: no machine has it.
    elsewhere = run_rollbot(["web", "--host", "192.0.2.1"], _env(tmp_path))
    assert elsewhere.returncode == 1
    assert elsewhere.stderr.strip().splitlines() == [
        "rollbot: --host 192.0.2.1: Cannot assign requested address"
    ]
