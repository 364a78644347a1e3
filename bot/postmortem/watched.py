"""The model's watched metrics as the postmortem reads them: PromQL per version, boundaries.

During a canary the safe version serves beside the degraded one, so every count is read
for the degraded version alone (its ``version`` label); the safe version's counts give the
baseline when no watch evaluation recorded one (an incident opened by an alert or a person).
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import RollbotConfig
from bot.config.watch import MetricKind
from bot.postmortem.facts import EvidenceFact
from bot.postmortem.impact import ERROR_RATE, ERRORS, REQUESTS, Samples

BASELINE_ERRORS = "baseline errors"
BASELINE_REQUESTS = "baseline requests"
BASELINE_COUNTS = (BASELINE_ERRORS, BASELINE_REQUESTS)
CONFIGURED = "configured"


def watch_queries(
    config: RollbotConfig | None,
    model: str | None,
    *,
    degraded: str | None = None,
    safe: str | None = None,
) -> dict[str, str]:
    """PromQL (``$step`` left open) for the degraded version's metrics and the safe one's counts.

    Without a known degraded version the counts cover every version of the model.
    """
    watched = config.models.get(model) if config and model else None
    watch = watched.watch if watched else None
    if watch is None or model is None:
        return {}
    model_matcher = f'{watch.model_label}="{watch.metrics_name or model}"'

    def selector(version: str | None) -> str:
        if version is None:
            return model_matcher
        return f'{model_matcher},{watch.version_label}="{_quoted(version)}"'

    queries: dict[str, str] = {}
    for name, metric in watch.metrics.items():
        if metric.kind == MetricKind.RATIO and name == ERROR_RATE:
            numerator, denominator = metric.numerator or "", metric.denominator or ""
            queries[ERRORS] = f"sum({numerator.replace('$selector', selector(degraded))})"
            queries[REQUESTS] = f"sum({denominator.replace('$selector', selector(degraded))})"
            if safe is not None and degraded is not None and safe != degraded:
                queries[BASELINE_ERRORS] = f"sum({numerator.replace('$selector', selector(safe))})"
                queries[BASELINE_REQUESTS] = (
                    f"sum({denominator.replace('$selector', selector(safe))})"
                )
        elif metric.kind == MetricKind.GAUGE and metric.query:
            query = metric.query.replace("$selector", selector(degraded))
            queries[name] = f"{metric.aggregation}({query})"
    return queries


def configured_error_rate(
    config: RollbotConfig | None, model: str | None, columns: Mapping[str, Samples]
) -> EvidenceFact | None:
    """The error-rate boundary from the configuration, against the safe version's own rate."""
    watched = config.models.get(model) if config and model else None
    metric = watched.watch.metrics.get(ERROR_RATE) if watched and watched.watch else None
    if metric is None:
        return None
    errors = sum(value for _, value in columns.get(BASELINE_ERRORS, []))
    requests = sum(value for _, value in columns.get(BASELINE_REQUESTS, []))
    baseline = errors / requests if requests else None
    limits = [metric.max_value] if metric.max_value is not None else []
    if metric.max_ratio_to_baseline is not None and baseline is not None:
        limits.append(baseline * metric.max_ratio_to_baseline)
    if not limits:
        return None
    return EvidenceFact(
        metric=ERROR_RATE,
        label=metric.label or "error rate",
        state=CONFIGURED,
        summary="the configured rollback boundary",
        baseline_value=baseline,
        candidate_value=None,
        limit_value=min(limits),
    )


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
