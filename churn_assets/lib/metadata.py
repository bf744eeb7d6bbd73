"""Helpers that turn schemas and frames into metadata a person can read in the UI."""

from __future__ import annotations

import base64
import warnings

import dagster as dg
import pandas as pd
import pandera.pandas as pa
import pyarrow
from dagster_pandera import pandera_schema_to_dagster_type

from churn_assets.core.table_query import FrameStaging, TableQuery


def column_schema(schema: pa.DataFrameSchema) -> dg.TableSchema:
    """The asset's Columns tab, from its Pandera schema."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=name,
                type=str(column.dtype),
                description=column.description,
                constraints=dg.TableColumnConstraints(nullable=column.nullable),
            )
            for name, column in schema.columns.items()
        ]
    )


def preview(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    """A markdown table of the first rows."""
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False) if len(frame) else "_no rows_")


def dagster_type(schema: pa.DataFrameSchema) -> dg.DagsterType:
    """The Dagster type of a Pandera schema, without the beta warning on every load."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # dagster-pandera is marked beta
        return pandera_schema_to_dagster_type(schema)


def table_query_type(schema: pa.DataFrameSchema) -> dg.DagsterType:
    """The Dagster type of a table that stays in the warehouse: a ``TableQuery`` typed by
    ``schema``, whose rows the IO manager checks in DuckDB with the schema's SQL checks."""

    def check(_, value) -> dg.TypeCheck:
        if not isinstance(value, TableQuery):
            return dg.TypeCheck(False, description=f"expected a TableQuery, got {type(value).__name__}")
        if list(value.schema.columns) != list(schema.columns):
            return dg.TypeCheck(False, description=f"its schema's columns {list(value.schema.columns)} are not {list(schema.columns)}")
        return dg.TypeCheck(True, metadata={"selects": len(value.selects)})

    return dg.DagsterType(
        type_check_fn=check,
        name=f"{schema.name}_in_warehouse",
        description=f"Rows computed in DuckDB and checked there by the SQL form of the Pandera schema {schema.name!r}.",
        typing_type=TableQuery,
        metadata={"schema": dg.MetadataValue.table_schema(column_schema(schema))},
    )


def arrow_preview(table: pyarrow.Table, rows: int = 10) -> dg.MetadataValue:
    """A markdown table of the first rows of an Arrow table."""
    return preview(table.slice(0, rows).to_pandas(), rows)


def images(figures: dict[str, bytes]) -> dg.MetadataValue:
    """PNG figures shown inline in the asset's metadata, each under its name."""
    return dg.MetadataValue.md("\n\n".join(
        f"**{name}**\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for name, png in figures.items()
    ))


def add_row_counts_per_partition(context: dg.AssetExecutionContext, per_snapshot: pd.DataFrame) -> None:
    """Each snapshot partition's own ``dagster/row_count`` from ``rows_per_snapshot`` (zero for a
    snapshot without rows)."""
    by_key = {pd.Timestamp(snapshot).date().isoformat(): int(rows) for snapshot, rows in per_snapshot["rows"].items()}
    for key in context.partition_keys:
        context.add_asset_metadata({"dagster/row_count": by_key.get(key, 0)}, partition_key=key)


def staged_months(context: dg.AssetExecutionContext, staging: FrameStaging) -> TableQuery:
    """The staged months for the IO manager, with each month's own ``dagster/row_count``."""
    add_row_counts_per_partition(context, pd.DataFrame({"rows": pd.Series(staging.rows, dtype="int64")}))
    return staging.query()
