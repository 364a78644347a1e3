"""POST /alerts/alertmanager on both databases: dedupe, resolve, grouping, refusals, storms."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.alerts.flows import receive_notification
from bot.alerts.payload import parse_payload
from bot.config import parse_config
from bot.config.models import RollbotConfig
from bot.store.models import Alert, ApprovalRequest, Incident, TimelineEvent
from bot.web.app import create_app
from integrations.errors import IntegrationUnavailable
from tests.alerts.payloads import GO_ZERO, alert, notification
from tests.alerts.server import serving
from tests.approvals.test_proposals import add_run
from tests.watches.fakes import RecordingNotifier, proposer

CONFIG = """
registries: {mlflow: {kind: local}}
deployers: {kserve: {kind: local}}
alertmanager: {model_label: %(label)s, propose_rollback: %(propose)s}
models:
  fraud: {registry: mlflow, deployer: kserve, watch: {}}
  churn: {registry: mlflow, deployer: kserve}
"""


def make_config(*, label: str = "model", propose: bool = False) -> RollbotConfig:
    return parse_config(CONFIG % {"label": label, "propose": str(propose).lower()})


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(engine)
    app.state.config = make_config()
    with TestClient(app) as client:
        yield client


def rows(engine: Engine, model: type[Any]) -> list[Any]:
    with Session(engine) as session:
        return list(session.exec(select(model)).all())


def events(engine: Engine, kind: str) -> list[TimelineEvent]:
    return [e for e in rows(engine, TimelineEvent) if e.kind == kind]


def post(client: TestClient, body: Any) -> httpx.Response:
    return client.post("/alerts/alertmanager", json=body)


def test_a_firing_alert_opens_the_models_incident(client: TestClient, engine: Engine) -> None:
    response = post(client, notification(alert("fp1")))

    assert response.status_code == 200
    [incident] = rows(engine, Incident)
    assert response.json()["incidents_opened"] == [incident.id]
    assert incident.model == "fraud" and incident.title == "ModelErrorRateHigh on fraud"
    assert incident.degraded_at is not None and incident.degraded_at.isoformat().startswith(
        "2026-01-01T11:50"
    )
    [stored] = rows(engine, Alert)
    assert (stored.status, stored.incident_id, stored.ends_at) == ("firing", incident.id, None)
    [event] = events(engine, "alert.firing")
    assert event.incident_id == incident.id and "error rate high on fraud" in event.summary


def test_a_repeated_alert_is_deduplicated(client: TestClient, engine: Engine) -> None:
    post(client, notification(alert("fp1")))
    response = post(client, notification(alert("fp1")))

    assert response.json()["new"] == 0 and response.json()["updated"] == 1
    [stored] = rows(engine, Alert)
    assert stored.receive_count == 2
    assert len(rows(engine, Incident)) == 1 and len(events(engine, "alert.firing")) == 1


def test_a_resolved_alert_is_recorded_and_the_incident_stays_open(
    client: TestClient, engine: Engine
) -> None:
    post(client, notification(alert("fp1")))
    response = post(client, notification(alert("fp1", status="resolved")))

    assert response.json()["resolved"] == 1
    [stored] = rows(engine, Alert)
    assert stored.status == "resolved" and stored.ends_at is not None
    [incident] = rows(engine, Incident)
    assert incident.status == "open"
    [event] = events(engine, "alert.resolved")
    assert event.incident_id == incident.id


def test_a_late_copy_of_a_resolved_alerts_firing_changes_nothing(
    client: TestClient, engine: Engine
) -> None:
    post(client, notification(alert("fp1")))
    post(client, notification(alert("fp1", status="resolved")))
    with Session(engine) as session:  # a person closed the incident
        incident = session.exec(select(Incident)).one()
        incident.status = "resolved"
        session.add(incident)
        session.commit()

    response = post(client, notification(alert("fp1")))  # retried first notification

    assert response.status_code == 200 and response.json()["stale"] == 1
    assert response.json()["incidents_opened"] == []
    [stored] = rows(engine, Alert)
    assert stored.status == "resolved"
    assert [i.status for i in rows(engine, Incident)] == ["resolved"]


def test_the_same_start_firing_long_after_the_resolution_is_believed(
    client: TestClient, engine: Engine
) -> None:
    post(client, notification(alert("fp1")))
    post(client, notification(alert("fp1", status="resolved")))
    with Session(engine) as session:  # the resolution arrived 20 minutes ago
        stored = session.exec(select(Alert)).one()
        stored.last_seen = stored.last_seen - timedelta(minutes=20)
        session.add(stored)
        session.commit()

    # Prometheus restarted and restored the alert's start: it fires again.
    response = post(client, notification(alert("fp1")))

    assert response.json()["stale"] == 0
    [stored] = rows(engine, Alert)
    assert stored.status == "firing"


def test_an_alert_firing_again_with_a_new_start_is_news(client: TestClient, engine: Engine) -> None:
    post(client, notification(alert("fp1")))
    post(client, notification(alert("fp1", status="resolved")))
    again = alert("fp1")
    again["startsAt"] = "2026-01-01T12:30:00Z"

    response = post(client, notification(again))

    assert response.json()["stale"] == 0
    [stored] = rows(engine, Alert)
    assert stored.status == "firing"
    assert len(events(engine, "alert.firing")) == 2


def test_a_late_resolution_of_an_earlier_episode_leaves_the_new_firing_alone(
    client: TestClient, engine: Engine
) -> None:
    post(client, notification(alert("fp1")))
    post(client, notification(alert("fp1", status="resolved")))  # ended 12:05
    again = alert("fp1")
    again["startsAt"] = "2026-01-01T12:30:00Z"
    post(client, notification(again))

    # The other Alertmanager peer delivers the first episode's resolution late.
    response = post(client, notification(alert("fp1", status="resolved")))

    assert response.json()["stale"] == 1
    [stored] = rows(engine, Alert)
    assert stored.status == "firing" and stored.starts_at.isoformat().startswith("2026-01-01T12:30")
    assert len(events(engine, "alert.resolved")) == 1


def test_an_alert_still_firing_after_its_incident_was_resolved_is_news_in_the_new_one(
    engine: Engine,
) -> None:
    app = create_app(engine)
    config = make_config(propose=True)
    app.state.config, app.state.rollback_proposer = config, proposer(config)
    with TestClient(app) as client:
        post(client, notification(alert("fp1")))
        _resolve_incidents(engine)  # a person resolved it; the alert kept firing
        response = post(client, notification(alert("fp1")))  # Alertmanager's repeat

    first, second = rows(engine, Incident)
    assert response.json()["incidents_opened"] == [second.id]
    assert [e.incident_id for e in events(engine, "alert.firing")] == [first.id, second.id]
    assert [r.incident_id for r in rows(engine, ApprovalRequest)] == [first.id]
    [stored] = rows(engine, Alert)
    assert stored.incident_id == second.id


def test_a_resolution_is_filed_in_the_incident_its_alert_fired_in(
    client: TestClient, engine: Engine
) -> None:
    post(client, notification(alert("fp1")))
    _resolve_incidents(engine)
    post(client, notification(alert("fp2")))  # another alert opens the model's next incident

    post(client, notification(alert("fp1", status="resolved")))

    first, second = rows(engine, Incident)
    [resolution] = events(engine, "alert.resolved")
    assert resolution.incident_id == first.id
    assert {a.fingerprint: a.incident_id for a in rows(engine, Alert)} == {
        "fp1": first.id,
        "fp2": second.id,
    }


def _resolve_incidents(engine: Engine) -> None:
    with Session(engine) as session:
        for incident in session.exec(select(Incident)).all():
            incident.status = "resolved"
            session.add(incident)
        session.commit()


def test_alerts_labelled_with_a_watchs_metrics_name_join_its_models_incident(
    engine: Engine,
) -> None:
    app = create_app(engine)
    app.state.config = parse_config(
        CONFIG % {"label": "model", "propose": "false"}
        + "  fraud-detector: {registry: mlflow, deployer: kserve,"
        + " watch: {metrics_name: fraud_detector}}\n"
    )
    with TestClient(app) as client:
        counts = post(
            client, notification(alert("a1", model="fraud_detector"), alert("x", model=""))
        ).json()

    assert counts["without_model"] == 1
    assert [i.model for i in rows(engine, Incident)] == ["fraud-detector"]
    assert {a.fingerprint: a.model for a in rows(engine, Alert)} == {
        "a1": "fraud-detector",
        "x": None,
    }


def test_alerts_group_by_model(client: TestClient, engine: Engine) -> None:
    body = notification(
        alert("a1"),
        alert("a2", alertname="Latency"),
        alert("b1", model="churn"),
        alert("x", model=None),
    )
    counts = post(client, body).json()

    assert counts["new"] == 4 and counts["without_model"] == 1
    incidents = {i.model: i.id for i in rows(engine, Incident)}
    assert set(incidents) == {"fraud", "churn"}
    by_fp = {a.fingerprint: a.incident_id for a in rows(engine, Alert)}
    assert by_fp == {
        "a1": incidents["fraud"],
        "a2": incidents["fraud"],
        "b1": incidents["churn"],
        "x": None,
    }


def test_the_model_label_is_configurable(engine: Engine) -> None:
    app = create_app(engine)
    app.state.config = make_config(label="service")
    with TestClient(app) as client:
        post(client, notification(alert("fp1", model="fraud", label="service")))
    assert [i.model for i in rows(engine, Incident)] == ["fraud"]


def _bad(mutate: Any) -> dict[str, Any]:
    body = notification(*(alert(f"fp{i}") for i in range(5)))
    mutate(body)
    return body


MALFORMED = [
    ("version", lambda b: b.update(version="3"), "unsupported payload version"),
    ("alerts", lambda b: b.pop("alerts"), "required field is missing"),
    ("alerts[3].labels.team", lambda b: b["alerts"][3]["labels"].update(team=7), "string"),
    ("alerts[3].fingerprint", lambda b: b["alerts"][3].pop("fingerprint"), "missing"),
    ("alerts[3].status", lambda b: b["alerts"][3].update(status="pending"), "firing"),
    (
        "alerts[3].startsAt",
        lambda b: b["alerts"][3].update(startsAt="2026-01-01T11:50:00"),
        "timezone",
    ),
    ("alerts[3].startsAt", lambda b: b["alerts"][3].update(startsAt="soon"), "datetime"),
    ("alerts[3].startsAt", lambda b: b["alerts"][3].update(startsAt=GO_ZERO), "zero time"),
    (
        "alerts[3].labels.model",
        lambda b: b["alerts"][3]["labels"].update(model="m" * 201),
        "at most 200 characters, got 201",
    ),
    (
        "alerts[3].endsAt",
        lambda b: b["alerts"][3].update(endsAt="9999-12-31T23:00:00-05:00"),
        "9999-12-31T23:00:00-05:00 is out of range in UTC",
    ),
    (
        "alerts[3].labels.alertname",
        lambda b: b["alerts"][3]["labels"].update(alertname="High\ud800Errors"),
        "unpaired UTF-16 surrogate",
    ),
    (
        "alerts[3].annotations.summary",
        lambda b: b["alerts"][3]["annotations"].update(summary="errors\x00up"),
        "NUL character",
    ),
    (
        "alerts[3].labels.pod\\ud800",  # the name itself, escaped so the answer can be sent
        lambda b: b["alerts"][3]["labels"].update({"pod\ud800": "x"}),
        "unpaired UTF-16 surrogate",
    ),
]


@pytest.mark.parametrize(("field", "mutate", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_payload_is_refused_and_nothing_is_stored(
    client: TestClient, engine: Engine, field: str, mutate: Any, reason: str
) -> None:
    # As JSON on the wire: escaped, so even an unpaired surrogate can be sent.
    response = client.post(
        "/alerts/alertmanager",
        content=json.dumps(_bad(mutate)),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["field"] == field and reason in response.json()["error"]
    assert not response.json()["error"].startswith("Value error")
    assert rows(engine, Alert) == [] and rows(engine, Incident) == []
    assert rows(engine, TimelineEvent) == []


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"], ids=["not-json", "not-object"])
def test_a_body_that_is_not_a_json_object_is_refused(
    client: TestClient, engine: Engine, body: bytes
) -> None:
    response = client.post(
        "/alerts/alertmanager", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["field"] is None
    assert rows(engine, Alert) == []


def test_a_watched_model_gets_a_proposal_when_configured(engine: Engine) -> None:
    app = create_app(engine)
    config = make_config(propose=True)
    app.state.config, app.state.rollback_proposer = config, proposer(config)
    app.state.notifier = notifier = RecordingNotifier()
    with TestClient(app) as client:
        post(client, notification(alert("f1"), alert("c1", model="churn")))
        post(client, notification(alert("f2", alertname="Latency")))

    [request] = rows(engine, ApprovalRequest)
    assert (request.model, request.to_version, request.requested_by) == (
        "fraud",
        "1",
        "alertmanager",
    )
    assert request.evidence["alerts"][0]["fingerprint"] == "f1"
    assert notifier.kinds() == ["incident_opened", "incident_opened", "proposal_created"]


def test_without_a_safe_version_the_alert_is_still_stored(engine: Engine) -> None:
    app = create_app(engine)
    config = make_config(propose=True)
    app.state.config, app.state.rollback_proposer = config, proposer(config, None)
    with TestClient(app) as client:
        assert post(client, notification(alert("f1"))).status_code == 200

    assert rows(engine, ApprovalRequest) == [] and len(rows(engine, Alert)) == 1
    [refusal] = events(engine, "detection.no_proposal")
    assert "no safe version" in refusal.summary


def test_an_alert_storm_loses_nothing_and_opens_one_incident_per_model(engine: Engine) -> None:
    models, per_batch, batches = 20, 25, 80  # 2,000 distinct alerts, each batch sent twice
    bodies = [
        notification(
            *(
                alert(f"fp-{b}-{i}", model=f"model-{(b * per_batch + i) % models}")
                for i in range(per_batch)
            )
        )
        for b in range(batches)
    ]
    app = create_app(engine)
    app.state.config = make_config()
    with serving(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        send = lambda body: http.post("/alerts/alertmanager", json=body).status_code  # noqa: E731
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(send, [copy.deepcopy(b) for b in bodies * 2]))

    assert set(statuses) == {200}
    stored = rows(engine, Alert)
    assert len(stored) == batches * per_batch
    assert {a.receive_count for a in stored} == {2}
    incidents = rows(engine, Incident)
    assert sorted(i.model for i in incidents) == sorted(f"model-{m}" for m in range(models))
    assert all(a.incident_id is not None for a in stored)


def test_concurrent_alerts_for_one_model_make_one_proposal(engine: Engine) -> None:
    config = make_config(propose=True)
    make_proposal = proposer(config)

    def slow_proposer(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)  # a real planner asks the deployer and the registry over HTTP
        return make_proposal(*args, **kwargs)

    app = create_app(engine)
    app.state.config, app.state.rollback_proposer = config, slow_proposer
    bodies = [notification(alert(f"fp{i}")) for i in range(4)]
    with serving(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        send = lambda body: http.post("/alerts/alertmanager", json=body).status_code  # noqa: E731
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(send, bodies))

    assert statuses == [200] * 4
    [request] = rows(engine, ApprovalRequest)
    assert request.status == "pending"
    # The others were told why rather than replacing the one approvers may be reading.
    refusals = events(engine, "detection.no_proposal")
    assert len(refusals) == 3
    assert all("already proposed and awaiting approval" in e.summary for e in refusals)


def test_a_deployer_outage_still_stores_the_alert_and_announces_the_incident(
    engine: Engine,
) -> None:
    def deployer_down(*args: Any, **kwargs: Any) -> Any:
        raise IntegrationUnavailable(
            "connection refused", integration="kserve", operation="current_state", target="fraud"
        )

    app = create_app(engine)
    app.state.config, app.state.rollback_proposer = make_config(propose=True), deployer_down
    app.state.notifier = notifier = RecordingNotifier()
    with TestClient(app) as client:
        assert post(client, notification(alert("fp1"))).status_code == 200

    assert len(rows(engine, Alert)) == 1 and rows(engine, ApprovalRequest) == []
    [refusal] = events(engine, "detection.no_proposal")
    assert refusal.summary == (
        "No rollback proposed for fraud: kserve current_state fraud: connection refused; "
        "trying again at the alert's next notification after 5m"
    )
    assert notifier.kinds() == ["incident_opened"]


def test_an_alert_still_firing_tries_a_failed_proposal_again_after_five_minutes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.alerts.flows as flows

    def deployer_down(*args: Any, **kwargs: Any) -> Any:
        raise IntegrationUnavailable(
            "connection refused", integration="kserve", operation="current_state", target="fraud"
        )

    app = create_app(engine)
    config = make_config(propose=True)
    app.state.config, app.state.rollback_proposer = config, deployer_down
    app.state.notifier = notifier = RecordingNotifier()
    with TestClient(app) as client:
        post(client, notification(alert("fp1")))
        app.state.rollback_proposer = proposer(config)  # the deployer is back
        post(client, notification(alert("fp1")))  # too soon: not tried again
        assert rows(engine, ApprovalRequest) == []
        later = flows.utcnow() + timedelta(minutes=6)
        monkeypatch.setattr(flows, "utcnow", lambda: later)
        post(client, notification(alert("fp1")))  # Alertmanager's next notification
        post(client, notification(alert("fp1")))  # and one more: the proposal stands

    [request] = rows(engine, ApprovalRequest)
    assert request.status == "pending" and request.requested_by == "alertmanager"
    assert len(events(engine, "detection.no_proposal")) == 1
    assert notifier.kinds() == ["incident_opened", "proposal_created"]


def test_an_alert_still_firing_while_the_models_rollback_runs_tries_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.alerts.flows as flows

    def deployer_down(*args: Any, **kwargs: Any) -> Any:
        raise IntegrationUnavailable(
            "connection refused", integration="kserve", operation="current_state", target="fraud"
        )

    app = create_app(engine)
    config = make_config(propose=True)
    app.state.config, app.state.rollback_proposer = config, deployer_down
    with TestClient(app) as client:
        post(client, notification(alert("fp1")))
        add_run(engine, status="running")  # a person's rollback started meanwhile
        app.state.rollback_proposer = proposer(config)
        later = flows.utcnow() + timedelta(minutes=6)
        monkeypatch.setattr(flows, "utcnow", lambda: later)
        post(client, notification(alert("fp1")))

    assert rows(engine, ApprovalRequest) == []
    assert len(events(engine, "detection.no_proposal")) == 1


def test_a_notification_sent_again_after_a_crash_before_proposing_proposes(
    engine: Engine,
) -> None:
    config = make_config(propose=True)
    # The process stopped after storing the alerts, before proposing: nothing proposed it.
    receive_notification(engine, payload=parse_payload(notification(alert("fp1"))), config=config)
    app = create_app(engine)
    app.state.config, app.state.rollback_proposer = config, proposer(config)
    with TestClient(app) as client:
        response = post(client, notification(alert("fp1")))  # Alertmanager retries

    assert response.json()["new"] == 0
    [request] = rows(engine, ApprovalRequest)
    assert request.incident_id == rows(engine, Incident)[0].id


def test_a_refusal_for_good_is_not_repeated_at_each_notification(engine: Engine) -> None:
    app = create_app(engine)
    config = make_config(propose=True)
    app.state.config, app.state.rollback_proposer = config, proposer(config, safe_version=None)
    with TestClient(app) as client:
        for _ in range(3):
            post(client, notification(alert("fp1")))

    assert rows(engine, ApprovalRequest) == []
    [refusal] = events(engine, "detection.no_proposal")
    assert "trying again" not in refusal.summary


def test_an_alert_firing_again_after_a_rollback_waits_for_the_cooldown(engine: Engine) -> None:
    app = create_app(engine)
    config = make_config(propose=True)
    app.state.config, app.state.rollback_proposer = config, proposer(config)
    with TestClient(app) as client:
        post(client, notification(alert("fp1")))
        with Session(engine) as session:  # approved, and the rollback ran
            [request] = session.exec(select(ApprovalRequest)).all()
            request.status = "approved"
            session.add(request)
            session.commit()
        post(client, notification(alert("fp1", status="resolved")))
        flap = alert("fp1")
        flap["startsAt"] = "2026-01-01T12:06:00Z"  # fires again a minute later
        post(client, notification(flap))

    assert [r.status for r in rows(engine, ApprovalRequest)] == ["approved"]
    [refusal] = events(engine, "detection.no_proposal")
    assert "automatic proposals for fraud wait 1h after one" in refusal.summary


def test_an_alert_name_of_any_length_is_stored(client: TestClient, engine: Engine) -> None:
    response = post(client, notification(alert("fp1", alertname="A" * 600)))

    assert response.status_code == 200
    [incident] = rows(engine, Incident)
    assert incident.title == ("A" * 600 + " on fraud")[:500]
    [stored] = rows(engine, Alert)
    assert stored.alertname == "A" * 200


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("Bearer am-secret", 200),
        ("Basic " + base64.b64encode(b"alertmanager:am-secret").decode(), 200),
    ],
    ids=["none", "wrong", "bearer", "basic"],
)
def test_with_a_token_set_only_notifications_carrying_it_are_read(
    client: TestClient,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    authorization: str | None,
    status: int,
) -> None:
    monkeypatch.setenv("ROLLBOT_ALERTMANAGER_TOKEN", "am-secret")
    headers = {"authorization": authorization} if authorization else {}

    response = client.post("/alerts/alertmanager", json=notification(alert("fp1")), headers=headers)

    assert response.status_code == status
    if status == 401:
        assert "ROLLBOT_ALERTMANAGER_TOKEN" in response.json()["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert rows(engine, Alert) == [] and rows(engine, Incident) == []
    else:
        assert len(rows(engine, Alert)) == 1


def test_a_proposal_from_an_alert_labelled_with_a_metrics_name_carries_that_alert(
    engine: Engine,
) -> None:
    config = parse_config(
        CONFIG % {"label": "model", "propose": "true"}
        + "  fraud-detector: {registry: mlflow, deployer: kserve,"
        + " watch: {metrics_name: fraud_detector}}\n"
    )
    app = create_app(engine)
    app.state.config, app.state.rollback_proposer = config, proposer(config)
    with TestClient(app) as client:
        post(client, notification(alert("a1", model="fraud_detector")))

    [request] = rows(engine, ApprovalRequest)
    assert request.model == "fraud-detector"
    assert [a["fingerprint"] for a in request.evidence["alerts"]] == ["a1"]


def test_an_overlong_generator_url_is_dropped_not_the_alerts(
    client: TestClient, engine: Engine
) -> None:
    # Prometheus puts the URL-encoded rule expression in it: long rules make long links.
    firing = alert("fp1")
    firing["generatorURL"] = "http://prometheus:9090/graph?g0.expr=" + "x" * 3000

    response = post(client, notification(firing, alert("fp2")))

    assert response.status_code == 200
    assert {a.fingerprint: a.generator_url for a in rows(engine, Alert)} == {
        "fp1": None,
        "fp2": alert("fp2").get("generatorURL"),
    }


def test_a_notification_over_the_size_limit_is_refused_unread(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.web.alerts as alerts

    body = notification(*(alert(f"fp{i}") for i in range(50)))
    monkeypatch.setattr(alerts, "MAX_BODY_BYTES", 4096)

    response = post(client, body)

    assert response.status_code == 413
    assert "max_alerts" in response.json()["error"]
    assert rows(engine, Alert) == [] and rows(engine, Incident) == []
