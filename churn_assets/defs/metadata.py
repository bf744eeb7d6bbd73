"""Helpers that turn schemas and frames into metadata a person can read in the UI."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.pandas as pa


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
