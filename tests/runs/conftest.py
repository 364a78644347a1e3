"""Fixtures for runbook-run tests."""

from __future__ import annotations

import pytest

from tests.runs.fakes import Effects, FakeAction


@pytest.fixture
def effects() -> Effects:
    """The fake outside world."""
    return Effects()


@pytest.fixture
def apply(effects: Effects) -> FakeAction:
    """The ``fake.apply`` action over :func:`effects`."""
    return FakeAction("fake.apply", effects)
