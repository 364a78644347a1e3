"""Fixtures for integration adapters that need a real outside system."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mlflow_server import MLflowServer, mlflow_missing_reason, running_mlflow_server
from tests.support.services import unavailable


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    """One real MLflow server for the session; skipped without mlflow, except in CI."""
    reason = mlflow_missing_reason()
    if reason is not None:
        unavailable(reason)
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server
