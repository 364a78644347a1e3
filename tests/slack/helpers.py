"""Drive the running app the way people in Slack do."""

from __future__ import annotations

import itertools
from typing import Any

from sqlmodel import Session, col, select

from bot.slack.ids import ActionId
from bot.store.models import ApprovalDecision, ApprovalRequest
from tests.slack.conftest import MODEL, Rollbot
from tests.support.slack_signing import block_action, slash_command

_names = itertools.count(1)


def command(rollbot: Rollbot, text: str, *, user: str, channel: str = "C0GENERAL") -> str:
    """Run `/rollbot TEXT` and return the ephemeral or in-channel reply."""
    name = f"cmd{next(_names)}"
    body, content_type = slash_command(
        text, user=user, channel=channel, response_url=rollbot.fake.response_url(name)
    )
    response = rollbot.send(body, content_type)
    assert response.status_code == 200, response.text
    if response.content:  # answered in the ack itself (help, usage)
        return str(response.json()["text"])
    return rollbot.fake.reply_to(name)


def propose(rollbot: Rollbot, *, user: str = "UALICE", extra: str = "") -> int:
    """Ask for a rollback of the test model; the new request's id."""
    reply = command(rollbot, f"rollback {MODEL} {extra}".strip(), user=user)
    assert reply.startswith("Proposed rollback"), reply
    return latest_request(rollbot).id or 0


def click(
    rollbot: Rollbot, request_id: int, *, user: str, action: ActionId = ActionId.APPROVE
) -> str:
    """Click a button on the approval card; the ephemeral reply."""
    name = f"click{next(_names)}"
    body, content_type = block_action(
        action_id=action,
        value=str(request_id),
        user=user,
        response_url=rollbot.fake.response_url(name),
    )
    response = rollbot.send(body, content_type)
    assert response.status_code == 200, response.text
    return rollbot.fake.reply_to(name)


def latest_request(rollbot: Rollbot) -> ApprovalRequest:
    """The newest approval request."""
    with Session(rollbot.engine) as session:
        request = session.exec(
            select(ApprovalRequest).order_by(col(ApprovalRequest.id).desc())
        ).first()
        assert request is not None
        return request


def decisions(rollbot: Rollbot, request_id: int) -> list[tuple[str, str]]:
    """(approver, decision) pairs stored for the request."""
    with Session(rollbot.engine) as session:
        rows = session.exec(
            select(ApprovalDecision).where(ApprovalDecision.request_id == request_id)
        ).all()
        return [(row.approver, row.decision) for row in rows]


def card_updates(rollbot: Rollbot) -> list[dict[str, Any]]:
    """Every chat.update the app made."""
    return [call.args for call in rollbot.fake.calls_to("chat.update")]
