"""The runbook action catalogue: every ``action:`` a runbook step may name."""

from __future__ import annotations

from bot.runs.actions.basic import Notify, NotifyParams, Wait, WaitParams
from bot.runs.actions.deployer import (
    ShiftTraffic,
    ShiftTrafficParams,
    WaitReady,
    WaitReadyParams,
)
from bot.runs.actions.registry import SetAlias, SetAliasParams, TagVersion, TagVersionParams
from bot.runs.actions.verify import VerificationFailed, Verify, VerifyParams
from bot.runs.contracts import Action

ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        SetAlias(),
        TagVersion(),
        ShiftTraffic(),
        WaitReady(),
        Verify(),
        Wait(),
        Notify(),
    )
}

__all__ = [
    "ACTIONS",
    "NotifyParams",
    "SetAliasParams",
    "ShiftTrafficParams",
    "TagVersionParams",
    "VerificationFailed",
    "VerifyParams",
    "WaitParams",
    "WaitReadyParams",
]
