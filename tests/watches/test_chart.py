"""The evidence chart posted with a degraded verdict, and matplotlib kept out of start-up."""

from __future__ import annotations

import struct
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from bot.config import parse_config
from bot.detection.evidence import Decision, DetectionState, MetricEvidence
from bot.detection.rules import StepSeries
from bot.watches.chart import evidence_panels, render_evidence_chart
from bot.watches.reader import WatchSamples
from bot.watches.targets import WatchTarget
from tests.watches.fakes import FakePrometheus, RecordingNotifier, Serving
from tests.watches.test_evaluate import CONFIG, DEPLOY, NOW, prometheus, run
from tests.watches.test_evaluate_robustness import deploy

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def evidence_of(notifier: RecordingNotifier) -> dict[str, object]:
    [payload] = [payload for kind, payload in notifier.posts if kind == "evidence_posted"]
    return payload


def test_a_degraded_verdict_posts_its_evidence_with_a_chart(engine: Engine) -> None:
    config = parse_config(CONFIG)
    deploy(engine, "fraud", NOW - DEPLOY)
    notifier = RecordingNotifier()

    [evaluation] = run(engine, config, prometheus(0.08), notifier=notifier)

    assert evaluation.state == "degraded"
    chart = evidence_of(notifier)["chart"]
    assert isinstance(chart, bytes) and chart.startswith(PNG_SIGNATURE)
    assert 10_000 < len(chart) < 500_000
    assert png_size(chart) == (900, 350)  # one panel: the error rate


def test_a_healthy_verdict_posts_nothing(engine: Engine) -> None:
    config = parse_config(CONFIG)
    deploy(engine, "fraud", NOW - DEPLOY)
    notifier = RecordingNotifier()

    [evaluation] = run(engine, config, prometheus(0.01), notifier=notifier)

    assert evaluation.state == "healthy" and notifier.posts == []


def test_a_chart_failure_still_posts_the_numbers(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(CONFIG)
    deploy(engine, "fraud", NOW - DEPLOY)
    notifier = RecordingNotifier()

    def broken(*_: object) -> bytes:
        raise RuntimeError("no fonts")

    monkeypatch.setattr("bot.watches.chart.render_evidence_chart", broken)
    run(engine, config, prometheus(0.08), notifier=notifier)

    payload = evidence_of(notifier)
    assert payload["chart"] is None and "degraded" in str(payload["summary"])
    assert notifier.kinds() == ["incident_opened", "evidence_posted", "proposal_created"]


def test_the_panel_holds_per_step_rates_baseline_boundary_and_judged_window() -> None:
    watch = parse_config(CONFIG).models["fraud"].watch
    assert watch is not None
    target = WatchTarget("fraud", watch, "2", DEPLOY, "1")
    start = DEPLOY.timestamp()
    candidate = StepSeries(
        start,
        60,
        {"error_rate:numerator": [1.0, None, 8.0], "error_rate:denominator": [100.0, None, 100.0]},
    )
    baseline = StepSeries(start - 120, 60, {"error_rate:numerator": [1.0, 2.0]})
    evidence = MetricEvidence(
        "error_rate",
        "error rate",
        DetectionState.DEGRADED,
        "error rate 4.5% vs 1%",
        baseline_value=0.01,
        limit_value=0.015,
        window_seconds=120,
    )
    decision = Decision(DetectionState.DEGRADED, start + 180, (evidence,))
    samples = WatchSamples(baseline, candidate, start + 180, "before_deploy")

    [panel] = evidence_panels(target, decision, samples)

    assert panel.candidate == [(start + 60, 1.0), (start + 180, 8.0)]  # percent; gap left out
    assert (panel.baseline_level, panel.limit, panel.unit) == (1.0, 1.5, "%")
    assert panel.window == (start + 60, start + 180)
    assert panel.deployed_at == start
    assert panel.safe == []  # no request counts for the safe version: no rate to draw


def test_no_readings_means_no_chart() -> None:
    watch = parse_config(CONFIG).models["fraud"].watch
    assert watch is not None
    target = WatchTarget("fraud", watch, "2", DEPLOY, "1")
    empty = StepSeries(DEPLOY.timestamp(), 60, {})
    evidence = MetricEvidence("error_rate", "error rate", DetectionState.DEGRADED, "")
    decision = Decision(DetectionState.DEGRADED, NOW.timestamp(), (evidence,))

    samples = WatchSamples(empty, empty, NOW.timestamp(), "before_deploy")
    assert render_evidence_chart(target, decision, samples) is None


def test_starting_the_web_app_and_the_worker_does_not_load_matplotlib() -> None:
    code = (
        "import sys, bot.web.app, bot.worker.jobs, bot.watches.evaluate; "
        "print('matplotlib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "False"


def test_an_old_deploy_is_charted_over_its_lookback(engine: Engine) -> None:
    config = parse_config(CONFIG)
    age = timedelta(days=30)
    deploy(engine, "fraud", age)
    notifier = RecordingNotifier()
    deployed_at = (NOW - age).timestamp()
    source = FakePrometheus(
        [
            Serving("fraud", "1", deployed_at - 7200, deployed_at, rps=20, error_rate=0.01),
            Serving("fraud", "2", deployed_at, NOW.timestamp(), rps=20, error_rate=0.08),
        ]
    )

    run(engine, config, source, notifier=notifier)

    chart = evidence_of(notifier)["chart"]
    assert isinstance(chart, bytes) and chart.startswith(PNG_SIGNATURE)
    assert png_size(chart) == (900, 350)
