"""Golden postmortems of a recorded incident, and incidents that stopped short of the end."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import RollbotConfig
from bot.errors import ConfigError, NotFoundError
from bot.incidents import service as incidents
from bot.postmortem.flows import build_facts, postmortem_for_slack, render_document
from tests.postmortem.builders import GENERATED_AT, Ending, record_incident

GOLDEN = Path(__file__).with_name("golden")
# ROLLBOT_UPDATE_GOLDEN=1 rewrites the golden files; review the diff before committing it.
UPDATE = os.environ.get("ROLLBOT_UPDATE_GOLDEN") == "1"


def _document(engine: Engine, ending: Ending, format: str = "md") -> str:
    with Session(engine) as session:
        recorded = record_incident(session, ending=ending)
        facts = build_facts(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    return render_document(
        facts,
        format="html" if format == "html" else "md",
        chart_src="chart.png",
        correction_url="/incidents/1/postmortem/key-times" if format == "html" else None,
    )


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


@pytest.mark.parametrize("format", ["md", "html"])
def test_the_recorded_incident_matches_its_golden_postmortem(engine: Engine, format: str) -> None:
    _check_golden(f"full.{format}", _document(engine, "full", format))


def test_the_key_times_and_durations_are_the_recorded_ones(engine: Engine) -> None:
    with Session(engine) as session:
        recorded = record_incident(session)
        facts = build_facts(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    durations = {fact.label: fact.seconds for fact in facts.durations}
    assert durations == {
        "Time to detect": 8 * 60,
        "Time to acknowledge": 3 * 60,
        "Time to approve": 5 * 60,
        "Time to mitigate": 8 * 60 + 19,
        "Time to verify": 5 * 60 + 41,
        "Time to resolve": 30 * 60,
    }
    assert [(c.component, c.from_version, c.to_version) for c in facts.versions.changes] == [
        ("features", "13", "12"),
        ("model", "5", "4"),
    ]
    assert facts.impact.seconds == 16 * 60 + 19


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        ("rejected", ["not reached: the proposed rollback was rejected", "| bob | reject |"]),
        ("failed", ["not reached: the rollback run did not complete", "| failed: deployer"]),
        ("manual", ["No rollback was proposed during this incident.", "No runbook ran"]),
        ("no_metrics", ["| Degradation start | not known |", "No detection evidence"]),
    ],
)
def test_an_incident_with_missing_stages_renders_without_gaps(
    engine: Engine, ending: Ending, expected: list[str]
) -> None:
    text = _document(engine, ending)
    for phrase in expected:
        assert phrase in text
    assert "None" not in text
    # No empty table cell, except in the follow-up table left for the team to fill in.
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert [row for row in rows if re.search(r"\|\s*\|", row)] == ["| | | | |"]


def test_html_of_an_unfinished_incident_names_what_was_not_reached(engine: Engine) -> None:
    html = _document(engine, "failed", "html")
    assert "not reached: the rollback run did not complete" in html
    assert "None" not in html
    assert '<img class="chart" src="chart.png"' in html


def test_the_html_page_escapes_what_people_typed(engine: Engine) -> None:
    with Session(engine) as session:
        recorded = record_incident(session)
        incident = incidents.get(session, incident_id=recorded.incident_id)
        incidents.add_note(
            session,
            incident=incident,
            text="<script>alert(1)</script>",
            actor="eve",
            source="slack",
            pinned=True,
        )
        session.commit()
        facts = build_facts(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    html = render_document(facts, format="html", chart_src="chart.png")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_team_template_overrides_the_shipped_one(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "postmortem.md.j2").write_text(
        "# {{ facts.title }}\n{% for k in facts.key_times %}{{ k.label }}: {{ k.at | when }}\n"
        "{% endfor %}"
    )
    with Session(engine) as session:
        recorded = record_incident(session, ending="rejected")
        facts = build_facts(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    text = render_document(facts, format="md", config=_config(tmp_path))
    assert text.splitlines()[:3] == [
        "# fraud-scorer 5 degraded",
        "Degradation start: 2026-03-01 10:02:00 UTC",
        "Detection: 2026-03-01 10:10:00 UTC",
    ]
    assert "Approval: not reached" in text
    # Only the Markdown template was replaced: HTML still comes from the shipped one.
    assert "<h2>Key times</h2>" in render_document(
        facts, format="html", config=_config(tmp_path), chart_src="chart.png"
    )


def test_a_template_naming_an_unknown_field_fails_with_its_file_and_line(
    engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "postmortem.md.j2").write_text("# {{ facts.title }}\n{{ facts.owner }}\n")
    with Session(engine) as session:
        recorded = record_incident(session, ending="manual")
        facts = build_facts(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    with pytest.raises(ConfigError, match=r"postmortem\.md\.j2:2: .*owner"):
        render_document(facts, format="md", config=_config(tmp_path))


def test_a_sandboxed_template_cannot_reach_python_internals(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "postmortem.md.j2").write_text("{{ facts.__class__.__init__.__globals__ }}")
    with Session(engine) as session:
        recorded = record_incident(session, ending="manual")
        facts = build_facts(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    with pytest.raises(ConfigError, match=r"postmortem\.md\.j2"):
        render_document(facts, format="md", config=_config(tmp_path))


def test_an_unknown_incident_is_not_found(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(NotFoundError, match="incident 42"):
        build_facts(session, incident_id=42)


def test_slack_gets_a_summary_the_markdown_and_the_chart(engine: Engine) -> None:
    with Session(engine) as session:
        recorded = record_incident(session)
        result = postmortem_for_slack(session, incident_id=recorded.incident_id, now=GENERATED_AT)
    assert result.summary.startswith("Version 5 of fraud-scorer was degraded from 10:02 UTC")
    assert result.markdown.decode().startswith("# Postmortem: fraud-scorer 5 degraded")
    assert f"]({result.png_filename})" in result.markdown.decode()
    assert result.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert result.markdown_filename == "incident-1-postmortem.md"


def _config(templates_dir: Path) -> RollbotConfig:
    return RollbotConfig.model_validate({"postmortem": {"templates_dir": str(templates_dir)}})


@pytest.mark.parametrize("format", ["md", "html"])
def test_an_alert_incident_without_a_known_version_still_reads_well(
    engine: Engine, format: str
) -> None:
    from bot.incidents import service as incidents

    with Session(engine) as session:
        incident, _ = incidents.open_or_join(
            session,
            model="churn",
            title="ModelErrorRateHigh on churn",
            actor="alertmanager",
            source="alertmanager",
        )
        session.commit()
        assert incident.id is not None
        facts = build_facts(session, incident_id=incident.id, now=GENERATED_AT)

    text = render_document(facts, format="html" if format == "html" else "md")

    assert "What about the new version made it behave differently" in text
    assert "version the new version" not in text
