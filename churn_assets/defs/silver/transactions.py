"""Silver: validated transactions and the quarantine of every rejected bronze row."""

import json

import dagster as dg
import pandas as pd

from churn_assets.core import tables
from churn_assets.core.silver.schemas import QUARANTINE_REASONS, quarantine_schema, silver_transactions_schema
from churn_assets.core.silver.transactions import (
    empty_bronze_transactions_sql,
    order_months_sql,
    quarantine_query,
    quarantine_reasons_sql,
    quarantine_sql,
    row_accounting_sql,
    silver_facts_sql,
    silver_query,
    silver_transactions_sql,
    stage_classified_rows,
)
from churn_assets.core.warehouse import query_frame, table_exists
from churn_assets.lib.automation import rebuild_when_stale
from churn_assets.lib.failures import named_failure
from churn_assets.lib.keys import SILVER_QUARANTINE, SILVER_TRANSACTIONS, bronze_key
from churn_assets.lib.metadata import column_schema, preview, table_query_type
from churn_assets.lib.resources import DUCKDB_POOL, WarehouseResource, storage_kind
from churn_assets.lib.staleness import (
    DATA_THROUGH_KEY,
    FIRST_ORDER_KEY,
    ORDER_MONTHS_KEY,
)
from churn_assets.settings import Settings


def _bronze_transactions(connection) -> str:
    """``bronze.transactions``, or an empty relation of its shape before anything landed."""
    if table_exists(connection, "bronze", "transactions"):
        return tables.BRONZE_TRANSACTIONS
    return empty_bronze_transactions_sql()


def build_silver_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """silver.transactions and silver.quarantine, typed with ``settings``' rules for landed values."""
    return [_silver_asset(settings)]


def _silver_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.multi_asset(
        outs={
            "transactions": dg.AssetOut(
                key=SILVER_TRANSACTIONS,
                dagster_type=table_query_type(silver_transactions_schema()),
                description="Typed, validated orders and refunds from every landed file, one row per order id.",
                metadata={"dagster/column_schema": column_schema(silver_transactions_schema())},
                kinds={storage_kind(settings), "pandas"},
                automation_condition=rebuild_when_stale(),
            ),
            "quarantine": dg.AssetOut(
                key=SILVER_QUARANTINE,
                dagster_type=table_query_type(quarantine_schema()),
                description=(
                    "Every bronze transaction row that is not in silver, with its reason: "
                    + ", ".join(QUARANTINE_REASONS) + "."
                ),
                metadata={"dagster/column_schema": column_schema(quarantine_schema())},
                kinds={storage_kind(settings), "pandas"},
                automation_condition=rebuild_when_stale(),
            ),
        },
        deps=[bronze_key("transactions")],
        group_name="silver",
        pool=DUCKDB_POOL,
    )
    def silver_transactions(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """Classifies all of bronze once into a staging table; both tables are written from it
        inside DuckDB, and it is dropped after."""
        with named_failure(context):
            with warehouse.get_connection() as connection:
                classified = stage_classified_rows(
                    connection, _bronze_transactions(connection), settings.max_abs_amount, settings.timestamp_rules
                )
                facts = query_frame(connection, silver_facts_sql(classified)).iloc[0]
                months = query_frame(connection, order_months_sql(f"({silver_transactions_sql(classified, ordered=False)})"))
                reasons = query_frame(connection, quarantine_reasons_sql(classified)).set_index("reason")["rows"]
                silver_preview = query_frame(connection, f"{silver_transactions_sql(classified)} limit 10")
                quarantine_preview = query_frame(connection, f"{quarantine_sql(classified)} limit 10")
            first, last = facts["first_order"], facts["last_order"]
            metadata = {
                "refunds": int(facts["refunds"]),
                "merged_order_lines": int(facts["merged_order_lines"]),
                "customers": int(facts["customers"]),
                "last_order": str(last) if pd.notna(last) else "none",
                # what the snapshot tables read, month by month: their staleness follows it
                FIRST_ORDER_KEY: first.isoformat() if pd.notna(first) else "",
                DATA_THROUGH_KEY: last.isoformat() if pd.notna(last) else "",
                ORDER_MONTHS_KEY: dg.MetadataValue.text(json.dumps(dict(zip(months["month"], months["fingerprint"])))),
                "orders_per_month": dg.MetadataValue.md(
                    months[["month", "orders"]].to_markdown(index=False) if len(months) else "none"
                ),
                "preview": preview(silver_preview),
            }
            yield dg.Output(silver_query(classified), "transactions", metadata=metadata)
            yield dg.Output(
                quarantine_query(classified),
                "quarantine",
                metadata={
                    **{f"reason/{reason}": int(reasons.get(reason, 0)) for reason in QUARANTINE_REASONS},
                    "preview": preview(quarantine_preview),
                },
            )
            with warehouse.get_connection() as connection:
                connection.execute(f"drop table if exists {classified}")

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
def row_accounting(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as connection:
        source = _bronze_transactions(connection)
        accounting = connection.execute(
            row_accounting_sql(source, tables.SILVER_TRANSACTIONS, tables.SILVER_QUARANTINE)
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


silver_job = dg.define_asset_job(
    "build_silver",
    selection=dg.AssetSelection.assets(SILVER_TRANSACTIONS, SILVER_QUARANTINE),
    description=f"Rebuild {tables.SILVER_TRANSACTIONS} and {tables.SILVER_QUARANTINE} from bronze.",
)
