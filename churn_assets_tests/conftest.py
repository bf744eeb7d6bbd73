"""Fixtures: a temporary CHURN_HOME with real DuckDB files and a real (SQLite) Dagster instance."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml

from churn_assets.definitions import build_definitions
from churn_assets.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(churn_home=tmp_path / "home", start_date=date(2024, 4, 1))


PROJECT_ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def project_instance(home: Path):
    """A real SQLite-backed instance in ``home``, configured by the project's own dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    overrides = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as instance:
        yield instance


@pytest.fixture
def instance(tmp_path: Path):
    with project_instance(tmp_path / "dagster_home") as instance:
        yield instance


@pytest.fixture
def definitions(settings: Settings) -> dg.Definitions:
    return build_definitions(settings)


def land(settings: Settings, source: str, name: str, content: str | bytes) -> Path:
    """Write a file into landing/<source>/ and return its path."""
    folder = settings.landing_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def query(settings: Settings, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        return connection.execute(sql).df()
