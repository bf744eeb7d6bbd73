"""Monthly snapshots in silver: point-in-time customer features and forward-looking churn labels."""

import warnings
from datetime import date

import dagster as dg
import pandas as pd

from churn_assets.core import tables
from churn_assets.core.silver.features import customer_features_schema, features_query
from churn_assets.core.silver.labels import churn_labels_schema, labels_query
from churn_assets.core.silver.quality import repeated_pairs_sql, rows_at_or_after_snapshot_sql
from churn_assets.core.table_query import TableQuery
from churn_assets.lib.automation import refresh_when_data_changes
from churn_assets.lib.failures import named_failure
from churn_assets.lib.keys import (
    CHURN_LABELS,
    CUSTOMER_FEATURES,
    SILVER_TRANSACTIONS,
    bronze_key,
)
from churn_assets.lib.metadata import (
    add_row_counts_per_partition,
    column_schema,
    table_query_type,
)
from churn_assets.lib.partitions import snapshot_partitions
from churn_assets.lib.resources import DUCKDB_POOL, WarehouseResource, storage_kind
from churn_assets.lib.staleness import record_digests
from churn_assets.settings import Settings


def _snapshots(context: dg.AssetExecutionContext) -> list[date]:
    """The snapshots of this run: one, or a range when a backfill runs as a single run."""
    return [date.fromisoformat(key) for key in context.partition_keys]


def build_snapshot_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """Features and labels on monthly partitions that start at ``settings.start_date``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy is marked beta
        return _snapshot_assets(settings)


def _snapshot_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    partitions = snapshot_partitions(settings)
    features_schema, labels_schema = customer_features_schema(), churn_labels_schema()

    @dg.asset(
        key=CUSTOMER_FEATURES,
        group_name="silver",
        description="Per customer with an order before snapshot S: features computed only from data before S.",
        partitions_def=partitions,
        deps=[
            SILVER_TRANSACTIONS,
            # every landed file of the optional sources counts for every snapshot
            dg.AssetDep(bronze_key("customers"), partition_mapping=dg.AllPartitionMapping()),
            dg.AssetDep(bronze_key("web_sessions"), partition_mapping=dg.AllPartitionMapping()),
        ],
        dagster_type=table_query_type(features_schema),
        metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(features_schema)},
        kinds={storage_kind(settings), "pandas"},
        automation_condition=refresh_when_data_changes("features", settings.churn_horizon_days),
        pool=DUCKDB_POOL,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def customer_features(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> TableQuery:
        with named_failure(context):
            snapshots = _snapshots(context)
            record_digests(context, "features", settings.churn_horizon_days)
            with warehouse.get_connection() as connection:
                query, counts = features_query(connection, snapshots, settings.timestamp_rules)
            context.log.info(f"{len(snapshots)} snapshot(s), {counts['customers'].sum():,} customer rows")
            add_row_counts_per_partition(context, counts.rename(columns={"customers": "rows"}))
            context.add_output_metadata(
                {
                    "snapshots": len(snapshots),
                    "customers_per_snapshot": dg.MetadataValue.md(counts.to_markdown() if len(counts) else "none"),
                    "refund_only_customers_left_out": int(counts["refund_only_customers"].sum()),
                    "left_out_why": dg.MetadataValue.text(
                        "customers whose only rows before the snapshot are refunds have no purchase to measure "
                        "recency or a label from; an order of amount 0 counts as a purchase"
                    ),
                }
            )
            return query

    @dg.asset(
        key=CHURN_LABELS,
        group_name="silver",
        description=(
            "1 when a customer with an order before S places no order in [S, S + horizon). Empty "
            "until the horizon is fully observed in the data."
        ),
        partitions_def=partitions,
        deps=[SILVER_TRANSACTIONS],
        dagster_type=table_query_type(labels_schema),
        metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(labels_schema)},
        kinds={storage_kind(settings), "pandas"},
        automation_condition=refresh_when_data_changes("labels", settings.churn_horizon_days),
        pool=DUCKDB_POOL,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def churn_labels(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> TableQuery:
        with named_failure(context):
            horizon = settings.churn_horizon_days
            record_digests(context, "labels", horizon)
            snapshots = _snapshots(context)
            with warehouse.get_connection() as connection:
                query, unobserved, data_through = labels_query(connection, snapshots, horizon)
            unobserved = [s.isoformat() for s in unobserved]
            if unobserved:
                context.log.info(f"{horizon}-day horizon not yet observed (data through {data_through}): {unobserved}")
            observed = [s for s in snapshots if s.isoformat() not in unobserved]
            rows = pd.DataFrame({"rows": query.expected_rows}, index=pd.to_datetime(observed))
            add_row_counts_per_partition(context, rows)
            context.add_output_metadata(
                {
                    "horizon_days": horizon,
                    "data_through": str(data_through),
                    "snapshots_without_labels_yet": ", ".join(unobserved) or "none",
                }
            )
            return query

    return [customer_features, churn_labels]


def _zero_rows_check(name: str, description: str, sql: str, metric: str) -> dg.AssetChecksDefinition:
    """A blocking check on the features table that passes when ``sql`` counts zero problems."""

    @dg.asset_check(asset=CUSTOMER_FEATURES, name=name, description=description, pool=DUCKDB_POOL, blocking=True)
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as connection:
            problems = connection.execute(sql).fetchall()[0][0]
        return dg.AssetCheckResult(passed=problems == 0, metadata={metric: problems})

    return _check


snapshot_checks = [
    _zero_rows_check(
        "unique_customer_per_snapshot",
        "At most one feature row per (snapshot, customer).",
        repeated_pairs_sql(tables.SILVER_CUSTOMER_FEATURES, ("snapshot_date", "customer_id")),
        "repeated_pairs",
    ),
    _zero_rows_check(
        "no_data_at_or_after_snapshot",
        "Every feature row's first and newest order are strictly before its snapshot.",
        rows_at_or_after_snapshot_sql(tables.SILVER_CUSTOMER_FEATURES),
        "rows_with_data_from_the_future",
    ),
]


snapshots_job = dg.define_asset_job(
    "build_snapshots",
    selection=dg.AssetSelection.assets(CUSTOMER_FEATURES, CHURN_LABELS),
    description="Features and labels for a month or a range of months.",
)
