"""Degradation detection: the pure detector, the watch state, and scenario replay."""

from bot.detection.detector import detect
from bot.detection.evidence import Decision, DetectionState, MetricEvidence
from bot.detection.rules import (
    Boundary,
    Direction,
    GaugeRule,
    MetricRule,
    RatioRule,
    StepSeries,
    rules_from_boundaries,
)
from bot.detection.watch_state import WatchPolicy, WatchState, WatchStep
from bot.detection.windows import DEFAULT_SETTINGS, DetectorSettings

__all__ = [
    "DEFAULT_SETTINGS",
    "Boundary",
    "Decision",
    "DetectionState",
    "DetectorSettings",
    "Direction",
    "GaugeRule",
    "MetricEvidence",
    "MetricRule",
    "RatioRule",
    "StepSeries",
    "WatchPolicy",
    "WatchState",
    "WatchStep",
    "detect",
    "rules_from_boundaries",
]
