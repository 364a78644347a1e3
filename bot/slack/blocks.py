"""Block Kit rendering: the incident headline, the approval card and command replies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from bot.approvals.policy import PolicySnapshot
from bot.slack.ids import ActionId, BlockId
from bot.store.models import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    Incident,
    RunbookRun,
)

Block = dict[str, Any]
_STATUS_MARK = {
    ApprovalStatus.APPROVED: "✅ Approved",
    ApprovalStatus.REJECTED: "❌ Rejected",
    ApprovalStatus.EXPIRED: "⌛ Expired",
    ApprovalStatus.CANCELLED: "🚫 Cancelled",
}


def when(at: datetime | None) -> str:
    """A time every reader sees in their own time zone."""
    if at is None:
        return "—"
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def mention(user: str | None) -> str:
    """A Slack user id as a mention; other actors (the watch, the worker) as they are."""
    if not user:
        return "Rollbot"
    return f"<@{user}>" if user[:1] in "UW" and user.isalnum() else user


def section(text: str, *, block_id: str | None = None) -> Block:
    """A markdown section."""
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
    if block_id:
        block["block_id"] = block_id
    return block


def context(text: str) -> Block:
    """Small grey text."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def headline(incident: Incident, run: RunbookRun | None, steps_done: int = 0) -> list[Block]:
    """The incident's headline, kept current with chat.update."""
    versions = ""
    if incident.to_version:
        versions = f" · {incident.from_version or '?'} → {incident.to_version}"
    lines = [
        f"*Incident #{incident.id}: {incident.title}*",
        f"Status *{incident.status}* · severity *{incident.severity}*"
        f" · model `{incident.model or '—'}`{versions}",
    ]
    if run is not None:
        total = len(run.plan.get("steps", []))
        lines.append(f"Run #{run.id} ({run.runbook}): *{run.status}*, {steps_done}/{total} steps")
    blocks = [section("\n".join(lines), block_id=BlockId.HEADLINE)]
    blocks.append(context(f"Opened {when(incident.created_at)} by {mention(incident.declared_by)}"))
    return blocks


def approval_card(
    request: ApprovalRequest, decisions: Sequence[ApprovalDecision]
) -> tuple[str, list[Block]]:
    """The proposal: plan, evidence, who asked and why, approvals so far, and the buttons."""
    policy = PolicySnapshot.from_dict(request.policy)
    title = (
        f"Rollback #{request.id}: `{request.model}` "
        f"{request.from_version or '?'} → {request.to_version}"
    )
    steps = request.plan.get("steps", [])
    stage_lines = [f"{n}. {s['name']} (`{s['action']}`)" for n, s in enumerate(steps, 1)]
    blocks = [
        section(f"*{title}*\nRunbook `{request.runbook}`\n" + "\n".join(stage_lines)),
        section(f"*Evidence*\n{evidence_text(request.evidence)}"),
        section(
            f"Requested by {mention(request.requested_by)} via {request.requested_via}"
            + (f": _{request.reason}_" if request.reason else "")
        ),
        context(f"Needs {policy.describe()} · expires {when(request.expires_at)}"),
    ]
    approvals = [d for d in decisions if d.decision == "approve"]
    if approvals:
        given = ", ".join(f"{mention(d.approver)} {when(d.decided_at)}" for d in approvals)
        blocks.append(context(f"Approvals {len(approvals)}/{policy.approvals}: {given}"))
    if request.status == ApprovalStatus.PENDING:
        blocks.append(_decision_buttons(request))
    else:
        blocks.append(section(_outcome(request, decisions), block_id=BlockId.DECISION))
    return title, blocks


def _decision_buttons(request: ApprovalRequest) -> Block:
    value = str(request.id)
    return {
        "type": "actions",
        "block_id": BlockId.DECISION,
        "elements": [
            {
                "type": "button",
                "action_id": ActionId.APPROVE,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": value,
            },
            {
                "type": "button",
                "action_id": ActionId.REJECT,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Reject"},
                "value": value,
            },
        ],
    }


def _outcome(request: ApprovalRequest, decisions: Sequence[ApprovalDecision]) -> str:
    mark = _STATUS_MARK.get(ApprovalStatus(request.status), request.status)
    deciders = [d for d in decisions if d.decision == ("reject" if "Rej" in mark else "approve")]
    by = ", ".join(mention(d.approver) for d in deciders)
    return f"*{mark}*" + (f" by {by}" if by else "") + f" at {when(request.decided_at)}"


def evidence_text(evidence: dict[str, Any]) -> str:
    """Metric values against baseline and boundary; other evidence as key: value lines.

    Detection hands ``{"metrics": [{"name", "value", "baseline", "boundary"}], ...}``.
    """
    if not evidence:
        return "_none given_"
    lines = [
        f"• `{m.get('name')}` {m.get('value')} (baseline {m.get('baseline', '—')}, "
        f"boundary {m.get('boundary', '—')})"
        for m in evidence.get("metrics", [])
        if isinstance(m, dict)
    ]
    lines += [f"• {key}: {value}" for key, value in evidence.items() if key != "metrics"]
    return "\n".join(lines)[:2500]


def bullet_list(lines: Iterable[str], *, empty: str) -> str:
    """Lines as a bulleted list, or what to say when there are none."""
    items = [f"• {line}" for line in lines]
    return "\n".join(items) if items else empty
