"""The configuration file: valid files load, invalid ones name the file, line and field."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import load_config, parse_config, parse_duration
from bot.errors import ConfigError

VALID = """\
version: 1
registries:
  mlflow:
    kind: mlflow
    url: http://mlflow:5000
deployers:
  kserve:
    kind: kserve
    api_url: https://kubernetes.default.svc
approval_policies:
  two-of-ml:
    approvals: 2
    approver_groups: [S0ML]
    expires_after: 45m
models:
  fraud-detector:
    registry: mlflow
    deployer: kserve
    target: {namespace: ml, name: fraud}
    approval_policy: two-of-ml
"""


def test_a_valid_file_loads_with_parsed_durations(tmp_path: Path) -> None:
    path = tmp_path / "rollbot.yaml"
    path.write_text(VALID)
    config = load_config(path)
    assert config.models["fraud-detector"].target == {"namespace": "ml", "name": "fraud"}
    assert config.approval_policies["two-of-ml"].expires_after == timedelta(minutes=45)
    assert config.registries["mlflow"].options() == {"url": "http://mlflow:5000"}


def test_an_unknown_field_names_file_line_and_field() -> None:
    text = VALID.replace("    approvals: 2\n", "    approvals: 2\n    aprovers: [U1]\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="rollbot.yaml")
    assert str(caught.value) == (
        "rollbot.yaml:13: approval_policies.two-of-ml.aprovers: unknown field (check the spelling)"
    )


def test_a_wrong_type_names_the_line_of_the_value() -> None:
    text = VALID.replace("approvals: 2", "approvals: many")
    with pytest.raises(
        ConfigError, match=r"^rollbot.yaml:12: approval_policies.two-of-ml.approvals: "
    ):
        parse_config(text, source="rollbot.yaml")


def test_a_missing_required_field_is_reported() -> None:
    text = VALID.replace("    deployer: kserve\n", "")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="c.yaml")
    assert "c.yaml:16: models.fraud-detector.deployer: required field is missing" in str(
        caught.value
    )


def test_a_reference_to_nothing_names_what_exists() -> None:
    text = VALID.replace("deployer: kserve\n    target", "deployer: kserv\n    target")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="c.yaml")
    assert str(caught.value) == (
        "c.yaml:18: models.fraud-detector.deployer: unknown deployer 'kserv' (known: kserve)"
    )


def test_an_owner_given_as_a_handle_names_the_line_and_what_an_id_looks_like() -> None:
    text = VALID + '    owners: [S0FRAUDTEAM, "@fraud-oncall"]\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="rollbot.yaml")
    assert str(caught.value) == (
        "rollbot.yaml:21: models.fraud-detector.owners.1: '@fraud-oncall' is not a Slack user "
        "or user-group id (U or W for a user, S for a user group, then capital letters and "
        "digits, like U024BE7LH or S0FRAUDTEAM)"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "approver_groups: [S0ML]",
            "approver_groups: [U0LEAD]",
            "rollbot.yaml:13: approval_policies.two-of-ml.approver_groups.0: "
            "'U0LEAD' is not a Slack user-group id",
        ),
        (
            "approver_groups: [S0ML]",
            "approvers: [S0ML]",
            "rollbot.yaml:13: approval_policies.two-of-ml.approvers.0: "
            "'S0ML' is not a Slack user id",
        ),
        (
            "version: 1",
            "version: 1\nslack: {responders: [u0lead]}",
            "rollbot.yaml:2: slack.responders.0: 'u0lead' is not a Slack user or user-group id",
        ),
    ],
)
def test_every_slack_id_in_the_file_is_checked(old: str, new: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)} \\("):
        parse_config(VALID.replace(old, new), source="rollbot.yaml")


def test_slack_ids_of_users_enterprise_users_and_groups_load() -> None:
    text = VALID.replace("[S0ML]", "[S0ML, S012AB3CD]") + (
        "    owners: [U024BE7LH, W012A3CDE, S0FRAUDTEAM]\n"
        "slack: {responders: [S0ML0NCALL, U0LEAD]}\n"
    )
    config = parse_config(text, source="rollbot.yaml")
    assert config.models["fraud-detector"].owners == ["U024BE7LH", "W012A3CDE", "S0FRAUDTEAM"]
    assert config.slack.responders == ["S0ML0NCALL", "U0LEAD"]


def test_broken_yaml_gives_the_line() -> None:
    with pytest.raises(ConfigError, match=r"^c.yaml:3: invalid YAML"):
        parse_config("version: 1\nslack:\n  command: a: b\n", source="c.yaml")


def test_a_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"configuration file not found .*ROLLBOT_CONFIG"):
        load_config(tmp_path / "absent.yaml")


def test_an_empty_file_is_a_valid_empty_configuration() -> None:
    assert parse_config("", source="c.yaml").models == {}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("2d", 172800), (45, 45), ("250ms", 0.25)],
)
def test_durations_read_as_people_write_them(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    "text", ["5 minutes", "m5", "", "-3", True, -1, float("inf"), float("nan"), "99999999999d"]
)
def test_nonsense_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("watch", "message"),
    [
        (
            "{sustain: 20m, lookback: 21m}",
            "lookback (21m) must be at least twice the sustain time (20m)",
        ),
        ("{step: 1500ms}", "step must be a whole number of seconds"),
        ("{step: 0s}", "step must be a whole number of seconds, at least 1s"),
    ],
)
def test_watch_timing_that_could_never_decide_is_refused_with_its_place(
    watch: str, message: str
) -> None:
    text = VALID + f"    watch: {watch}\n"

    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="rollbot.yaml")

    assert str(caught.value).startswith(f"rollbot.yaml:21: models.fraud-detector.watch: {message}")


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            "  a: {registry: r, deployer: d, watch: {metrics_name: b}}\n"
            "  b: {registry: r, deployer: d}\n",
            "models.a.watch.metrics_name: 'b' is the name of another model",
        ),
        (
            "  a: {registry: r, deployer: d, watch: {metrics_name: m}}\n"
            "  b: {registry: r, deployer: d, watch: {metrics_name: m}}\n",
            "models.b.watch.metrics_name: 'm' is already the metrics name of a",
        ),
    ],
)
def test_a_metrics_name_belongs_to_one_model(models: str, message: str) -> None:
    text = (
        "registries: {r: {kind: local, path: r.json}}\n"
        "deployers: {d: {kind: local, path: d.json}}\n"
        f"models:\n{models}"
    )

    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(text, source="rollbot.yaml")


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (
            "{kind: gauge, query: 'avg(x{$selector}[$stp])'}",
            "unknown placeholder $stp (templates know $selector and $step)",
        ),
        ("{kind: gauge, query: 'sum(rate(x{$selector}[1m])', max_value: 1}", "'(' is never closed"),
        ("{kind: gauge, query: 'x + $selector', max_value: 1}", "$selector must stand inside"),
        (
            """{kind: gauge, query: 'x{$selector, a="b}', max_value: 1}""",
            'a string opened with " is never closed',
        ),
        (
            "{kind: gauge, query: 'x{$selector}]', max_value: 1}",
            "']' at character 13 closes nothing",
        ),
        (
            "{kind: gauge, query: 'x{$selector}', min_ratio_to_baseline: 0.5}",
            "min_ratio_to_baseline never acts on a gauge whose direction is higher_is_worse: "
            "use max_ratio_to_baseline or max_value, or set direction",
        ),
        (
            "{kind: gauge, query: 'x{$selector}', direction: lower_is_worse, max_value: 3}",
            "max_value never acts on a gauge whose direction is lower_is_worse",
        ),
        (
            "{numerator: 'a{$selector}', denominator: 'b{$selector}', min_value: 0.1}",
            "a ratio metric rolls back when its rate rises: min_value does not apply",
        ),
    ],
)
def test_a_watch_metric_that_could_never_work_is_refused_with_its_place(
    metric: str, message: str
) -> None:
    text = VALID + f"    watch: {{metrics: {{custom: {metric}}}}}\n"

    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="rollbot.yaml")

    assert str(caught.value).startswith("rollbot.yaml:21: models.fraud-detector.watch.metrics")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "query",
    [
        # "$1" is PromQL's own, in a string: only $selector and $step are Rollbot's.
        """'label_replace(m{$selector}, "version", "$1", "image", ".*:(.*)")'""",
        "|\n      # the model's p99 (max over replicas\n      max(m{$selector})\n",
        "'max by (model) (m{$selector, path=`C:\\`})'",
        "'max_over_time(m{$selector, code=~\"5[0-9]{2}\"}[30m:1m] offset 5m)'",
    ],
    ids=["dollar-one-in-a-string", "comment", "raw-string-backslash", "subquery-and-regex"],
)
def test_valid_promql_is_not_refused_by_the_template_check(query: str) -> None:
    metric = f"{{kind: gauge, max_value: 1, query: {query}}}"
    text = VALID + f"    watch:\n      metrics:\n        custom: {metric}\n"
    if query.startswith("|"):  # a block scalar needs the mapping in block style
        text = VALID + (
            "    watch:\n      metrics:\n        custom:\n          kind: gauge\n"
            "          max_value: 1\n          query: "
            + query.replace("\n      ", "\n            ")
        )

    watch = parse_config(text).models["fraud-detector"].watch

    assert watch is not None and "custom" in watch.metrics


def test_the_well_known_metrics_templates_pass_the_check() -> None:
    config = parse_config(VALID + "    watch: {metrics: [error_rate, latency_p99_seconds]}\n")
    watch = config.models["fraud-detector"].watch
    assert watch is not None and set(watch.metrics) == {"error_rate", "latency_p99_seconds"}


def test_an_endless_duration_is_refused_with_its_place() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(VALID + "    watch: {cooldown: .inf}\n", source="rollbot.yaml")

    assert str(caught.value) == (
        "rollbot.yaml:21: models.fraud-detector.watch.cooldown: "
        "a duration must be at most 3650 days, got inf"
    )


def test_a_misspelt_built_in_metric_says_which_exist() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(VALID + "    watch: {metrics: [eror_rate]}\n", source="rollbot.yaml")

    assert str(caught.value) == (
        "rollbot.yaml:21: models.fraud-detector.watch.metrics: unknown metric 'eror_rate': "
        "the built-in ones are error_rate, latency_p99_seconds, confidence, drift_score; a "
        "metric of your own needs numerator and denominator (a ratio) or kind: gauge and query"
    )
