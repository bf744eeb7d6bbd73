"""The console script as a user runs it: a fresh CHURN_HOME, a persistent Dagster instance."""

import gzip
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from churn_assets.core.ingestion.parquet import read_parquet

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
    assert "generating sample data into it first" in result.stdout
    assert "bronze.transactions" in result.stdout
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute("select count(*) from bronze.transactions").fetchall()[0][0]
        silver = connection.execute("select count(*) from silver.transactions").fetchall()[0][0]
        verdicts = connection.execute("select verdict, count(*), sum(rows) from bronze.landing_ledger group by 1").fetchall()
        bronze = connection.execute(
            "select (select count(*) from bronze.transactions) + (select count(*) from bronze.customers)"
            " + (select count(*) from bronze.web_sessions)"
        ).fetchall()[0][0]
    assert rows > 1000
    landed = len([p for p in (home / "landing").rglob("*") if p.is_file()])
    assert verdicts == [("ingested", landed, bronze)]  # every landed file and every row accounted for
    assert f"Landing ledger: {landed} file(s): {landed} ingested" in result.stdout
    assert silver == rows  # clean sample data: nothing quarantined
    assert (home / "truth" / "customers_truth.parquet").exists()
    assert (home / "dagster" / "dagster.yaml").read_text() == (PROJECT_ROOT / "dagster.yaml").read_text()
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_run_records()
        assert {r.dagster_run.job_name for r in runs} == {
            "ingest_transactions", "ingest_customers", "ingest_web_sessions", "refresh_tables"  # the ledger rides with silver
        }
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)


