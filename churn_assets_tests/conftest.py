"""Fixtures: a temporary CHURN_HOME with real DuckDB files and a real (SQLite) Dagster instance."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml

from churn_assets.core.sample.generate import SampleConfig, generate_sample
from churn_assets.core.sample.files import write_landing, write_truth
from churn_assets.definitions import build_definitions
from churn_assets.runner import run_pipeline
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


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Twelve months of generated data run end to end once: snapshots 2024-06 .. 2025-01, with a
    campaign each month from 2024-10 (only 2024-10's churn horizon is observed by the data's end)."""
    home = tmp_path_factory.mktemp("ml")
    settings = Settings(churn_home=home / "home", start_date=date(2024, 6, 1), max_training_rows=20_000)
    sample = generate_sample(SampleConfig(customers=1500, months=12, seed=3, campaign_first_month=9))
    write_landing(sample, settings.landing_dir)
    write_truth(sample, settings.truth_dir)
    with project_instance(home / "dagster") as instance:
        report = run_pipeline(settings, instance=instance)
        assert report.ok, report.failures
        yield settings, instance, report


@pytest.fixture
def copied(trained, tmp_path):
    """A copy of the trained home and its instance, to change without touching the original."""
    settings, _, _ = trained
    root = tmp_path / "copy"
    shutil.copytree(settings.churn_home.parent, root)
    copy = dataclasses.replace(settings, churn_home=root / "home")
    with project_instance(root / "dagster") as instance:
        yield copy, instance


def land(settings: Settings, source: str, name: str, content: str | bytes, age_seconds: float = 60) -> Path:
    """Write a file into landing/<source>/, last modified ``age_seconds`` ago (landed a minute ago,
    by default: past the settle interval), and return its path."""
    folder = settings.landing_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    backdate(path, age_seconds)
    return path


def backdate(path: Path, age_seconds: float) -> None:
    modified = time.time_ns() - int(age_seconds * 1e9)
    os.utime(path, ns=(modified, modified))


@pytest.fixture(autouse=True)
def settled_generated_files(monkeypatch):
    """Files the tests generate are complete when written; the settle interval has tests of its own."""
    monkeypatch.setenv("CHURN_SETTLE_SECONDS", "0")


def query(settings: Settings, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        return connection.execute(sql).df()


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MB file system of its own (tmpfs), for a disk that fills up; needs permission to mount."""
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here ({mounted.stderr.strip()}): the disk-full test needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_disk(mount_point: Path, leave_bytes: int = 300_000) -> Path:
    """Fill ``mount_point`` but ``leave_bytes`` with one ballast file, and return its path."""
    ballast = mount_point / "ballast"
    with open(ballast, "wb") as handle:
        handle.write(b"\0" * max(shutil.disk_usage(mount_point).free - leave_bytes, 0))
    return ballast
