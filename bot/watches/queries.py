"""Grouped PromQL: one query per metric template for every watched model at once.

Evaluating many models must not cost one query per model per metric, so column requests
sharing a template are merged into ``<agg> by (model, version) (<template>)`` and the
answer is split per model afterwards.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config.durations import format_duration
from integrations.errors import InvalidRequest
from integrations.metrics.base import MetricsSource, Series

# Up to this many models are selected by a name regex, so unwatched models cost Prometheus
# nothing. Prometheus 2.42 answers 1,000 names (a 33 kB query) in about twice the time of
# selecting every series with the label (tests/watches/test_prometheus_selector.py); beyond
# it, select by label and drop the unwatched ones while splitting.
MAX_NAMES_IN_SELECTOR = 1_000
_REGEX_SPECIALS = set("\\.^$*+?()[]{}|")
_PLACEHOLDER = re.compile(r"\$selector|\$step")


@dataclass(frozen=True)
class ColumnRequest:
    """One model's need for one sampled column, read through a PromQL template."""

    model: str
    metrics_name: str
    column: str
    template: str
    aggregation: str
    model_label: str
    version_label: str
    step_seconds: float


@dataclass(frozen=True)
class GroupKey:
    """What column requests must share to be answered by one query."""

    template: str
    aggregation: str
    model_label: str
    version_label: str
    step_seconds: float


@dataclass
class GroupedQuery:
    """One PromQL query and the (model, column) pairs each label value feeds."""

    key: GroupKey
    members: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def promql(self) -> str:
        """The query text for every member at once."""
        key = self.key
        names = sorted(self.members)
        if len(names) <= MAX_NAMES_IN_SELECTOR:
            alternatives = "|".join(_regex_literal(name) for name in names)
            selector = f'{key.model_label}=~"{alternatives}"'
        else:
            selector = f'{key.model_label}!=""'
        values = {"$selector": selector, "$step": _promql_duration(key.step_seconds)}
        # In one pass, so a model name holding "$step" is never substituted in turn.
        inner = _PLACEHOLDER.sub(lambda match: values[match.group(0)], key.template)
        return f"{key.aggregation} by ({key.model_label}, {key.version_label}) ({inner})"


def group_requests(requests: Iterable[ColumnRequest]) -> list[GroupedQuery]:
    """Merge column requests into as few queries as their templates allow."""
    groups: dict[GroupKey, GroupedQuery] = {}
    for request in requests:
        key = GroupKey(
            template=request.template,
            aggregation=request.aggregation,
            model_label=request.model_label,
            version_label=request.version_label,
            step_seconds=request.step_seconds,
        )
        group = groups.setdefault(key, GroupedQuery(key=key))
        group.members.setdefault(request.metrics_name, []).append((request.model, request.column))
    return list(groups.values())


# Per model, column and version: the samples as {unix seconds: value}.
ColumnSamples = dict[tuple[str, str, str], dict[float, float]]


def run_grouped(
    source: MetricsSource,
    queries: Iterable[GroupedQuery],
    *,
    start: datetime,
    end: datetime,
    refused: dict[str, InvalidRequest] | None = None,
) -> ColumnSamples:
    """Run each grouped query once over [start, end] and split its series per model.

    A query Prometheus refuses (a template with a syntax error, a model name it cannot
    parse) costs only the models it reads: they go into ``refused`` with the reason, and the
    other queries still run. Any other error (Prometheus down, a timeout) raises.
    """
    samples: ColumnSamples = defaultdict(dict)
    for query in queries:
        try:
            answer = source.query_range(
                query.promql(), start=start, end=end, step_seconds=query.key.step_seconds
            )
        except InvalidRequest as exc:
            if refused is None:
                raise
            for members in query.members.values():
                refused.update((model, exc) for model, _column in members)
            continue
        _split(query, answer, samples)
    return samples


def _split(query: GroupedQuery, answer: list[Series], into: ColumnSamples) -> None:
    key = query.key
    for series in answer:
        name = series.labels.get(key.model_label)
        version = series.labels.get(key.version_label)
        if name is None or version is None:
            continue
        for model, column in query.members.get(name, ()):
            target = into[(model, column, version)]
            for moment, value in series.samples:
                target[float(moment)] = float(value)


def _regex_literal(name: str) -> str:
    """A model name as a literal inside a PromQL double-quoted regex."""
    out = []
    for char in name:
        if char == "\\":
            # A backslash escaped for the regex (two), each escaped for the string (four).
            out.append("\\" * 4)
        elif char in _REGEX_SPECIALS:
            # One backslash for the regex, doubled because PromQL strings unescape once.
            out.append("\\\\" + char)
        elif char == '"':
            out.append('\\"')
        else:
            out.append(char)
    return "".join(out)


def _promql_duration(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


def versions_by_model(samples: Mapping[tuple[str, str, str], object]) -> dict[str, set[str]]:
    """The versions the answer holds any samples for, by model, in one pass."""
    seen: dict[str, set[str]] = defaultdict(set)
    for model, _column, version in samples:
        seen[model].add(version)
    return seen
