"""Silver assets and the row-accounting check through a real instance and warehouse."""

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
