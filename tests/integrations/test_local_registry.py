"""LocalRegistry: the JSON-file registry used for demos and drills."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from integrations.errors import InvalidRequest, NotFound
from integrations.registry.base import ModelRegistry
from integrations.registry.local import LocalRegistry

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return tmp_path / "registry.json"


@pytest.fixture
def registry(registry_path: Path) -> LocalRegistry:
    """A registry with fraud-detector versions 1-5; 4 is validated, production points at 5."""
    registry = LocalRegistry(registry_path)
    for n in range(1, 6):
        tags = {"validated": "true"} if n == 4 else None
        registry.register_version("fraud-detector", str(n), source=f"s3://m/{n}", tags=tags)
    registry.set_alias("fraud-detector", "production", "5", idempotency_key="seed")
    return registry


def test_satisfies_the_registry_protocol(registry: LocalRegistry) -> None:
    assert isinstance(registry, ModelRegistry)
    assert registry.kind == "local"


def test_round_trip_through_a_fresh_instance(registry: LocalRegistry, registry_path: Path) -> None:
    registry.set_alias("fraud-detector", "production", "4", idempotency_key="rb-1")
    registry.set_version_tag("fraud-detector", "5", "rolled_back", "true", idempotency_key="t-1")

    reopened = LocalRegistry(registry_path)

    assert [v.version for v in reopened.list_versions("fraud-detector")] == list("12345")
    production = reopened.get_alias("fraud-detector", "production")
    assert production is not None
    assert (production.version, production.source) == ("4", "s3://m/4")
    assert production.tags == {"validated": "true"}
    assert production.aliases == ("production",)
    five = reopened.get_version("fraud-detector", "5")
    assert five.tags == {"rolled_back": "true"}
    assert five.aliases == ()
    assert five.status == "READY"
    assert five.created_at is not None and five.created_at.tzinfo is not None


def test_repeated_writes_are_harmless(registry: LocalRegistry) -> None:
    for _ in range(2):
        registry.set_alias("fraud-detector", "production", "4", idempotency_key="rb-1")

    assert [v.aliases for v in registry.list_versions("fraud-detector")] == [
        (),
        (),
        (),
        ("production",),
        (),
    ]


def test_re_registering_merges_tags_and_keeps_creation_time(registry: LocalRegistry) -> None:
    before = registry.get_version("fraud-detector", "4")

    after = registry.register_version("fraud-detector", "4", tags={"benchmark": "passed"})

    assert after.tags == {"validated": "true", "benchmark": "passed"}
    assert (after.source, after.created_at) == (before.source, before.created_at)


def test_unset_alias_reads_as_none(registry: LocalRegistry) -> None:
    assert registry.get_alias("fraud-detector", "staging") is None


def test_missing_file_is_an_empty_registry(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path / "nothing-here.json")

    with pytest.raises(NotFound, match="local list_versions fraud-detector"):
        registry.list_versions("fraud-detector")


UNKNOWN_MODEL_ACTIONS: dict[str, Callable[[LocalRegistry], object]] = {
    "get_version": lambda r: r.get_version("no-such-model", "1"),
    "list_versions": lambda r: r.list_versions("no-such-model"),
    "get_alias": lambda r: r.get_alias("no-such-model", "production"),
    "set_alias": lambda r: r.set_alias("no-such-model", "production", "1", idempotency_key="k"),
    "set_version_tag": lambda r: r.set_version_tag(
        "no-such-model", "1", "k", "v", idempotency_key="k"
    ),
}


@pytest.mark.parametrize("operation", UNKNOWN_MODEL_ACTIONS)
def test_unknown_model_is_not_found(registry: LocalRegistry, operation: str) -> None:
    with pytest.raises(NotFound) as caught:
        UNKNOWN_MODEL_ACTIONS[operation](registry)

    assert (caught.value.integration, caught.value.operation) == ("local", operation)
    assert "no-such-model" in caught.value.target
    assert "no such model" in str(caught.value)


def test_unknown_version_is_not_found_and_changes_nothing(
    registry: LocalRegistry, registry_path: Path
) -> None:
    before = registry_path.read_bytes()

    with pytest.raises(NotFound, match="local get_version fraud-detector version 99"):
        registry.get_version("fraud-detector", "99")
    with pytest.raises(NotFound, match="local set_alias fraud-detector alias production"):
        registry.set_alias("fraud-detector", "production", "99", idempotency_key="k")
    with pytest.raises(NotFound, match="no such version"):
        registry.set_version_tag("fraud-detector", "99", "k", "v", idempotency_key="k")

    assert registry_path.read_bytes() == before


def test_writes_leave_no_temporary_files(registry: LocalRegistry, registry_path: Path) -> None:
    registry.set_alias("fraud-detector", "production", "4", idempotency_key="rb-1")

    assert sorted(p.name for p in registry_path.parent.iterdir()) == [
        "registry.json",
        "registry.json.lock",
    ]


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ('{"models": {"fraud-detector": ', "line 1, column"),
        ("[1, 2, 3]", 'expected a JSON object with a "models" object'),
        ('{"models": {"fraud-detector": {"versions": []}}}', "model 'fraud-detector'"),
        (
            '{"models": {"m": {"versions": {}, "aliases": {"production": "7"}}}}',
            "alias 'production' points at unknown version '7'",
        ),
        (
            '{"models": {"m": {"versions": {"1": {"created_at": "2025-01-01T00:00:00"}},'
            ' "aliases": {}}}}',
            "created_at must be an ISO time with a UTC offset",
        ),
    ],
    ids=["truncated", "not-an-object", "bad-versions", "dangling-alias", "naive-time"],
)
def test_corrupt_file_names_the_file(registry_path: Path, content: str, detail: str) -> None:
    registry_path.write_text(content)
    registry = LocalRegistry(registry_path)

    with pytest.raises(InvalidRequest) as caught:
        registry.get_version("fraud-detector", "1")
    with pytest.raises(InvalidRequest):
        registry.register_version("fraud-detector", "2")

    message = str(caught.value)
    assert f"registry file {registry_path} is corrupt" in message
    assert detail in message
    assert registry_path.read_text() == content


_WRITER = """
import sys
from pathlib import Path
from integrations.registry.local import LocalRegistry

path, prefix, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
registry = LocalRegistry(path)
for i in range(count):
    registry.set_version_tag("fraud-detector", "1", f"{prefix}-{i}", str(i), idempotency_key="k")
    registry.register_version("fraud-detector", f"{prefix}-v{i}")
"""


def test_concurrent_writers_in_two_processes_lose_no_update(registry_path: Path) -> None:
    LocalRegistry(registry_path).register_version("fraud-detector", "1")
    count = 40
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(registry_path), prefix, str(count)],
            cwd=REPO_ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("a", "b")
    ]
    failures = [(w.wait(timeout=120), w.stderr.read() if w.stderr else "") for w in writers]

    assert [code for code, _ in failures] == [0, 0], failures
    registry = LocalRegistry(registry_path)
    tags = registry.get_version("fraud-detector", "1").tags
    assert len(tags) == 2 * count
    assert {f"a-{i}" for i in range(count)} | {f"b-{i}" for i in range(count)} == set(tags)
    assert len(registry.list_versions("fraud-detector")) == 1 + 2 * count
    assert json.loads(registry_path.read_text())["models"]["fraud-detector"]["aliases"] == {}
