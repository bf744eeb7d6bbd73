"""Helpers that turn schemas and frames into metadata a person can read in the UI."""

from __future__ import annotations

import base64
import warnings

import dagster as dg
import pandas as pd
import pandera.pandas as pa
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


def images(figures: dict[str, bytes]) -> dg.MetadataValue:
    """PNG figures shown inline in the asset's metadata, each under its name."""
    return dg.MetadataValue.md("\n\n".join(
        f"**{name}**\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for name, png in figures.items()
    ))
