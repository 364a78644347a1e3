"""Parse `/rollbot` text into plain values. No Slack, no database: just words in, a command out."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

SEVERITY = re.compile(r"^sev[1-4]$")


@dataclass(frozen=True)
class Command:
    """A parsed subcommand: its name (``incident declare``) and its arguments."""

    name: str
    model: str | None = None
    version: str | None = None
    runbook: str | None = None
    severity: str | None = None
    number: int | None = None
    text: str | None = None


@dataclass(frozen=True)
class Usage:
    """Input that is not a command; what to tell the person instead."""

    message: str


USAGE = {
    "help": "help",
    "incident declare": "incident declare [MODEL] [sev1-4] TITLE…",
    "incident list": "incident list",
    "incident status": "incident status [ID]",
    "incident resolve": "incident resolve [ID] [SUMMARY…]",
    "incident sev": "incident sev sev1-4 [ID]",
    "rollback": "rollback MODEL [to VERSION] [because REASON…]",
    "runbook list": "runbook list",
    "runbook show": "runbook show MODEL [RUNBOOK]",
    "runbook run": "runbook run MODEL [RUNBOOK] [to VERSION] [because REASON…]",
    "runbook abort": "runbook abort [RUN_ID]",
    "runbook status": "runbook status [RUN_ID]",
    "note": "note TEXT…",
    "postmortem": "postmortem [ID]",
    "models": "models",
}


def usage_text(command: str = "/rollbot") -> str:
    """Every subcommand, one per line."""
    return "\n".join(f"`{command} {line}`" for line in USAGE.values())


def parse(text: str, *, models: frozenset[str] = frozenset()) -> Command | Usage:
    """The command in ``text``; ``models`` tells a model name from a title's first word."""
    try:
        # Not POSIX mode: quotes and backslashes stay in the words, so a note or a title is
        # stored as it was typed.
        words = shlex.split(text.strip(), posix=False)
    except ValueError:
        words = text.split()
    if not words or words[0].lower() == "help":
        return Command("help")
    head, rest = words[0].lower(), words[1:]
    if head in ("incident", "runbook"):
        if not rest or f"{head} {rest[0].lower()}" not in USAGE:
            return _usage(head, f"`{head}` needs one of: " + _subcommands(head))
        name = f"{head} {rest[0].lower()}"
        parser = _PARSERS[name]
        return parser(name, rest[1:], models)
    if head in _PARSERS:
        return _PARSERS[head](head, rest, models)
    return Usage(f"Unknown command `{head}`. Try `help`; commands: " + ", ".join(_heads()))


def _declare(name: str, words: list[str], models: frozenset[str]) -> Command | Usage:
    model = words.pop(0) if words and words[0] in models else None
    severity = words.pop(0).lower() if words and SEVERITY.match(words[0].lower()) else None
    title = " ".join(words) or (f"{model} degraded" if model else "")
    if not title:
        return _usage(name, "an incident needs a title (or a model)")
    return Command(name, model=model, severity=severity, text=title)


def _no_args(name: str, words: list[str], models: frozenset[str]) -> Command | Usage:
    return _usage(name, "takes no arguments") if words else Command(name)


def _optional_id(name: str, words: list[str], models: frozenset[str]) -> Command | Usage:
    if len(words) > 1:
        return _usage(name, "takes at most one id")
    number = _number(words[0]) if words else None
    if words and number is None:
        return _usage(name, f"`{words[0]}` is not an id")
    return Command(name, number=number)


def _resolve(name: str, words: list[str], models: frozenset[str]) -> Command | Usage:
    number = _number(words[0]) if words else None
    if words and number is None and words[0].removeprefix("#").isdigit():
        return _usage(name, f"`{words[0]}` is not an id")
    summary = " ".join(words[1:] if number is not None else words) or None
    return Command(name, number=number, text=summary)


def _severity(name: str, words: list[str], models: frozenset[str]) -> Command | Usage:
    severity = next((w.lower() for w in words if SEVERITY.match(w.lower())), None)
    others = [w for w in words if not SEVERITY.match(w.lower())]
    number = _number(others[0]) if len(others) == 1 else None
    if severity is None or len(others) > 1 or (others and number is None):
        return _usage(name, "give a severity sev1 to sev4 and optionally an incident id")
    return Command(name, severity=severity, number=number)


def _rollback(name: str, words: list[str], models: frozenset[str]) -> Command | Usage:
    if not words:
        return _usage(name, "which model?")
    model, rest = words[0], words[1:]
    runbook = None
    if name == "runbook run" and rest and rest[0].lower() not in ("to", "because"):
        runbook = rest.pop(0)
    version = None
    if rest and rest[0].lower() == "to":
        if len(rest) < 2:
            return _usage(name, "`to` needs a version")
        version, rest = rest[1], rest[2:]
    reason = None
    if rest and rest[0].lower() == "because":
        reason, rest = " ".join(rest[1:]) or None, []
    if rest:
        return _usage(name, f"did not understand `{' '.join(rest)}`")
    return Command(name, model=model, version=version, runbook=runbook, text=reason)


def _show(name: str, words: list[str], models: frozenset[str]) -> Command | Usage:
    if not 1 <= len(words) <= 2:
        return _usage(name, "give a model and optionally a runbook")
    return Command(name, model=words[0], runbook=words[1] if len(words) == 2 else None)


def _note(name: str, words: list[str], models: frozenset[str]) -> Command | Usage:
    text = " ".join(words).strip()
    return Command(name, text=text) if text else _usage(name, "a note needs some text")


_PARSERS = {
    "incident declare": _declare,
    "incident list": _no_args,
    "incident status": _optional_id,
    "incident resolve": _resolve,
    "incident sev": _severity,
    "rollback": _rollback,
    "runbook list": _no_args,
    "runbook show": _show,
    "runbook run": _rollback,
    "runbook abort": _optional_id,
    "runbook status": _optional_id,
    "note": _note,
    "postmortem": _optional_id,
    "models": _no_args,
}


def _usage(name: str, problem: str) -> Usage:
    return Usage(f"{problem[:1].upper()}{problem[1:]}. Usage: `{USAGE.get(name, name)}`")


def _number(word: str) -> int | None:
    """A positive id as a database stores it; None for anything else (²'s are digits too)."""
    word = word.removeprefix("#")
    if not (word.isascii() and word.isdigit()):
        return None
    number = int(word)
    return number if 0 < number < 2**31 else None


def _subcommands(head: str) -> str:
    return ", ".join(name.split()[1] for name in USAGE if name.startswith(head + " "))


def _heads() -> list[str]:
    return list(dict.fromkeys(name.split()[0] for name in USAGE))
