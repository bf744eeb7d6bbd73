"""The console script as a user runs it: a fresh CHURN_HOME, a persistent Dagster instance."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, env_extra, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "DAGSTER_HOME"))}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "churn_assets.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT,
    )


def test_run_on_an_empty_home_generates_ingests_and_leaves_runs_in_the_instance(tmp_path):
    home = tmp_path / "home"
    env = {"CHURN_HOME": str(home), "CHURN_SAMPLE_CUSTOMERS": "300", "CHURN_SAMPLE_MONTHS": "4"}
    result = _cli("run", env_extra=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "generating sample data first" in result.stdout
    assert "bronze.transactions" in result.stdout
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute("select count(*) from bronze.transactions").fetchall()[0][0]
        silver = connection.execute("select count(*) from silver.transactions").fetchall()[0][0]
    assert rows > 1000
    assert silver == rows  # clean sample data: nothing quarantined
    assert (home / "truth" / "customers_truth.parquet").exists()
    assert (home / "dagster" / "dagster.yaml").read_text() == (PROJECT_ROOT / "dagster.yaml").read_text()
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_run_records()
        assert {r.dagster_run.job_name for r in runs} == {
            "ingest_transactions", "ingest_customers", "ingest_web_sessions", "build_silver"
        }
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)


def test_generate_writes_landing_files_with_the_given_options(tmp_path):
    home = tmp_path / "home"
    result = _cli(
        "generate", "--customers", "200", "--months", "2", "--start", "2025-03-01",
        "--dirty-share", "0.05", "--format", "parquet", env_extra={"CHURN_HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (home / "landing" / "transactions").iterdir())
    assert names == [
        "transactions_2025-03.parquet", "transactions_2025-04.parquet", "transactions_legacy_export.parquet"
    ]


def test_bad_setting_is_reported_not_a_traceback(tmp_path):
    result = _cli("settings", env_extra={"CHURN_START_DATE": "2024-02-30"})
    assert result.returncode == 2
    assert "CHURN_START_DATE='2024-02-30' is not a valid date" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_lists_every_variable(tmp_path):
    result = _cli("settings", env_extra={"CHURN_HOME": str(tmp_path)})
    assert result.returncode == 0
    for variable in ("CHURN_HOME", "CHURN_START_DATE", "CHURN_HORIZON_DAYS", "CHURN_SEED", "DAGSTER_HOME"):
        assert variable in result.stdout
    assert str(tmp_path) in result.stdout


def test_definitions_validate_with_both_clis(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    env["CHURN_HOME"] = str(tmp_path)
    for command in (["dagster", "definitions", "validate", "-w", "workspace.yaml"], ["dg", "check", "defs"]):
        result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
