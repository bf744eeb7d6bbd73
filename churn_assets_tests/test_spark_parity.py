"""The same landed files, dirty ones included, through ``churn-assets run`` on DuckDB and on Spark
(local mode): silver, the quarantine with its reasons, the row accounting, features and labels are
identical row for row, and so are the predictions and the plan for the newest month.

Spark needs Java; without it (``.ci/run`` installs Debian's default-jre-headless) the test skips
and says so.
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date

import pandas as pd
import pytest

from churn_assets.core.sample.files import write_landing
from churn_assets.core.sample.generate import SampleConfig, generate_sample
from churn_assets.core.silver.transactions import row_accounting_sql
from churn_assets.lib.resources import build_resources
from churn_assets.runner import run_pipeline
from churn_assets.settings import Settings
from churn_assets_tests.conftest import land, project_instance

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java: install default-jre-headless")

HEADER = "order_id,customer_id,order_ts,amount,product_category,channel\n"
# Values the two engines could read differently: offsets and zones, float ids, rounding ties,
# NaN and infinity, impossible dates, lines of one order, duplicates that agree and that conflict.
DIRTY = HEADER + "".join(f"{row}\n" for row in (
    "X1,100001,not-a-date,10,home,web", "X2,100001,2024-09-01,12;50,home,web", "X3,100002,2024-09-01,-5,home,web",
    "X4,100002,2024-09-01,1e12,home,web", "X5,100003,2099-01-01,10,home,web", "X6,,2024-09-01,10,home,web",
    ",100003,2024-09-01,10,home,web", "X7,100004.0,2024-09-02T10:00:00+02:00,7.5,,app",
    "X8, 100004 ,2024-9-5,8,home,web", "X9,100005,2024-09-05 10:00,NaN,home,web",
    "X10,100005,2024-09-05 10:00:00.123456,inf,home,web", "X11,100005,20240905,5,home,web",
    "X12,100006,2024-02-30,5,home,web", "X13,100006,2024-09-05 10:00:00Z,1.005,home,web",
    "X14,100006, 2024-09-06 ,2.675,home,web", "X15,100007,2024-09-07 23:30:00-05:00,19.99,toys,app",
    "D1,100008,2024-09-08,20,home,web", "D1,100008,2024-09-08,20,home,web", "D2,100009,2024-09-09,30,home,web",
    "D2,100010,2024-09-09,31,home,web",
))
LINES = (
    "order_id,customer_id,order_ts,quantity,unit_price,product_category,channel\n"
    "L1,100011,2024-10-01 09:00,2,3.335,home,web\nL1,100011,2024-10-01 09:00,1,0.005,home,web\n"
    "CL1,100011,2024-10-03 09:00,1,3.335,home,web\nL2,100012,2024-10-04 10:00,abc,2,home,web\n"
)
TABLES = {
    "silver.transactions": ["order_id"],
    "silver.quarantine": ["_source_file", "_row_number"],
    "silver.customer_features": ["snapshot_date", "customer_id"],
    "silver.churn_labels": ["snapshot_date", "customer_id"],
}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """One landing folder, run to the end once per engine, each in a home of its own."""
    root = tmp_path_factory.mktemp("parity")
    base = Settings(
        churn_home=root / "duckdb", start_date=date(2024, 9, 1), settle_seconds=0, max_training_rows=3000,
        model_candidates="logistic_regression",
    )
    write_landing(generate_sample(SampleConfig(customers=150, months=12, seed=11)), base.landing_dir)
    land(base, "transactions", "zz_dirty.csv", DIRTY)
    land(base, "transactions", "zz_lines.csv", LINES)
    homes = {}
    for engine in ("duckdb", "spark"):
        settings = dataclasses.replace(base, churn_home=root / engine, engine=engine)
        if engine != "duckdb":
            shutil.copytree(base.landing_dir, settings.landing_dir)
        with project_instance(root / f"{engine}-dagster") as instance:
            report = run_pipeline(settings, instance=instance)
        assert report.ok, (engine, report.failures)
        homes[engine] = settings
    return homes


def _rows(settings: Settings, sql: str, keys: list[str]) -> pd.DataFrame:
    with build_resources(settings)["warehouse"].get_connection() as connection:
        frame = connection.sql(sql).to_arrow_table().to_pandas()
    return frame.sort_values(keys).reset_index(drop=True)


def _assert_identical(both, sql: str, keys: list[str]) -> None:
    duck, spark = (_rows(both[engine], sql, keys) for engine in ("duckdb", "spark"))
    assert list(duck.columns) == list(spark.columns)
    differing = duck.merge(spark, how="outer", indicator=True)
    assert differing[differing["_merge"] != "both"].empty, differing[differing["_merge"] != "both"].to_string()
    pd.testing.assert_frame_equal(duck, spark, check_exact=True)
    assert len(duck) > 0


@pytest.mark.parametrize("table", TABLES)
def test_the_set_based_tables_are_identical_row_for_row(both, table):
    _assert_identical(both, f"select * from {table}", TABLES[table])


def test_the_quarantine_reasons_and_the_row_accounting_are_identical(both):
    _assert_identical(both, "select reason, count(*) as n from silver.quarantine group by 1", ["reason"])
    accounting = row_accounting_sql("bronze.transactions", "silver.transactions", "silver.quarantine")
    _assert_identical(both, accounting, ["_source_file"])
    reasons = set(_rows(both["spark"], "select distinct reason from silver.quarantine", ["reason"])["reason"])
    assert {"unparseable_order_ts", "unparseable_amount", "amount_out_of_range", "future_order_ts",
            "missing_customer_id", "missing_order_id", "exact_duplicate", "conflicting_duplicate"} <= reasons


@pytest.mark.parametrize("table", ["ml.churn_predictions", "gold.retention_actions"])
def test_the_newest_months_predictions_and_plan_are_identical(both, table):
    newest = _rows(both["duckdb"], f"select max(snapshot_date) as s from {table}", ["s"])["s"][0]
    _assert_identical(
        both, f"select * from {table} where snapshot_date = timestamp '{newest:%Y-%m-%d} 00:00:00'", ["customer_id"]
    )


def test_landed_timestamps_parse_alike_with_formats_and_a_time_zone(both, tmp_path):
    """Timestamp rules the sample does not use: strptime formats (the UCI export's, a compact
    date) and a zone for times without an offset, on text as odd as exports hold: the hour that
    repeats when clocks go back, the hour after it, offsets after a space."""
    import duckdb

    from churn_assets.core.ingestion.sources import TimestampRules, timestamp_sql
    from churn_assets.core.spark.session import spark_session
    from churn_assets.core.spark.warehouse import SparkWarehouse

    texts = ["12/1/2010 8:26", "01/12/2011 17:05", "13/1/2011 8:26", "20240905", "2024-03-31 02:30:00",
             "2024-10-27 02:30", "2024-10-27 03:30", "2024-09-02T10:00:00+02:00", "2024-09-02 10:00:00 -0500",
             "2024-09-02 10:00:00 +05:30", "2024-9-5", "", None, "yesterday"]
    rules = TimestampRules(formats=("%m/%d/%Y %H:%M", "%Y%m%d"), timezone="Europe/Berlin")
    sql = f"select t, {timestamp_sql('t', rules)} as parsed from landed order by t"
    frame = pd.DataFrame({"t": pd.array(texts, dtype="string")})
    with duckdb.connect() as duck:
        duck.register("landed", frame)
        expected = duck.sql(sql).to_arrow_table().to_pandas()
    with SparkWarehouse(spark_session(), tmp_path / "spark") as spark:
        spark.register("landed", frame)
        found = spark.sql(sql).to_arrow_table().to_pandas()
    pd.testing.assert_frame_equal(expected.sort_values("t", na_position="first").reset_index(drop=True),
                                  found.sort_values("t", na_position="first").reset_index(drop=True), check_exact=True)
    assert expected["parsed"].notna().sum() >= 7


def test_spark_wrote_parquet_folders_and_no_duckdb_file(both):
    spark = both["spark"]
    assert not spark.warehouse_path.exists()
    assert any(spark.spark_warehouse_path.glob("silver/customer_features/*/*.parquet"))
