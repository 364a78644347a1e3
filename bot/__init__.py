"""Rollbot: detect degraded ML model versions and roll them back safely, from Slack."""

__version__ = "0.1.0"
