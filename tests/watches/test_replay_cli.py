"""``rollbot replay`` as a user runs it: JSON lines, a table, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from bot.detection.scenario import replay_files
from tests.support.processes import run_rollbot

SCENARIOS = Path("/work/shared/scenarios")
STEP = {
    "name": "tiny-step",
    "kind": "step",
    "step_seconds": 60,
    "start": 1767225600,
    "deploy_at": 1767225600 + 3600,
    "baseline_version": "1",
    "candidate_version": "2",
    "boundaries": {"error_rate": {"max_ratio_to_baseline": 1.5}},
    "min_sustain_seconds": 180,
    "series": {
        "requests": [600] * 60 + [600] * 60,
        "errors": [6] * 60 + [60] * 60,
    },
    "truth": {"degraded_from": 1767225600 + 3600},
}


def write(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(content) if not isinstance(content, str) else content)
    return path


def test_json_lines_match_the_live_watch_replay(tmp_path: Path) -> None:
    healthy = dict(STEP, name="tiny-healthy", series={"requests": [600] * 120, "errors": [6] * 120})
    files = [write(tmp_path, "a.json", STEP), write(tmp_path, "b.json", healthy)]

    result = run_rollbot(["replay", *map(str, files), "--json"], env={"PATH": "/usr/bin:/bin"})

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["name"] for line in lines] == ["tiny-step", "tiny-healthy"]
    assert lines == list(replay_files(files))
    assert lines[0]["proposed_at"] is not None and lines[0]["proposed_at"] > STEP["deploy_at"]
    assert lines[1]["proposed_at"] is None


def test_without_json_a_readable_table(tmp_path: Path) -> None:
    result = run_rollbot(["replay", str(write(tmp_path, "a.json", STEP))], env={"PATH": "/usr/bin"})

    assert result.returncode == 0
    header, row = result.stdout.splitlines()
    assert header.startswith("scenario") and row.startswith("tiny-step") and "degraded" in row


def test_a_malformed_file_fails_with_one_line_naming_file_and_field(tmp_path: Path) -> None:
    bad = dict(STEP)
    del bad["step_seconds"]
    path = write(tmp_path, "bad.json", bad)

    result = run_rollbot(["replay", str(path), "--json"], env={"PATH": "/usr/bin"})

    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"rollbot: {path}: missing field 'step_seconds'"]


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.json", '{\n"name": \n')
    result = run_rollbot(["replay", str(path)], env={"PATH": "/usr/bin"})

    assert result.returncode == 1 and "broken.json: line 3: not valid JSON" in result.stderr


def test_a_bad_file_after_good_ones_prints_no_results(tmp_path: Path) -> None:
    good = write(tmp_path, "good.json", STEP)
    bad = write(tmp_path, "bad.json", dict(STEP, step_seconds=0))

    for extra in ([], ["--json"]):
        result = run_rollbot(["replay", str(good), str(bad), *extra], env={"PATH": "/usr/bin"})

        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.startswith(f"rollbot: {bad}: ")
