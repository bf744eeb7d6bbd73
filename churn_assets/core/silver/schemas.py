"""The Pandera schemas of silver's transactions and of a quarantine: the one contract the Columns
tab, the warehouse's SQL checks and the tests read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.warehouse import coerce_except_timestamps

# Reasons in the order they are tested; a row gets the first that applies.
QUARANTINE_REASONS = (
    "missing_order_id",
    "missing_customer_id",
    "unparseable_order_ts",
    "future_order_ts",
    "unparseable_amount",
    "amount_out_of_range",
    "quantity_out_of_range",
    "exact_duplicate",
    "conflicting_duplicate",
)

SILVER_COLUMNS = (
    "order_id",
    "customer_id",
    "order_ts",
    "amount",
    "quantity",
    "product_category",
    "channel",
    "is_refund",
    "line_count",
    "_source_file",
    "_row_number",
)

QUARANTINE_COLUMNS = (
    "_source_file",
    "_row_number",
    "_file_sha256",
    "reason",
    "order_id",
    "customer_id",
    "order_ts",
    "amount",
    "quantity",
    "unit_price",
)


def silver_transactions_schema() -> pandera.DataFrameSchema:
    text = pd.StringDtype("pyarrow")
    return coerce_except_timestamps(pandera.DataFrameSchema(
        {
            "order_id": pandera.Column(text, unique=True, description="Order or refund id"),
            "customer_id": pandera.Column(text, description="Customer id as text"),
            "order_ts": pandera.Column("datetime64[us]", description="When the order was placed"),
            "amount": pandera.Column(
                float, pandera.Check(np.isfinite, name="finite"), description="Order value; negative for a refund"
            ),
            "quantity": pandera.Column("Int32", nullable=True),
            "product_category": pandera.Column(text, nullable=True),
            "channel": pandera.Column(text, nullable=True),
            "is_refund": pandera.Column(
                bool, description="amount < 0, or a cancellation invoice (C...) of order lines"
            ),
            "line_count": pandera.Column(
                "int64", pandera.Check.ge(1), description="Landed rows merged into this order (order lines)"
            ),
            "_source_file": pandera.Column(text, description="Landed file the row came from"),
            "_row_number": pandera.Column("int64", pandera.Check.ge(1)),
        },
        name="silver_transactions",
        strict=True,
        ordered=True,
        coerce=True,
    ))

def quarantine_schema() -> pandera.DataFrameSchema:
    return quarantine_schema_for("silver_quarantine", QUARANTINE_REASONS, QUARANTINE_COLUMNS[4:])

def quarantine_schema_for(name: str, reasons: tuple[str, ...], landed_columns: tuple[str, ...]) -> pandera.DataFrameSchema:
    """A quarantine's schema: the row's lineage, its reason (one of ``reasons``) and its landed values."""
    text = pd.StringDtype("pyarrow")
    return pandera.DataFrameSchema(
        {
            "_source_file": pandera.Column(text),
            "_row_number": pandera.Column("int64", pandera.Check.ge(1)),
            "_file_sha256": pandera.Column(text),
            "reason": pandera.Column(text, pandera.Check.isin(reasons)),
            **{c: pandera.Column(text, nullable=True, description="as landed") for c in landed_columns},
        },
        name=name,
        strict=True,
        ordered=True,
        coerce=True,
    )
