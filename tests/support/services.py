"""Skipping a test for a missing service is fine on a laptop, never in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def services_required() -> bool:
    """True in CI (``CI=true``) or when ``ROLLBOT_REQUIRE_SERVICES=1``."""
    return os.environ.get("CI") == "true" or os.environ.get("ROLLBOT_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip locally; fail in CI, where every service must be installed."""
    if services_required():
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)
