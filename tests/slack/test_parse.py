"""Parsing `/rollbot` text: plain values out, a usage line for anything else."""

from __future__ import annotations

import pytest

from bot.slack.commands import Command, Usage, parse

MODELS = frozenset({"fraud-detector"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command("help")),
        ("help", Command("help")),
        (
            "incident declare fraud-detector sev2 scores look off",
            Command(
                "incident declare", model="fraud-detector", severity="sev2", text="scores look off"
            ),
        ),
        ("incident declare login is slow", Command("incident declare", text="login is slow")),
        (
            "incident resolve #4 fixed by rollback",
            Command("incident resolve", number=4, text="fixed by rollback"),
        ),
        ("incident sev sev1", Command("incident sev", severity="sev1")),
        ("incident sev 3 sev2", Command("incident sev", severity="sev2", number=3)),
        ("rollback fraud-detector", Command("rollback", model="fraud-detector")),
        (
            "rollback fraud-detector to 4 because auc dropped",
            Command("rollback", model="fraud-detector", version="4", text="auc dropped"),
        ),
        (
            "runbook run fraud-detector canary to 3",
            Command("runbook run", model="fraud-detector", runbook="canary", version="3"),
        ),
        ("runbook status 12", Command("runbook status", number=12)),
        ("note restarted the feature job", Command("note", text="restarted the feature job")),
        # Typed text is kept as typed: quotes and backslashes too.
        ('note he said "roll back now"', Command("note", text='he said "roll back now"')),
        (r"note model at C:\models\v5", Command("note", text=r"model at C:\models\v5")),
        ("note it's the feature job", Command("note", text="it's the feature job")),
        ("HELP", Command("help")),
        ("models", Command("models")),
    ],
)
def test_commands_parse_into_plain_values(text: str, expected: Command) -> None:
    assert parse(text, models=MODELS) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("deploy everything", "Unknown command `deploy`"),
        ("incident", "`incident` needs one of: declare, list"),
        ("incident explode", "`incident` needs one of"),
        ("incident declare", "An incident needs a title"),
        ("incident sev extreme", "Give a severity sev1 to sev4"),
        ("rollback", "Which model?"),
        ("rollback fraud-detector to", "`to` needs a version"),
        ("rollback fraud-detector please", "Did not understand `please`"),
        ("runbook status twelve", "`twelve` is not an id"),
        ("runbook abort 0", "`0` is not an id"),
        ("runbook abort ¹", "`¹` is not an id"),
        ("incident status 99999999999999999999", "is not an id"),
        ("incident resolve 99999999999999999999 done", "is not an id"),
        ("incident sev sev2 ³", "Give a severity sev1 to sev4"),
        ("note", "A note needs some text"),
        ("models now", "Takes no arguments"),
    ],
)
def test_bad_input_gets_a_usage_line(text: str, says: str) -> None:
    result = parse(text, models=MODELS)
    assert isinstance(result, Usage)
    assert says in result.message
