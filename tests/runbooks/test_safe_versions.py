"""Safe-version selection and rollback planning over Rollbot's history, on both databases."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.config import parse_config
from bot.config.models import SafeVersionPolicy
from bot.errors import ConflictError, NotFoundError
from bot.runbooks import NoSafeVersion, load_runbooks, plan_rollback
from bot.runs.contracts import Component, Plan
from bot.safe_versions import (
    Rejection,
    SafeCandidate,
    assess_versions,
    import_history,
    mark_incident,
    record_deployment,
)
from bot.store.models import DeploymentRecord, TimelineEvent
from integrations.deployers.base import DeploymentState
from integrations.registry.local import LocalRegistry
from tests.runbooks.conftest import SHIPPED

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=30)
POLICY = SafeVersionPolicy(require_tags={"validated": "true"}, min_serving=timedelta(hours=1))
CONFIG = parse_config(
    """
version: 1
registries: {local: {kind: local, path: r.json}}
deployers: {local: {kind: local, path: d.json}}
models:
  fraud-detector:
    registry: local
    deployer: local
    target: {name: fraud-detector}
    safe_version: {require_tags: {validated: "true"}, min_serving: 1h}
    components:
      - {name: fraud-features, deployer: local, target: {name: fraud-features}}
"""
)


def _history(session: Session) -> None:
    """1 (long, untagged), 2 (validated, 30 minutes), 3 (validated, incident), 4 (validated,
    2 days), then 5 serving now."""
    for hours, version in ((0, "1"), (240, "2"), (240.5, "3"), (300, "4"), (348, "5")):
        record_deployment(
            session,
            model="fraud-detector",
            version=version,
            reason="deploy",
            actor="ci",
            at=T0 + timedelta(hours=hours),
        )
    mark_incident(session, model="fraud-detector", version="3")


def _assess(
    session: Session, registry: LocalRegistry, policy: SafeVersionPolicy = POLICY
) -> tuple[list[SafeCandidate], list[Rejection]]:
    return assess_versions(
        session=session,
        registry=registry,
        model="fraud-detector",
        registry_model="fraud-detector",
        policy=policy,
        current_version="5",
        now=NOW,
    )


def test_only_validated_versions_that_served_long_enough_without_incident_are_safe(
    engine: Engine, registry: LocalRegistry
) -> None:
    registry.set_version_tag("fraud-detector", "3", "validated", "true", idempotency_key="k")
    with Session(engine) as session:
        _history(session)
        session.commit()
        safe, rejected = _assess(session, registry)
    assert [candidate.version for candidate in safe] == ["4"]
    assert safe[0].served == timedelta(hours=48)
    assert [rejection.describe() for rejection in rejected] == [
        "5: is serving now",
        "3: had an incident while serving",
        "2: served only 30m of the 1h required",
        "1: lacks tag validated=true",
    ]


def test_without_any_safe_version_planning_refuses_and_says_why(
    engine: Engine, registry: LocalRegistry, components: dict[str, Component]
) -> None:
    with Session(engine) as session:
        record_deployment(
            session, model="fraud-detector", version="5", reason="deploy", actor="ci", at=T0
        )
        session.commit()
        with pytest.raises(NoSafeVersion) as raised:
            _plan(session, components)
        count = len(session.exec(select(DeploymentRecord)).all())
    assert str(raised.value) == (
        "no safe version of 'fraud-detector' to roll back to: "
        "5: is serving now; "
        "4: never served in production (no deployment history); "
        "3: never served in production (no deployment history), lacks tag validated=true; "
        "2: never served in production (no deployment history); "
        "1: never served in production (no deployment history), lacks tag validated=true"
    )
    assert count == 1


def _plan(session: Session, components: Mapping[str, Component], **kwargs: str) -> Plan:
    return plan_rollback(
        config=CONFIG,
        runbooks=load_runbooks(SHIPPED),
        session=session,
        components_for=lambda model: {"fraud-detector": components["fraud-detector"]},
        model="fraud-detector",
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_plan_goes_from_what_serves_to_the_newest_safe_version(
    engine: Engine, components: dict[str, Component]
) -> None:
    with Session(engine) as session:
        _history(session)
        plan = _plan(session, components)
    assert (plan.from_version, plan.to_version, plan.runbook) == ("5", "4", "immediate-rollback")


def test_a_canary_in_flight_is_what_gets_rolled_back(
    engine: Engine, components: dict[str, Component]
) -> None:
    main = components["fraud-detector"]
    main.deployer.shift_traffic(
        main.target, version="4", source=None, percent=100, idempotency_key="a"
    )
    main.deployer.shift_traffic(
        main.target, version="5", source=None, percent=10, idempotency_key="b"
    )
    with Session(engine) as session:
        _history(session)
        plan = _plan(session, components, runbook="staged-rollback")
    assert (plan.from_version, plan.to_version) == ("5", "4")


def _unnamed(main: Component, source: str) -> Component:
    """The model's component behind a deployer that sees its artifact but not its version
    (a KServe storage URI a pipeline changed itself)."""

    class Unnamed:
        def __getattr__(self, name: str) -> object:
            return getattr(main.deployer, name)

        def current_state(self, target: Mapping[str, object]) -> DeploymentState:
            return DeploymentState(target="fraud-detector", version=None, source=source)

    return Component(main.name, main.registry, main.registry_model, Unnamed(), main.target)  # type: ignore[arg-type]


def test_a_version_the_deployer_cannot_name_is_found_by_its_artifact(
    engine: Engine, components: dict[str, Component]
) -> None:
    unnamed = _unnamed(components["fraud-detector"], "s3://fraud/5")
    with Session(engine) as session:
        _history(session)
        plan = _plan(session, {"fraud-detector": unnamed})

    assert (plan.from_version, plan.to_version) == ("5", "4")


def test_an_unregistered_artifact_serving_is_refused_not_guessed(
    engine: Engine, components: dict[str, Component]
) -> None:
    unnamed = _unnamed(components["fraud-detector"], "s3://hotfix-unregistered")
    with Session(engine) as session, pytest.raises(NotFoundError) as refused:
        _history(session)
        _plan(session, {"fraud-detector": unnamed})

    assert str(refused.value) == (
        "cannot tell which version of fraud-detector serves now (it serves "
        "s3://hotfix-unregistered, which no registered version has): without it nothing "
        "could be restored if the rollback fails; register the artifact or roll back by hand"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"to_version": "9"}, NotFoundError, "version '9' of 'fraud-detector' does not exist"),
        ({"to_version": "5"}, ConflictError, "fraud-detector already serves version 5"),
        ({"runbook": "yolo"}, NotFoundError, "unknown runbook 'yolo' (known: bundle-rollback, "),
    ],
)
def test_a_bad_request_is_refused_plainly(
    engine: Engine,
    components: dict[str, Component],
    kwargs: dict[str, str],
    error: type[Exception],
    message: str,
) -> None:
    with Session(engine) as session, pytest.raises(error) as raised:
        _plan(session, components, **kwargs)
    assert str(raised.value).startswith(message)


def test_an_unknown_model_lists_the_known_ones(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(NotFoundError) as raised:
        plan_rollback(
            config=CONFIG, runbooks={}, session=session, components_for=lambda m: {}, model="x"
        )
    assert str(raised.value) == "unknown model 'x' (known: fraud-detector)"


def test_a_bundle_plan_finds_the_component_version_that_served_with_the_target(
    engine: Engine, components: dict[str, Component]
) -> None:
    with Session(engine) as session:
        _history(session)
        for at, version in ((299, "12"), (348, "13")):
            record_deployment(
                session,
                model="fraud-detector",
                component="fraud-features",
                version=version,
                reason="deploy",
                actor="ci",
                at=T0 + timedelta(hours=at),
            )
        plan = plan_rollback(
            config=CONFIG,
            runbooks=load_runbooks(SHIPPED),
            session=session,
            components_for=lambda model: components,
            model="fraud-detector",
            runbook="bundle-rollback",
        )
    first = plan.steps[1]
    assert (first.name, first.params["version"]) == ("rollback-fraud-features", "12")
    assert first.compensation is not None and first.compensation.params["version"] == "13"


def test_recording_a_deployment_closes_the_previous_one_and_writes_the_timeline(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        record_deployment(session, model="m", version="1", reason="deploy", actor="ci", at=T0)
        again = record_deployment(session, model="m", version="1", reason="deploy", actor="ci")
        record_deployment(
            session,
            model="m",
            version="2",
            reason="rollback",
            actor="bot",
            at=T0 + timedelta(hours=2),
        )
        session.commit()
        records = session.exec(select(DeploymentRecord).order_by(col(DeploymentRecord.id))).all()
        events = session.exec(select(TimelineEvent).order_by(col(TimelineEvent.seq))).all()
    assert again.version == "1"
    assert [(r.version, r.ended_at) for r in records] == [
        ("1", T0 + timedelta(hours=2)),
        ("2", None),
    ]
    assert [e.summary for e in events] == [
        "m now serves version 1: deploy",
        "m now serves version 2 (was 1): rollback",
    ]


def test_history_is_imported_only_when_rollbot_has_none(engine: Engine) -> None:
    entries = [
        {
            "version": "1",
            "started_at": "2025-01-01T00:00:00+00:00",
            "ended_at": "2025-01-02T00:00:00+00:00",
        },
        {"version": "2", "started_at": "2025-01-02T00:00:00+00:00"},
    ]
    with Session(engine) as session:
        assert import_history(session, model="m", entries=entries) == 2
        assert import_history(session, model="m", entries=entries) == 0
        session.commit()
        assert len(session.exec(select(DeploymentRecord)).all()) == 2


def test_the_models_own_runbook_gets_its_parameters_whether_named_or_implied(
    engine: Engine, components: dict[str, Component]
) -> None:
    # An approval re-renders the plan naming the runbook: it must hash the same as the
    # proposal, which implied it, or no rollback with runbook_parameters could be approved.
    model = CONFIG.models["fraud-detector"].model_copy(
        update={"runbook_parameters": {"verify": False}}
    )
    config = CONFIG.model_copy(update={"models": {"fraud-detector": model}})
    with Session(engine) as session:
        _history(session)

        def plan(**kwargs: str) -> Plan:
            return plan_rollback(
                config=config,
                runbooks=load_runbooks(SHIPPED),
                session=session,
                components_for=lambda _: {"fraud-detector": components["fraud-detector"]},
                model="fraud-detector",
                **kwargs,  # type: ignore[arg-type]
            )

        implied, named = plan(), plan(runbook="immediate-rollback")
        other = plan(runbook="staged-rollback")
    assert implied.parameters["verify"] is False
    assert named.hash() == implied.hash()
    assert other.parameters["verify"] is True


def test_a_version_that_had_an_incident_keeps_the_mark_when_it_serves_again(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        for hours, version in ((0, "4"), (10, "5"), (11, "4")):
            record_deployment(
                session,
                model="fraud-detector",
                version=version,
                reason="deploy",
                actor="ci",
                at=T0 + timedelta(hours=hours),
            )
        mark_incident(session, model="fraud-detector", version="5")
        again = record_deployment(
            session,
            model="fraud-detector",
            version="5",
            reason="seen at the deployer",
            actor="rollbot",
            at=T0 + timedelta(hours=12),
        )

        assert again.had_incident
