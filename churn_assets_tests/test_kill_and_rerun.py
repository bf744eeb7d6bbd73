"""A ``churn-assets run`` killed with SIGKILL mid-materialization leaves no partial table, and a
re-run finishes with the same tables as a run that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from churn_assets.core.generate import SampleConfig, generate_sample, write_landing

FEATURES_STEP = "silver__customer_features"
COMPARED = {
    "silver.transactions": "select * exclude (_ingested_at) from silver.transactions order by order_id",
    "silver.customer_features": "select * from silver.customer_features order by snapshot_date, customer_id",
    "silver.churn_labels": "select * from silver.churn_labels order by snapshot_date, customer_id",
    "ml.churn_predictions": "select snapshot_date, customer_id, churn_probability, risk_segment, reason_1 "
                            "from ml.churn_predictions order by snapshot_date, customer_id",
    "gold.retention_actions": "select * exclude (model_version) from gold.retention_actions "
                              "order by snapshot_date, customer_id",
}


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ, "CHURN_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
        "CHURN_START_DATE": "2024-06-01", "CHURN_MAX_TRAINING_ROWS": "5000",
    }


def _run(home: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "churn_assets.cli", "run"], env=_env(home), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True, **popen,
    )


def _features_step_running(dagster_home: Path) -> bool:
    """Whether the features step has started and not finished, read from the run's event log."""
    if not (dagster_home / "dagster.yaml").exists() or not (dagster_home / "history").exists():
        return False
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        with dg.DagsterInstance.get() as instance:
            started = instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.STEP_START), limit=50)
            finished = instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.STEP_SUCCESS), limit=50)
    except Exception:  # the instance's storage is still being created by the run
        return False
    step_keys = lambda records: {r.event_log_entry.step_key for r in records}  # noqa: E731
    return FEATURES_STEP in step_keys(started) - step_keys(finished)


def _tables(home: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return {name: connection.sql(sql).df() for name, sql in COMPARED.items()}


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    sample = generate_sample(SampleConfig(customers=1200, months=12, seed=11))
    for name in ("killed", "clean"):
        write_landing(sample, root / name / "landing")
    return root


def test_sigkill_mid_materialization_loses_nothing_and_a_rerun_matches_a_clean_run(landed):
    killed, clean = landed / "killed", landed / "clean"
    previous_home = os.environ.get("DAGSTER_HOME")
    process = _run(killed, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not _features_step_running(killed / "dagster"):
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "the features step never started"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if previous_home is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous_home
    assert process.returncode == -signal.SIGKILL

    with duckdb.connect(str(killed / "warehouse.duckdb"), read_only=True) as connection:
        tables = {r[0] for r in connection.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
        ).fetchall()}
        # Silver was committed before the kill. The features write was in flight: its table is
        # either absent (rolled back) or complete (committed just before the kill), never partial.
        assert "silver.transactions" in tables
        features_after_kill = (
            connection.sql(COMPARED["silver.customer_features"]).df() if "silver.customer_features" in tables else None
        )

    rerun = subprocess.run([sys.executable, "-m", "churn_assets.cli", "run"], env=_env(killed), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "features and labels" in rerun.stdout  # rebuilt, not skipped as up to date
    reference = subprocess.run([sys.executable, "-m", "churn_assets.cli", "run"], env=_env(clean), capture_output=True, text=True)
    assert reference.returncode == 0, reference.stdout + reference.stderr

    after_kill, uninterrupted = _tables(killed), _tables(clean)
    if features_after_kill is not None:
        pd.testing.assert_frame_equal(features_after_kill, uninterrupted["silver.customer_features"])
    for name in COMPARED:
        assert len(after_kill[name]) > 0, name
        pd.testing.assert_frame_equal(after_kill[name], uninterrupted[name], check_exact=False, rtol=1e-9, obj=name)
