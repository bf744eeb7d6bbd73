"""Silver: validated transactions and the quarantine of every rejected bronze row."""

import json

import dagster as dg
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from churn_assets.core.silver import (
    QUARANTINE_REASONS,
    empty_bronze_transactions_sql,
    quarantine_schema,
    row_accounting_sql,
    silver_and_quarantine,
    silver_transactions_schema,
)
from churn_assets.core.warehouse import table_exists
from churn_assets.defs.automation import rebuild_when_stale
from churn_assets.defs.failures import named_failure
from churn_assets.defs.keys import SILVER_QUARANTINE, SILVER_TRANSACTIONS, bronze_key
from churn_assets.defs.metadata import (
    column_schema,
    dagster_type,
    preview,
    validated_arrow_type,
)
from churn_assets.defs.resources import DUCKDB_POOL
from churn_assets.defs.staleness import (
    DATA_THROUGH_KEY,
    FIRST_ORDER_KEY,
    ORDER_MONTHS_KEY,
)
from churn_assets.settings import Settings


def _bronze_transactions(connection) -> str:
    """``bronze.transactions``, or an empty relation of its shape before anything landed."""
    if table_exists(connection, "bronze", "transactions"):
        return "bronze.transactions"
    return empty_bronze_transactions_sql()


def build_silver_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """silver.transactions and silver.quarantine, typed with ``settings``' rules for landed values."""
    return [_silver_asset(settings)]


def _silver_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.multi_asset(
        outs={
            "transactions": dg.AssetOut(
                key=SILVER_TRANSACTIONS,
                dagster_type=validated_arrow_type(silver_transactions_schema()),
                description="Typed, validated orders and refunds from every landed file, one row per order id.",
                metadata={"dagster/column_schema": column_schema(silver_transactions_schema())},
                kinds={"duckdb", "pandas"},
                automation_condition=rebuild_when_stale(),
            ),
            "quarantine": dg.AssetOut(
                key=SILVER_QUARANTINE,
                dagster_type=dagster_type(quarantine_schema()),
                description=(
                    "Every bronze transaction row that is not in silver, with its reason: "
                    + ", ".join(QUARANTINE_REASONS) + "."
                ),
                metadata={"dagster/column_schema": column_schema(quarantine_schema())},
                kinds={"duckdb", "pandas"},
                automation_condition=rebuild_when_stale(),
            ),
        },
        deps=[bronze_key("transactions")],
        group_name="silver",
        pool=DUCKDB_POOL,
    )
    def silver_transactions(context: dg.AssetExecutionContext, warehouse: DuckDBResource):
        """Rebuilds both tables from all of bronze: one classifying SQL pass, then a split."""
        with named_failure(context):
            with warehouse.get_connection() as connection:
                silver, quarantine, months = silver_and_quarantine(
                    connection, _bronze_transactions(connection), settings.max_abs_amount, settings.timestamp_rules
                )
            reasons = quarantine["reason"].value_counts()
            silver = silver_transactions_schema().validate(silver)
            metadata = {
                "refunds": int(silver["is_refund"].sum()),
                "merged_order_lines": int((silver["line_count"] - 1).sum()),
                "customers": int(silver["customer_id"].nunique()),
                "last_order": str(silver["order_ts"].max()) if len(silver) else "none",
                # what the snapshot tables read, month by month: their staleness follows it
                FIRST_ORDER_KEY: silver["order_ts"].min().isoformat() if len(silver) else "",
                DATA_THROUGH_KEY: silver["order_ts"].max().isoformat() if len(silver) else "",
                ORDER_MONTHS_KEY: dg.MetadataValue.text(json.dumps(dict(zip(months["month"], months["fingerprint"])))),
                "orders_per_month": dg.MetadataValue.md(
                    months[["month", "orders"]].to_markdown(index=False) if len(months) else "none"
                ),
                "preview": preview(silver),
            }
            # Handed on as Arrow, and the frame dropped: at ten million orders a second validation by
            # the Dagster type and the IO manager's copy of the frame cost gigabytes.
            table = pa.Table.from_pandas(silver, preserve_index=False)
            del silver
            yield dg.Output(table, "transactions", metadata=metadata)
            yield dg.Output(
                quarantine_schema().validate(quarantine),
                "quarantine",
                metadata={
                    **{f"reason/{reason}": int(reasons.get(reason, 0)) for reason in QUARANTINE_REASONS},
                    "preview": preview(quarantine),
                },
            )

    return silver_transactions


@dg.asset_check(
    asset=SILVER_TRANSACTIONS,
    additional_deps=[bronze_key("transactions"), SILVER_QUARANTINE],
    name="row_accounting",
    description=(
        "For every landed file: bronze rows = silver rows + order lines merged into them"
        " + quarantined rows + dropped exact duplicates."
    ),
    blocking=True,
    pool=DUCKDB_POOL,
)
def row_accounting(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as connection:
        source = _bronze_transactions(connection)
        accounting = connection.execute(
            row_accounting_sql(source, "silver.transactions", "silver.quarantine")
        ).df()
    broken = accounting[accounting["unaccounted"] != 0]
    totals = accounting.drop(columns="_source_file").sum()
    return dg.AssetCheckResult(
        passed=broken.empty,
        metadata={
            **{name: int(value) for name, value in totals.items()},
            "files": len(accounting),
            "files_not_reconciled": dg.MetadataValue.md(
                broken.to_markdown(index=False) if len(broken) else "none"
            ),
        },
    )


silver_checks = [row_accounting]
silver_job = dg.define_asset_job(
    "build_silver",
    selection=dg.AssetSelection.assets(SILVER_TRANSACTIONS, SILVER_QUARANTINE),
    description="Rebuild silver.transactions and silver.quarantine from bronze.",
)
