"""The approval policy at every click: refusals say why and change nothing."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlmodel import Session, select

from bot.slack.ids import ActionId
from bot.store.models import ApprovalRequest, Incident, RunbookRun, TimelineEvent
from bot.store.types import utcnow
from tests.slack.conftest import Rollbot
from tests.slack.helpers import (
    card_updates,
    click,
    command,
    decisions,
    latest_request,
    propose,
)


def _runs(rollbot: Rollbot) -> list[RunbookRun]:
    with Session(rollbot.engine) as session:
        return list(session.exec(select(RunbookRun)).all())


def _events(rollbot: Rollbot) -> int:
    with Session(rollbot.engine) as session:
        return len(session.exec(select(TimelineEvent)).all())


def _assert_unchanged(rollbot: Rollbot, request_id: int, events_before: int) -> None:
    assert decisions(rollbot, request_id) == []
    assert latest_request(rollbot).status == "pending"
    assert _runs(rollbot) == []
    assert _events(rollbot) == events_before


def test_a_non_approver_is_refused(rollbot: Rollbot) -> None:
    request_id = propose(rollbot)
    before = _events(rollbot)

    reply = click(rollbot, request_id, user="UMALLORY")

    assert "you are not an approver" in reply
    _assert_unchanged(rollbot, request_id, before)


def test_the_requester_cannot_approve_their_own_rollback(rollbot: Rollbot) -> None:
    request_id = propose(rollbot, user="UALICE")
    before = _events(rollbot)

    reply = click(rollbot, request_id, user="UALICE")

    assert "someone else has to approve it" in reply
    _assert_unchanged(rollbot, request_id, before)


def test_an_expired_request_cannot_be_approved(rollbot: Rollbot) -> None:
    request_id = propose(rollbot)
    with Session(rollbot.engine) as session:
        request = session.get(ApprovalRequest, request_id)
        assert request is not None
        request.expires_at = utcnow() - timedelta(seconds=1)
        session.add(request)
        session.commit()
    before = _events(rollbot)

    reply = click(rollbot, request_id, user="UBOB")

    assert "expired" in reply
    _assert_unchanged(rollbot, request_id, before)


def test_a_changed_plan_is_refused_and_asks_to_propose_again(rollbot: Rollbot) -> None:
    request_id = propose(rollbot)
    rollbot.world.serving = "6"  # someone deployed meanwhile: the plan would differ
    before = _events(rollbot)

    reply = click(rollbot, request_id, user="UBOB")

    assert "the plan changed" in reply and "Propose again" in reply
    _assert_unchanged(rollbot, request_id, before)


def test_a_target_rollbot_chose_must_still_be_the_safe_one_at_the_click(
    rollbot: Rollbot,
) -> None:
    request_id = propose(rollbot)  # no version named: the newest safe one, 4
    rollbot.world.safe = "3"  # 4 had an incident meanwhile
    before = _events(rollbot)

    reply = click(rollbot, request_id, user="UBOB")

    assert "the plan changed" in reply and "Propose again" in reply
    _assert_unchanged(rollbot, request_id, before)
    assert rollbot.world.plans[-1] == ("fraud-detector", None)


def test_a_target_the_requester_named_is_kept_at_the_click(rollbot: Rollbot) -> None:
    request_id = propose(rollbot, extra="to 3")
    rollbot.world.safe = "2"  # the newest safe version changes; the person chose 3

    reply = click(rollbot, request_id, user="UBOB")

    assert "the plan changed" not in reply
    assert rollbot.world.plans[-1] == ("fraud-detector", "3")


def test_resolving_the_incident_withdraws_its_proposal_and_clicks_change_nothing(
    rollbot: Rollbot,
) -> None:
    request_id = propose(rollbot)
    incident_id = latest_request(rollbot).incident_id

    command(rollbot, f"incident resolve {incident_id} false alarm", user="UCAROL")
    reply = click(rollbot, request_id, user="UBOB")

    assert f"rollback request #{request_id} is already cancelled" in reply
    assert latest_request(rollbot).status == "cancelled" and _runs(rollbot) == []
    assert rollbot.fake.wait_for(
        lambda: any("Cancelled" in str(u.get("blocks")) for u in card_updates(rollbot))
    )


def test_a_registry_outage_at_click_time_records_nothing(rollbot: Rollbot) -> None:
    request_id = propose(rollbot)
    rollbot.world.registry_down = True
    before = _events(rollbot)

    reply = click(rollbot, request_id, user="UBOB")

    assert "could not re-check the plan" in reply and "try again" in reply
    _assert_unchanged(rollbot, request_id, before)


def test_slack_down_for_group_lookup_records_nothing(rollbot: Rollbot) -> None:
    request_id = propose(rollbot)
    rollbot.fake.state.failing["usergroups.users.list"] = "internal_error"
    before = _events(rollbot)

    reply = click(rollbot, request_id, user="UBOB")

    assert "could not read Slack user group" in reply
    _assert_unchanged(rollbot, request_id, before)


def test_a_double_click_counts_once(rollbot: Rollbot) -> None:
    request_id = propose(rollbot)

    first = click(rollbot, request_id, user="UBOB")
    second = click(rollbot, request_id, user="UBOB")

    assert first == "Approval recorded; 1 more needed."
    assert second == "You already approved this."
    assert decisions(rollbot, request_id) == [("UBOB", "approve")]
    assert latest_request(rollbot).status == "pending"


def test_simultaneous_clicks_by_one_person_count_once(rollbot: Rollbot) -> None:
    request_id = propose(rollbot)
    replies: list[str] = []
    threads = [
        threading.Thread(target=lambda: replies.append(click(rollbot, request_id, user="UBOB")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(replies).count("You already approved this.") == 2
    assert decisions(rollbot, request_id) == [("UBOB", "approve")]


def test_a_quorum_of_two_starts_the_run_and_updates_the_card(rollbot: Rollbot) -> None:
    request_id = propose(rollbot)

    first = click(rollbot, request_id, user="UBOB")
    assert latest_request(rollbot).status == "pending" and _runs(rollbot) == []
    second = click(rollbot, request_id, user="ULEAD")

    assert first == "Approval recorded; 1 more needed."
    assert second == "Approved: the rollback starts."
    request = latest_request(rollbot)
    assert request.status == "approved" and request.decided_at is not None
    [run] = _runs(rollbot)
    assert (run.status, run.approval_request_id, run.plan_hash) == (
        "pending",
        request_id,
        request.plan_hash,
    )
    with Session(rollbot.engine) as session:
        incident = session.get(Incident, request.incident_id)
        assert incident is not None and incident.approved_at == request.decided_at
    assert rollbot.fake.wait_for(
        lambda: any("Approved" in str(u.get("blocks")) for u in card_updates(rollbot))
    )
    final = [u for u in card_updates(rollbot) if "Approved" in str(u.get("blocks"))][-1]
    assert "<@UBOB>" in str(final["blocks"]) and "<@ULEAD>" in str(final["blocks"])


def test_a_rejection_is_recorded_and_shown(rollbot: Rollbot) -> None:
    request_id = propose(rollbot)

    reply = click(rollbot, request_id, user="UCAROL", action=ActionId.REJECT)

    assert reply == "Rejected: nothing will run."
    assert latest_request(rollbot).status == "rejected"
    assert decisions(rollbot, request_id) == [("UCAROL", "reject")]
    assert _runs(rollbot) == []
    assert rollbot.fake.wait_for(
        lambda: any("Rejected" in str(u.get("blocks")) for u in card_updates(rollbot))
    )
    again = click(rollbot, request_id, user="UBOB")
    assert "already rejected" in again
