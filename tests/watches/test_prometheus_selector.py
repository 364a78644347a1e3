"""A real Prometheus answers one grouped query naming a full chunk of models."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from bot.config.watch import WatchConfig
from bot.watches.queries import MAX_NAMES_IN_SELECTOR
from bot.watches.reader import MODELS_PER_QUERY, read_chunks
from bot.watches.targets import WatchTarget
from integrations.metrics.base import Series
from integrations.metrics.prometheus import PrometheusSource
from tests.support.prometheus import (
    Prometheus,
    ServedVersion,
    prometheus_missing_reason,
    running_prometheus,
)
from tests.support.services import unavailable

pytestmark = pytest.mark.prometheus

NOW = time.time()
DEPLOY = NOW - 10 * 60
# Dots and dashes as real model names have them: dots are escaped in the regex.
NAMES = [f"team-{i % 7}.fraud-detector-{i:04d}" for i in range(MAX_NAMES_IN_SELECTOR)]


@dataclass
class RecordingSource:
    """Forwards to Prometheus and keeps the query texts."""

    inner: PrometheusSource
    queries: list[str] = field(default_factory=list)

    def query(self, promql: str, *, at: datetime | None = None) -> list[Series]:
        """Unused by watches."""
        raise NotImplementedError

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]:
        """Forward, remembering the query."""
        self.queries.append(promql)
        return self.inner.query_range(promql, start=start, end=end, step_seconds=step_seconds)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    reason = prometheus_missing_reason()
    if reason:
        unavailable(reason)
    served = [ServedVersion(name, "1", DEPLOY - 900, DEPLOY) for name in NAMES] + [
        ServedVersion(name, "2", DEPLOY, NOW) for name in NAMES
    ]
    # An unwatched model: a name selector keeps it out of the answer.
    served.append(ServedVersion("unwatched", "1", DEPLOY - 900, NOW))
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), served) as server:
        yield server


def test_a_full_chunk_is_one_query_per_template_selecting_every_name(
    prometheus: Prometheus,
) -> None:
    assert MODELS_PER_QUERY == MAX_NAMES_IN_SELECTOR
    watch = WatchConfig(step=timedelta(minutes=1), baseline_window=timedelta(minutes=10))
    deployed_at = datetime.fromtimestamp(DEPLOY, UTC)
    targets = [WatchTarget(name, watch, "2", deployed_at, "1") for name in NAMES]
    source = RecordingSource(PrometheusSource(prometheus.url))

    [reading] = read_chunks(source, targets, now=datetime.fromtimestamp(NOW, UTC))

    assert reading.error is None
    assert len(source.queries) == 2 and all('model=~"team-' in q for q in source.queries)
    assert set(reading.samples) == set(NAMES)
    assert all(len(samples.candidate) >= 9 for samples in reading.samples.values())
    assert all(
        any(samples.candidate.column("error_rate:denominator"))
        and any(samples.baseline.column("error_rate:denominator"))
        for samples in reading.samples.values()
    )
