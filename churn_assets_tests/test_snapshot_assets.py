"""Monthly snapshot assets through a real instance: ranges, empty months, unobserved horizons."""

from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from churn_assets_tests.conftest import land, query
from churn_assets_tests.dagster_helpers import QUIET, launch, tick

HISTORY = (
    "order_id,customer_id,order_ts,amount\n"
    "O1,1,2024-04-10 10:00:00,10.00\nO2,2,2024-04-20 10:00:00,20.00\n"
    "O3,1,2024-05-15 10:00:00,15.00\nO4,1,2024-08-15 10:00:00,15.00\n"
)


def _snapshots(instance, definitions, first, last):
    return definitions.resolve_job_def("build_snapshots").execute_in_process(
        instance=instance,
        run_config=QUIET,
        raise_on_error=False,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
    )


def test_snapshots_features_labels_and_checks(settings, instance, definitions):
    land(settings, "transactions", "history.csv", HISTORY)
    launch(instance, definitions, tick(instance, settings))
    assert definitions.resolve_job_def("build_silver").execute_in_process(instance=instance, run_config=QUIET).success
    result = _snapshots(instance, definitions, "2024-04-01", "2024-06-01")
    assert result.success
    assert {(c.check_name, c.passed) for c in result.get_asset_check_evaluations()} == {
        ("unique_customer_per_snapshot", True),
        ("no_data_at_or_after_snapshot", True),
    }
    features = query(settings, "select strftime(snapshot_date, '%Y-%m-%d') s, customer_id, frequency from silver.customer_features order by 1, 2")
    # 2024-04-01 has no history yet: an empty month, not an error.
    assert features.values.tolist() == [["2024-05-01", "1", 1], ["2024-05-01", "2", 1], ["2024-06-01", "1", 2], ["2024-06-01", "2", 1]]
    # Data reaches 2024-08-15 only: the 90-day horizon of 2024-05-01 (to 2024-07-30) is observed,
    # that of 2024-06-01 (to 2024-08-30) is not, so it has no labels yet.
    labels = query(settings, "select strftime(snapshot_date, '%Y-%m-%d') s, customer_id, churned from silver.churn_labels order by 1, 2")
    assert labels.values.tolist() == [["2024-05-01", "1", 0], ["2024-05-01", "2", 1]]
    labels_event = next(
        e for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["silver", "churn_labels"] and e.partition == "2024-06-01"
    )
    assert labels_event.materialization.metadata["snapshots_without_labels_yet"].value == "2024-06-01"
    # Each partition of the range carries its own row count, not the range's total.
    row_counts = {
        (e.asset_key.path[-1], e.partition): e.materialization.metadata["dagster/row_count"].value
        for e in result.get_asset_materialization_events()
    }
    assert row_counts == {
        ("customer_features", "2024-04-01"): 0, ("customer_features", "2024-05-01"): 2,
        ("customer_features", "2024-06-01"): 2, ("churn_labels", "2024-04-01"): 0,
        ("churn_labels", "2024-05-01"): 2, ("churn_labels", "2024-06-01"): 0,
    }
    assert labels_event.materialization.metadata["rows_written_for_range"].value == 2
    # Re-running one snapshot replaces only its rows.
    assert _snapshots(instance, definitions, "2024-05-01", "2024-05-01").success
    again = query(settings, "select strftime(snapshot_date, '%Y-%m-%d') s, customer_id, frequency from silver.customer_features order by 1, 2")
    assert again.equals(features)


def test_the_warehouse_type_accepts_only_a_query_with_the_schema_columns():
    import dagster as dg
    import pyarrow as pa

    from churn_assets.core.silver.features import customer_features_schema
    from churn_assets.core.silver.labels import churn_labels_schema
    from churn_assets.core.table_query import TableQuery
    from churn_assets.lib.metadata import table_query_type

    labels_type = table_query_type(churn_labels_schema())
    assert dg.check_dagster_type(labels_type, TableQuery(churn_labels_schema())).success
    assert not dg.check_dagster_type(labels_type, TableQuery(customer_features_schema())).success
    assert not dg.check_dagster_type(labels_type, pa.table({c: [1] for c in churn_labels_schema().columns})).success
