"""Metrics sources: PromQL-compatible stores the watches read."""
