"""Shared-token access for the web app's non-Slack routes (Slack requests carry signatures).

A request carries a token as ``Authorization: Bearer TOKEN`` (scripts, Alertmanager's
``authorization``) or as the password of HTTP Basic, with any user name (browsers,
Alertmanager's ``basic_auth``). Tokens are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import Request


def given_token(request: Request) -> str:
    """The token the request carries, or "" when it carries none."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    given = credentials.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(given, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return given if scheme.lower() == "bearer" else ""


def carries(request: Request, expected: str) -> bool:
    """Whether the request carries ``expected``."""
    given = given_token(request)
    return bool(given) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
