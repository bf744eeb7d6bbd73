"""Silver assets and the row-accounting check through a real instance and warehouse."""

import dataclasses

import dagster as dg
import duckdb

from churn_assets.definitions import build_definitions
from churn_assets.lib.keys import ROW_ACCOUNTING, SILVER_TRANSACTIONS
from churn_assets.lib.resources import build_resources
from churn_assets.defs.silver.transactions import row_accounting
from churn_assets.run_plan import stale_partitions
from churn_assets.runner import run_pipeline
from churn_assets_tests.conftest import land, query
from churn_assets_tests.dagster_helpers import QUIET, launch, tick

JAN = (
    "order_id,customer_id,order_ts,amount\n"
    "O1,1,2024-01-05 10:00:00,10.00\nO1,1,2024-01-05 10:00:00,10.00\nO2,,2024-01-06 11:00:00,20.00\n"
)


def _build_silver(instance, definitions):
    return definitions.resolve_job_def("build_silver").execute_in_process(
        instance=instance, run_config=QUIET, raise_on_error=False
    )


def test_silver_builds_empty_tables_before_anything_landed(settings, instance, definitions):
    result = _build_silver(instance, definitions)
    assert result.success
    assert query(settings, "select count(*) n from silver.transactions")["n"][0] == 0
    assert query(settings, "select count(*) n from silver.quarantine")["n"][0] == 0
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "row_accounting" and check.passed


def test_row_accounting_check_reports_totals(settings, instance, definitions):
    land(settings, "transactions", "jan.csv", JAN)
    launch(instance, definitions, tick(instance, settings))
    result = _build_silver(instance, definitions)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    totals = {k: v.value for k, v in check.metadata.items() if k.endswith(("_rows", "duplicates"))}
    assert totals == {"bronze_rows": 3, "silver_rows": 1, "quarantined_rows": 1, "dropped_duplicates": 1}
    # Rebuilding gives the same tables.
    before = query(settings, "select * from silver.transactions order by order_id")
    assert _build_silver(instance, definitions).success
    assert query(settings, "select * from silver.transactions order by order_id").equals(before)


UCI = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\n"
    "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850.0,United Kingdom\n"
    "536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,17850.0,United Kingdom\n"
    "C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527.0,United Kingdom\n"
    "536414,22139,,56,12/1/2010 11:52,0,,United Kingdom\n"
)


def test_an_order_line_export_becomes_orders_through_settings_alone(settings, instance):
    settings = dataclasses.replace(
        settings,
        transactions_column_map="InvoiceNo=order_id,CustomerID=customer_id,InvoiceDate=order_ts,"
        "Quantity=quantity,UnitPrice=unit_price",
        timestamp_formats="%m/%d/%Y %H:%M",
    )
    definitions = build_definitions(settings)
    land(settings, "transactions", "online_retail.csv", UCI)
    (ingestion,) = launch(instance, definitions, tick(instance, settings)).values()
    assert ingestion.success
    result = _build_silver(instance, definitions)
    assert result.success
    silver = query(settings, "select order_id, customer_id, amount, line_count from silver.transactions order by 1")
    assert silver.values.tolist() == [
        ["536365", "17850", 35.64, 2], ["536366", "17850", 11.10, 1], ["C536379", "14527", -27.5, 1]
    ]
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    totals = {k: v.value for k, v in check.metadata.items() if k.endswith(("_rows", "duplicates", "_lines"))}
    assert totals == {
        "bronze_rows": 5, "silver_rows": 3, "merged_lines": 1, "quarantined_rows": 1, "dropped_duplicates": 0
    }


def _silver_rows(settings) -> tuple[int, int]:
    counts = query(settings, "select (select count(*) from silver.transactions) s, (select count(*) from silver.quarantine) q")
    return int(counts["s"][0]), int(counts["q"][0])


def test_a_silver_build_the_row_accounting_check_never_proved_is_rebuilt(settings, instance):
    """A kill between silver's write and its check leaves a build nobody proved: the next run
    rebuilds it, even though no file landed since."""
    land(settings, "transactions", "jan.csv", JAN)
    assert run_pipeline(settings, instance=instance).ok
    complete = _silver_rows(settings)
    definitions = build_definitions(settings)
    silver = definitions.get_assets_def(SILVER_TRANSACTIONS)
    # written as an interrupted run leaves it: the table replaced, the check never run
    unproven = dg.materialize([silver], instance=instance, resources=build_resources(settings), run_config=QUIET)
    assert unproven.success and not unproven.get_asset_check_evaluations()
    with duckdb.connect(str(settings.warehouse_path)) as connection:
        connection.execute("delete from silver.quarantine")  # the half the kill did not write
    assert SILVER_TRANSACTIONS in stale_partitions(definitions, instance)
    rerun = run_pipeline(settings, instance=instance)
    assert rerun.ok, rerun.failures
    assert any("silver" in run.describe() for run in rerun.built)
    assert _silver_rows(settings) == complete
    assert stale_partitions(definitions, instance) == {}


def test_silver_found_out_of_balance_is_rebuilt_once(settings, instance):
    land(settings, "transactions", "jan.csv", JAN)
    assert run_pipeline(settings, instance=instance).ok
    complete = _silver_rows(settings)
    definitions = build_definitions(settings)
    with duckdb.connect(str(settings.warehouse_path)) as connection:
        connection.execute("delete from silver.quarantine")
    result = dg.materialize(  # the check alone, on the build as it is now
        [definitions.get_assets_def(SILVER_TRANSACTIONS), row_accounting], instance=instance,
        resources=build_resources(settings), selection=dg.AssetSelection.checks(ROW_ACCOUNTING),
        run_config=QUIET, raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert SILVER_TRANSACTIONS in stale_partitions(definitions, instance)
    rerun = run_pipeline(settings, instance=instance)
    assert rerun.ok, rerun.failures
    assert _silver_rows(settings) == complete
    assert stale_partitions(definitions, instance) == {}
