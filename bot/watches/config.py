"""The watch configuration lives in :mod:`bot.config.watch`; re-exported for older imports."""

from bot.config.watch import (
    MetricConfig,
    MetricKind,
    WatchConfig,
    denominator_column,
    numerator_column,
)

__all__ = ["MetricConfig", "MetricKind", "WatchConfig", "denominator_column", "numerator_column"]
