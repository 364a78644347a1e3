"""Alertmanager alerts: validated, deduplicated by fingerprint, grouped into model incidents."""
