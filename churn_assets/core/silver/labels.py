"""Forward-looking churn labels: a customer active before snapshot S churned when they place no
purchase in [S, S + horizon). A snapshot gets labels only once its whole horizon is in the data."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.silver.features import customers_per_snapshot_sql, timestamp_literal
from churn_assets.core.table_query import TableQuery
from churn_assets.core.tables import SILVER_TRANSACTIONS
from churn_assets.core.warehouse import coerce_except_timestamps, query_frame


def labels_query(connection, snapshots: list[date], horizon_days: int) -> tuple[TableQuery, list[date], object]:
    """Labels of every snapshot whose horizon the data covers, as a query the warehouse runs
    snapshot by snapshot; the snapshots left without labels (never partial labels: a customer who
    has not ordered *yet* is not a churner); and the timestamp the data runs through. Each
    customer's first purchase is found once for all snapshots."""
    data_through = connection.execute(data_through_sql()).fetchall()[0][0]
    observed = [s for s in snapshots if horizon_observed(s, horizon_days, data_through)]
    counts = query_frame(connection, customers_per_snapshot_sql(observed)).set_index("snapshot_date")
    query = TableQuery(
        churn_labels_schema(),
        selects=tuple(churn_labels_sql(s, horizon_days, prepared=True) for s in observed),
        setup=(f"create or replace temp table {LABEL_INPUT} as {first_purchases_sql()}",),
        teardown=(f"drop table if exists {LABEL_INPUT}",),
        expected_rows=tuple(int(counts.loc[pd.Timestamp(s), "customers"]) for s in observed),
        summaries={
            "churn_rate_per_snapshot": "select snapshot_date, count(*) as rows, avg(churned) as churn_rate "
            "from {rows} group by 1 order by 1"
        },
    )
    return query, [s for s in snapshots if s not in observed], data_through

def data_through_sql(transactions: str = SILVER_TRANSACTIONS) -> str:
    """The timestamp up to which transactions are observed (the newest order or refund)."""
    return f"select max(order_ts) from {transactions}"

def horizon_observed(snapshot: date, horizon_days: int, data_through) -> bool:
    """True when the data reaches the end of [snapshot, snapshot + horizon)."""
    if data_through is None:
        return False
    end = snapshot + timedelta(days=horizon_days)
    return data_through.date() >= end - timedelta(days=1)

LABEL_INPUT = "label_first_purchases"

def first_purchases_sql(transactions: str = SILVER_TRANSACTIONS) -> str:
    """Each customer's first purchase (any order that is not a refund, amount 0 included)."""
    return f"select customer_id, min(order_ts) as first_purchase_ts from {transactions} where not is_refund group by 1"

def churn_labels_sql(
    snapshot: date, horizon_days: int, transactions: str = SILVER_TRANSACTIONS, prepared: bool = False
) -> str:
    """Label 1 for each customer with a purchase before ``snapshot`` and none in the horizon.

    With ``prepared`` the first purchases come from the temp table ``LABEL_INPUT`` on the same
    connection, so each snapshot only aggregates the orders in its own horizon.
    """
    s, end = timestamp_literal(snapshot), timestamp_literal(snapshot + timedelta(days=horizon_days))
    first = LABEL_INPUT if prepared else f"({first_purchases_sql(transactions)})"
    return f"""
        select {s} as snapshot_date,
               f.customer_id,
               {end} as horizon_end,
               coalesce(h.orders_in_horizon, 0) as orders_in_horizon,
               (coalesce(h.orders_in_horizon, 0) = 0)::integer as churned
        from {first} f
        left join (
            select customer_id, count(*) as orders_in_horizon from {transactions}
            where not is_refund and order_ts >= {s} and order_ts < {end} group by 1
        ) h using (customer_id)
        where f.first_purchase_ts < {s}
        order by f.customer_id
    """

def churn_labels_schema() -> pandera.DataFrameSchema:
    return coerce_except_timestamps(pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]"),
            "customer_id": pandera.Column(pd.StringDtype("pyarrow")),
            "horizon_end": pandera.Column("datetime64[us]"),
            "orders_in_horizon": pandera.Column("int64", pandera.Check.ge(0)),
            "churned": pandera.Column("int32", pandera.Check.isin([0, 1])),
        },
        name="churn_labels",
        unique=["snapshot_date", "customer_id"],
        strict=True,
        ordered=True,
        coerce=True,
    ))
