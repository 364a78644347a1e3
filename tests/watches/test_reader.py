"""Prometheus answers into per-step samples, and grouping that keeps query counts flat."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.config.watch import WatchConfig
from bot.watches.queries import MAX_NAMES_IN_SELECTOR, group_requests
from bot.watches.reader import MODELS_PER_QUERY, column_requests, read_chunks, read_samples
from bot.watches.targets import WatchTarget
from integrations.errors import IntegrationTimeout
from tests.watches.fakes import FakePrometheus, Serving

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DEPLOY = NOW - timedelta(minutes=30)


def target(model: str, watch: WatchConfig | None = None) -> WatchTarget:
    return WatchTarget(
        model=model,
        # One-minute steps keep the arithmetic below readable.
        watch=watch or WatchConfig(step=timedelta(minutes=1)),
        candidate_version="2",
        deployed_at=DEPLOY,
        baseline_version="1",
    )


def servings(model: str, **candidate: float) -> list[Serving]:
    deploy = DEPLOY.timestamp()
    return [
        Serving(model, "1", deploy - 7200, deploy),
        Serving(model, "2", deploy, NOW.timestamp() + 3600, **candidate),
    ]


@pytest.mark.parametrize("models", [1, 10, MODELS_PER_QUERY])
def test_query_count_does_not_grow_with_models(models: int) -> None:
    watch = WatchConfig.model_validate({"metrics": ["error_rate", "latency_p99_seconds"]})
    targets = [target(f"m{i}", watch) for i in range(models)]
    # Little traffic keeps the fake's per-request sampling quick for a full chunk.
    quiet = [replace(s, rps=0.5) for i in range(models) for s in servings(f"m{i}")]
    source = FakePrometheus(quiet)

    samples = read_samples(source, targets, now=NOW)

    assert len(source.queries) == 3  # errors, requests, latency: once each for every model
    assert set(samples) == {f"m{i}" for i in range(models)}
    assert all(
        q.startswith(("sum by (model, version)", "max by (model, version)")) for q in source.queries
    )


def test_a_large_fleet_is_read_in_chunks_each_selected_by_name() -> None:
    models = 2 * 10 + 1
    targets = [target(f"m{i}") for i in range(models)]
    source = FakePrometheus([s for i in range(models) for s in servings(f"m{i}")])

    readings = list(read_chunks(source, targets, now=NOW, models_per_query=10))

    assert [len(r.targets) for r in readings] == [10, 10, 1]
    assert len(source.queries) == 2 * 3  # errors and requests, per chunk of models
    assert all('model=~"' in query for query in source.queries)
    assert {m for r in readings for m in r.samples} == {f"m{i}" for i in range(models)}


def test_chunks_hold_as_many_models_as_a_selector_names() -> None:
    assert MODELS_PER_QUERY == MAX_NAMES_IN_SELECTOR == 1_000


def test_few_models_are_selected_by_name_and_many_by_label() -> None:
    few = group_requests(r for m in ("fraud.v2", "churn") for r in column_requests(target(m)))
    many = group_requests(
        r for i in range(MAX_NAMES_IN_SELECTOR + 1) for r in column_requests(target(f"m{i}"))
    )

    assert 'model=~"churn|fraud\\\\.v2"' in few[0].promql()
    assert 'increase(model_errors_total{model=~"churn|fraud\\\\.v2"}[1m])' in few[0].promql()
    assert 'model!=""' in many[0].promql()


def test_different_templates_are_separate_queries() -> None:
    custom = WatchConfig.model_validate(
        {
            "metrics": {
                "error_rate": {
                    "numerator": "increase(http_5xx_total{$selector}[$step])",
                    "denominator": "increase(http_total{$selector}[$step])",
                }
            }
        }
    )
    requests = [*column_requests(target("a")), *column_requests(target("b", custom))]
    assert len(group_requests(requests)) == 4


def test_candidate_starts_at_deploy_and_baseline_ends_before_it() -> None:
    samples = read_samples(FakePrometheus(servings("fraud")), [target("fraud")], now=NOW)["fraud"]

    assert samples.candidate.start == DEPLOY.timestamp()
    assert len(samples.candidate) == 30  # one sample per minute since the deploy
    assert samples.baseline.start + len(samples.baseline) * 60 == DEPLOY.timestamp()
    assert len(samples.baseline) == 60  # the default one-hour baseline window
    assert samples.baseline_mode == "before_deploy"
    assert samples.candidate.column("error_rate:denominator")[0] == 300.0


def test_requests_without_an_errors_series_count_as_zero_errors() -> None:
    source = FakePrometheus(servings("fraud"), absent=("model_errors_total",))
    samples = read_samples(source, [target("fraud")], now=NOW)["fraud"]

    assert set(samples.candidate.column("error_rate:numerator")) == {0.0}


def test_a_scrape_gap_is_missing_data_not_zero() -> None:
    deploy = DEPLOY.timestamp()
    gap = [
        Serving("fraud", "1", deploy - 7200, deploy),
        Serving("fraud", "2", deploy, deploy + 600),
        Serving("fraud", "2", deploy + 900, NOW.timestamp()),
    ]
    samples = read_samples(FakePrometheus(gap), [target("fraud")], now=NOW)["fraud"]

    numerators = samples.candidate.column("error_rate:numerator")
    assert numerators[10:15] == [None] * 5
    assert samples.candidate.column("error_rate:denominator")[10:15] == [None] * 5


def test_a_safe_version_still_serving_is_a_live_baseline() -> None:
    deploy = DEPLOY.timestamp()
    canary = [
        Serving("fraud", "1", deploy - 7200, NOW.timestamp(), error_rate=0.02),
        Serving("fraud", "2", deploy, NOW.timestamp()),
    ]
    samples = read_samples(FakePrometheus(canary), [target("fraud")], now=NOW)["fraud"]

    assert samples.baseline_mode == "live"
    assert len(samples.baseline) == len(samples.candidate) == 30
    # Placed just before the candidate, where the detector reads its baseline.
    assert samples.baseline.start + 30 * 60 == samples.candidate.start


def test_models_without_a_baseline_version_are_not_queried() -> None:
    lonely = WatchTarget("fraud", WatchConfig(), "1", DEPLOY, None)
    source = FakePrometheus(servings("fraud"))

    assert read_samples(source, [lonely], now=NOW) == {}
    assert source.queries == []


def old_target(model: str, age: timedelta, **watch: object) -> WatchTarget:
    return WatchTarget(
        model=model,
        watch=WatchConfig.model_validate({"step": "1m", **watch}),
        candidate_version="2",
        deployed_at=NOW - age,
        baseline_version="1",
    )


def old_servings(model: str, age: timedelta) -> list[Serving]:
    deploy = (NOW - age).timestamp()
    return [
        Serving(model, "1", deploy - 7200, deploy),
        Serving(model, "2", deploy, NOW.timestamp() + 3600),
    ]


def test_an_old_deploy_reads_its_lookback_and_its_baseline_as_separate_ranges() -> None:
    age = timedelta(days=30)
    source = FakePrometheus(old_servings("fraud", age))  # refuses > 11,000 points, as Prometheus

    samples = read_samples(source, [old_target("fraud", age)], now=NOW)["fraud"]

    assert samples.candidate.start == (NOW - timedelta(hours=6)).timestamp()
    assert len(samples.candidate) == 360  # the default 6h lookback, not 30 days
    assert samples.baseline.start + len(samples.baseline) * 60 == (NOW - age).timestamp()
    assert len(samples.baseline) == 60 and samples.baseline_mode == "before_deploy"
    assert None not in samples.baseline.column("error_rate:denominator")
    assert len(source.queries) == 4  # a baseline and a candidate range per template
    assert sorted(set(source.ranges)) == [
        ((NOW - age).timestamp() - 3600 + 60, (NOW - age).timestamp()),
        ((NOW - timedelta(hours=6)).timestamp() + 60, NOW.timestamp()),
    ]


def test_a_lookback_reaching_past_the_deploy_reads_one_range() -> None:
    age = timedelta(hours=2)
    source = FakePrometheus(old_servings("fraud", age))

    samples = read_samples(source, [old_target("fraud", age)], now=NOW)["fraud"]

    assert samples.candidate.start == (NOW - age).timestamp() and len(samples.candidate) == 120
    assert len(source.queries) == 2
    assert set(source.ranges) == {((NOW - age).timestamp() - 3600 + 60, NOW.timestamp())}


def test_a_step_too_fine_for_the_lookback_is_capped_to_what_prometheus_serves() -> None:
    age = timedelta(days=30)
    watch = {"step": "1s", "lookback": "12h", "baseline_window": "4h"}
    source = FakePrometheus(old_servings("fraud", age), absent=("model_errors_total",))

    samples = read_samples(source, [old_target("fraud", age, **watch)], now=NOW)["fraud"]

    assert len(samples.candidate) == len(samples.baseline) == 11_000


def test_deploys_days_apart_are_read_in_separate_chunks_within_the_limit() -> None:
    ages = {"old": timedelta(days=30), "older": timedelta(days=31), "new": timedelta(hours=1)}
    targets = [old_target(model, age) for model, age in ages.items()]
    source = FakePrometheus([s for model, age in ages.items() for s in old_servings(model, age)])

    readings = list(read_chunks(source, targets, now=NOW))

    assert sorted(sorted(t.model for t in r.targets) for r in readings) == [
        ["new"],
        ["old", "older"],
    ]
    assert all(len(r.samples[t.model].candidate) > 0 for r in readings for t in r.targets)


def test_a_failing_chunk_is_reported_and_the_next_chunks_are_still_read() -> None:
    ages = {"old": timedelta(days=30), "new": timedelta(hours=1)}
    targets = [old_target(model, age) for model, age in ages.items()]
    source = FakePrometheus(
        [s for model, age in ages.items() for s in old_servings(model, age)],
        failing_models=frozenset({"old"}),
    )

    readings = {r.targets[0].model: r for r in read_chunks(source, targets, now=NOW)}

    assert readings["old"].samples == {} and "timed out" in str(readings["old"].error)
    assert readings["new"].error is None and set(readings["new"].samples) == {"new"}
    with pytest.raises(IntegrationTimeout):
        read_samples(source, targets, now=NOW)


def test_a_deploy_between_step_boundaries_still_reads_one_range() -> None:
    age = timedelta(minutes=40, seconds=25)
    source = FakePrometheus(old_servings("fraud", age))

    samples = read_samples(source, [old_target("fraud", age)], now=NOW)["fraud"]

    assert len(source.ranges) == 2 and len(set(source.ranges)) == 1
    # Only whole steps on either side: the straddled one belongs to neither version.
    assert len(samples.candidate) == 40 and len(samples.baseline) == 59
