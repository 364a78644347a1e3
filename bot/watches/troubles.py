"""Metrics trouble told once: when it starts or changes, and when it ends.

A Prometheus outage or a query it refuses lasts many cycles; saying so every 15 s buries the
log. Trouble is tracked per model and logged one line per reason for all models it hits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

log = logging.getLogger(__name__)


class WatchTroubles:
    """Which models' metrics could not be read, and why, as last logged."""

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}

    def observe(self, checked: Iterable[str], troubled: Mapping[str, str]) -> None:
        """Take one cycle's outcome: every model ``checked``, those ``troubled`` with why."""
        started: dict[str, list[str]] = {}
        for model, reason in troubled.items():
            if self._reasons.get(model) != reason:
                started.setdefault(reason, []).append(model)
            self._reasons[model] = reason
        ended = sorted(m for m in checked if m not in troubled and m in self._reasons)
        for model in ended:
            del self._reasons[model]
        for reason, models in sorted(started.items()):
            log.warning("metrics of %s unavailable: %s", _shown(sorted(models)), reason)
        if ended:
            log.info("metrics of %s readable again", _shown(ended))


def _shown(names: Sequence[str]) -> str:
    """A few names and how many more."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