def test_run_never_generates_into_a_landing_folder_that_holds_files_and_refuses_what_it_cannot_read(tmp_path):
    """Files a real export holds that the pipeline cannot read (JSON, a spreadsheet, a subfolder)
    are refused by name with what to do, the run exits 1, no sample data is mixed into the user's
    folder, and the gzip-compressed CSV beside them is ingested."""
    home = tmp_path / "home"
    landing = home / "landing"
    orders = b"order_id,customer_id,order_ts,amount\n1,2,2024-05-01T10:00:00+02:00,3\n2,3,2024-05-02,4\n"
    for rel, content in {
        "transactions/orders_2024.json": b"{}", "customers/crm.xlsx": b"PK",
        "transactions/2024/05/orders.csv": orders, "transactions/orders_2024-05.csv.gz": gzip.compress(orders),
    }.items():
        (landing / rel).parent.mkdir(parents=True, exist_ok=True)
        (landing / rel).write_bytes(content)
    result = _cli("run", env_extra={"CHURN_HOME": str(home)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "generating sample data" not in result.stdout
    assert not (home / "truth").exists()
    assert sorted(p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file()) == [
        "customers/crm.xlsx", "transactions/2024/05/orders.csv", "transactions/orders_2024-05.csv.gz",
        "transactions/orders_2024.json",
    ]
    assert "3 problem(s)" in result.stdout
    assert "refused transactions/orders_2024.json: .json files are not read; export it as CSV or Parquet" in result.stdout
    assert "refused customers/crm.xlsx: .xlsx files are not read; save the sheet as CSV (UTF-8)" in result.stdout
    assert "refused transactions/2024/05/orders.csv: files in subfolders are not read" in result.stdout
    # the summary gives every file its verdict
    assert "Landing ledger: 4 file(s): 1 ingested, 3 refused" in result.stdout
    assert "ingested          transactions/orders_2024-05.csv.gz: 2 rows" in result.stdout
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        ingested = connection.execute(
            "select _source_file, order_ts from silver.transactions order by order_id"
        ).fetchall()
    assert [(f, str(ts)) for f, ts in ingested] == [
        ("orders_2024-05.csv.gz", "2024-05-01 08:00:00"), ("orders_2024-05.csv.gz", "2024-05-02 00:00:00")
    ]


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


def test_generating_again_into_a_home_adds_to_its_truth_and_report_prints_its_table(tmp_path):
    """The README's sequence: run on a fresh home, land more generated months, then report."""
    home = tmp_path / "home"
    env = {
        "CHURN_HOME": str(home), "CHURN_SAMPLE_CUSTOMERS": "1500", "CHURN_SAMPLE_MONTHS": "12",
        "CHURN_START_DATE": "2024-06-01", "CHURN_MAX_TRAINING_ROWS": "5000",
    }
    assert _cli("run", env_extra=env, timeout=900).returncode == 0
    more = _cli("generate", "--customers", "500", "--start", "2025-01-01", "--months", "2",
                "--dirty-share", "0.02", env_extra=env)
    assert more.returncode == 0, more.stderr
    assert "customer ids from 101501" in more.stdout
    truth = read_parquet(home / "truth" / "customers_truth.parquet")
    assert len(truth) == 2000 and truth["customer_id"].is_unique
    report = _cli("report", env_extra=env)
    assert report.returncode == 0, report.stderr
    assert "optimised plan" in report.stdout and "oracle (knows the truth)" in report.stdout
    assert "Traceback" not in report.stdout + report.stderr
    # The second sample's orders never reuse the first's order ids.
    first = pd.concat(pd.read_csv(p, dtype=str) for p in (home / "landing" / "transactions").glob("transactions_2024-*.csv"))
    second = pd.read_csv(home / "landing" / "transactions" / "transactions_2025-02_101501.csv", dtype=str)
    assert not set(first["order_id"]) & set(second["order_id"])


def test_generating_over_other_latent_customers_is_refused_naming_the_options(tmp_path):
    env = {"CHURN_HOME": str(tmp_path / "home")}
    assert _cli("generate", "--customers", "100", "--months", "2", env_extra=env).returncode == 0
    clash = _cli("generate", "--customers", "100", "--months", "2", "--seed", "9", "--id-offset", "100001",
                 env_extra=env)
    assert clash.returncode == 2
    assert clash.stderr.count("\n") == 1 and "Traceback" not in clash.stderr
    assert "--id-offset 100101" in clash.stderr and "--replace-truth" in clash.stderr
    replaced = _cli("generate", "--customers", "100", "--months", "2", "--seed", "9", "--id-offset", "100001",
                    "--replace-truth", env_extra=env)
    assert replaced.returncode == 0, replaced.stderr
    assert len(read_parquet(tmp_path / "home" / "truth" / "customers_truth.parquet")) == 100


def test_report_on_a_truth_that_covers_too_few_customers_says_what_to_do(tmp_path):
    home = tmp_path / "home"
    env = {"CHURN_HOME": str(home)}
    home.mkdir()
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        for schema in ("gold", "silver"):
            connection.execute(f"create schema {schema}")
        connection.execute(
            "create table gold.customer_value as select date '2025-01-01' as snapshot_date, 'X' || i as customer_id, "
            "0.5 as churn_probability, 'Medium' as risk_segment, 100.0 as expected_value, 50.0 as revenue_at_risk, "
            "'run_rate' as value_method from range(10) t(i)"
        )
        connection.execute(
            "create table silver.customer_features as select date '2025-01-01' as snapshot_date, 'X' || i as customer_id, "
            "'vip' as segment, true as marketing_opt_in, 40.0 as avg_order_value from range(10) t(i)"
        )
    assert _cli("generate", "--customers", "50", "--months", "2", env_extra=env).returncode == 0
    result = _cli("report", env_extra=env)
    assert result.returncode == 2
    assert result.stderr.startswith("churn-assets report: 10 of 10 customers of snapshot 2025-01-01 are not in")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("command", [
    ["generate", "--customers", "10"], ["run"], ["dev"], ["report"], ["score", "--customer", "1"],
    ["settings"], ["simulate", "--months", "1"],
])
def test_every_subcommand_turns_an_expected_error_into_one_line_and_status_2(tmp_path, command):
    broken = tmp_path / "not-a-folder"
    broken.write_text("a file where the home should be")
    env = {"CHURN_HOME": str(broken), "DAGSTER_HOME": str(broken / "dagster")}
    if command == ["settings"]:
        env["CHURN_BUDGET"] = "a lot"  # settings has no home to break; a bad value is its expected error
    result = _cli(*[part.format(home=broken) for part in command], env_extra=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"churn-assets {command[0]}: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(broken) in result.stderr or "CHURN_BUDGET" in result.stderr
