"""The metrics source protocol the domain depends on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Series:
    """One labelled time series: ``samples`` are (unix seconds, value) pairs in time order."""

    labels: Mapping[str, str]
    samples: list[tuple[float, float]] = field(default_factory=list)


@runtime_checkable
class MetricsSource(Protocol):
    """Run PromQL against Prometheus or a compatible store."""

    def query(self, promql: str, *, at: datetime | None = None) -> list[Series]:
        """An instant query: one sample per series."""
        ...

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]:
        """A range query."""
        ...
