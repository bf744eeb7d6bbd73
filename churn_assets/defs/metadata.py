"""Helpers that turn schemas and frames into metadata a person can read in the UI."""

from __future__ import annotations

import base64
import warnings

import dagster as dg
import pandas as pd
import pandera.pandas as pa
import pyarrow
from dagster_pandera import pandera_schema_to_dagster_type


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


def validated_arrow_type(schema: pa.DataFrameSchema) -> dg.DagsterType:
    """The Dagster type of an Arrow table whose rows Pandera validated against ``schema`` before
    they became Arrow (whole, or piece by piece in ``query_validated``); the check here confirms
    the columns, since validating again would cost a second copy of the rows."""
    names = list(schema.columns)

    def check(_, value) -> dg.TypeCheck:
        if not isinstance(value, pyarrow.Table):
            return dg.TypeCheck(False, description=f"expected a pyarrow Table, got {type(value).__name__}")
        if value.column_names != names:
            return dg.TypeCheck(False, description=f"columns {value.column_names} are not {names}")
        return dg.TypeCheck(True, metadata={"rows": value.num_rows})

    return dg.DagsterType(
        type_check_fn=check,
        name=f"{schema.name}_arrow",
        description=f"Arrow table whose rows passed the Pandera schema {schema.name!r} before becoming Arrow.",
        typing_type=pyarrow.Table,
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
