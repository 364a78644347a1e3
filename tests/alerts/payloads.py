"""Alertmanager version-4 notifications as Alertmanager writes them."""

from __future__ import annotations

from typing import Any

STARTS = "2026-01-01T11:50:00.000Z"
GO_ZERO = "0001-01-01T00:00:00Z"


def alert(
    fingerprint: str,
    *,
    model: str | None = "fraud",
    status: str = "firing",
    alertname: str = "ModelErrorRateHigh",
    label: str = "model",
) -> dict[str, Any]:
    """One alert of a notification."""
    labels = {"alertname": alertname, "severity": "page"}
    if model is not None:
        labels[label] = model
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"error rate high on {model}"},
        "startsAt": STARTS,
        "endsAt": "2026-01-01T12:05:00Z" if status == "resolved" else GO_ZERO,
        "generatorURL": "http://prometheus.local/graph?g0.expr=x",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    """A whole webhook body around ``alerts``."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ModelErrorRateHigh"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "rollbot",
        "groupLabels": {"alertname": "ModelErrorRateHigh"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local",
        "alerts": list(alerts),
    }
