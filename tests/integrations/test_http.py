"""Retry-After, as servers write it: seconds or any of the HTTP date forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from integrations.http import parse_retry_after


def test_seconds_are_taken_as_they_are() -> None:
    assert parse_retry_after(" 120 ") == 120.0


@pytest.mark.parametrize("usegmt", [True, False], ids=["GMT", "-0000"])
def test_a_date_in_either_form_is_the_wait_until_then(usegmt: bool) -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=2)
    header = (
        format_datetime(later, usegmt=usegmt)
        if usegmt
        else format_datetime(later.replace(tzinfo=None))
    )
    assert header.endswith("GMT" if usegmt else "-0000")

    wait = parse_retry_after(header)

    assert wait is not None and 100 < wait <= 120


@pytest.mark.parametrize("value", [None, "", "soon", "Mon, 99 Foo 2026"])
def test_nothing_usable_is_no_wait(value: str | None) -> None:
    assert parse_retry_after(value) is None
