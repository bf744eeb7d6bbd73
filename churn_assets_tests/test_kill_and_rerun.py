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

from churn_assets.core.sample.generate import SampleConfig, generate_sample
from churn_assets.core.sample.files import write_landing

FEATURES_STEP = "silver__customer_features"
COMPARED = {
    "silver.transactions": "select * from silver.transactions order by order_id",
    "silver.customer_features": "select * from silver.customer_features order by snapshot_date, customer_id",
    "silver.churn_labels": "select * from silver.churn_labels order by snapshot_date, customer_id",
    "ml.churn_predictions": "select snapshot_date, customer_id, churn_probability, risk_segment, reason_1 "
                            "from ml.churn_predictions order by snapshot_date, customer_id",
    "gold.retention_actions": "select * from gold.retention_actions "
                              "order by snapshot_date, customer_id",
}


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ, "CHURN_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
        "CHURN_START_DATE": "2024-09-01", "CHURN_MAX_TRAINING_ROWS": "5000", "PYTHONUNBUFFERED": "1",
    }


def _run(home: Path, log: Path) -> subprocess.Popen:
    """``churn-assets run`` in its own process group, output to ``log`` (a pipe nobody reads would
    fill and stall the run)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "churn_assets.cli", "run"], env=_env(home), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


def _step_running(instance: dg.DagsterInstance, step_key: str) -> bool:
    """Whether ``step_key`` has started and not yet finished in a run that is still going."""
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        events = instance.all_logs(run.run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS})
        states = {e.dagster_event.event_type for e in events if e.step_key == step_key}
        if states == {dg.DagsterEventType.STEP_START}:
            return True
    return False


def _kill_during(process: subprocess.Popen, dagster_home: Path, step_key: str, log: Path, timeout: float = 300) -> None:
    """SIGKILL ``process``'s group as soon as ``step_key`` is seen running."""
    deadline = time.monotonic() + timeout
    # Opened only once the run is ingesting: two processes creating the same SQLite storage race.
    while "Ingesting" not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"the run never started ingesting:\n{log.read_text()}"
        time.sleep(0.1)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        while not _step_running(instance, step_key):
            assert process.poll() is None, f"the run ended before {step_key} was seen:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{step_key} never started:\n{log.read_text()}"
            time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tables(home: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return {name: connection.sql(sql).df() for name, sql in COMPARED.items()}


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    sample = generate_sample(SampleConfig(customers=800, months=12, seed=11))
    for name in ("killed", "clean"):
        write_landing(sample, root / name / "landing")
    return root


def test_sigkill_mid_materialization_loses_nothing_and_a_rerun_matches_a_clean_run(landed):
    killed, clean = landed / "killed", landed / "clean"
    # The uninterrupted reference runs alongside, in a home of its own.
    reference = _run(clean, landed / "clean.log")
    process = _run(killed, landed / "killed.log")
    _kill_during(process, killed / "dagster", FEATURES_STEP, landed / "killed.log")
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
    assert "silver/customer_features" in rerun.stdout  # rebuilt, not skipped as up to date
    # The killed run held the one DuckDB pool slot; without releasing it the re-run would wait forever.
    assert "left unfinished by a process that no longer exists" in rerun.stdout
    assert reference.wait(timeout=600) == 0, (landed / "clean.log").read_text()

    after_kill, uninterrupted = _tables(killed), _tables(clean)
    if features_after_kill is not None:
        pd.testing.assert_frame_equal(features_after_kill, uninterrupted["silver.customer_features"])
    for name in COMPARED:
        assert len(after_kill[name]) > 0, name
        pd.testing.assert_frame_equal(after_kill[name], uninterrupted[name], check_exact=False, rtol=1e-9, obj=name)
