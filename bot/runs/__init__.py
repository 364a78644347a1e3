"""Runbook runs: rendered plans executed durably, step by step."""
