"""Point-in-time customer features and forward-looking churn labels, as DuckDB SQL.

Snapshot S: features see only rows with a timestamp strictly before S; the label looks only at
[S, S + horizon). Both are set-based queries over silver so only the per-customer result leaves
the database.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa

from churn_assets.core.sources import timestamp_sql
from churn_assets.core.warehouse import query_validated, table_exists

FEATURE_COLUMNS = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "tenure_days",
    "orders_30d",
    "orders_90d",
    "orders_180d",
    "spend_30d",
    "spend_90d",
    "spend_180d",
    "spend_trend",
    "mean_days_between_orders",
    "std_days_between_orders",
    "overdue_ratio",
    "distinct_categories",
    "refund_share",
    "segment",
    "loyalty_points",
    "marketing_opt_in",
    "sessions_30d",
    "days_since_last_session",
)


def _ts(day: date) -> str:
    return f"timestamp '{day.isoformat()} 00:00:00'"


FEATURE_INPUTS = ("feature_orders", "feature_customers", "feature_sessions")


def feature_inputs_sql(
    transactions: str = "silver.transactions",
    customers: str | None = None,
    web_sessions: str | None = None,
    timestamp_formats: tuple[str, ...] = (),
) -> dict[str, str]:
    """The typed inputs every snapshot's features read, as {name: select}, in ``FEATURE_INPUTS`` order.

    Built once for all snapshots: ids normalized, landed timestamps parsed (ISO 8601 or one of
    ``timestamp_formats``), and each order's gap to the customer's previous order. That gap only
    looks back, so it is the same whichever later snapshot the order is seen from.
    """
    orders = f"""
        select customer_id, order_id, order_ts, amount, product_category,
               case when amount > 0 then date_diff('second', lag(order_ts) over (
                   partition by customer_id, amount > 0 order by order_ts, order_id
               ), order_ts) / 86400.0 end as gap_days
        from {transactions}
    """
    customer_id = "regexp_replace(trim(customer_id), '\\.0+$', '')"
    typed_customers = (
        f"""select {customer_id} as customer_id,
                   nullif(trim(segment), '') as segment,
                   try_cast(loyalty_points as double) as loyalty_points,
                   try_cast(marketing_opt_in as boolean) as marketing_opt_in,
                   {timestamp_sql('signup_ts', timestamp_formats)} as signup_ts,
                   _ingested_at, _source_file, _row_number
            from {customers}"""
        if customers
        else "select null::varchar as customer_id, null::varchar as segment, null::double as loyalty_points, "
        "null::boolean as marketing_opt_in, null::timestamp as signup_ts, null::timestamp as _ingested_at, "
        "null::varchar as _source_file, null::bigint as _row_number where false"
    )
    sessions = (
        f"""select customer_id, ts from (
                select {customer_id} as customer_id, {timestamp_sql('session_ts', timestamp_formats)} as ts
                from {web_sessions}
            ) where ts is not null"""
        if web_sessions
        else "select null::varchar as customer_id, null::timestamp as ts where false"
    )
    return dict(zip(FEATURE_INPUTS, (orders, typed_customers, sessions)))


def prepare_feature_inputs(connection, **sources) -> None:
    """Create the ``FEATURE_INPUTS`` temp tables on ``connection`` (see ``feature_inputs_sql``)."""
    for name, sql in feature_inputs_sql(**sources).items():
        connection.execute(f"create or replace temp table {name} as {sql}").fetchall()


def customer_features_sql(
    snapshot: date,
    transactions: str = "silver.transactions",
    customers: str | None = None,
    web_sessions: str | None = None,
    timestamp_formats: tuple[str, ...] = (),
    prepared: bool = False,
) -> str:
    """One row per customer with an order before ``snapshot``; every input row is before it.

    ``customers`` and ``web_sessions`` name bronze tables; when None their columns are null. With
    ``prepared`` the query reads the temp tables ``prepare_feature_inputs`` made on the same
    connection (the sources are then ignored); otherwise it computes those inputs itself.
    """
    s = _ts(snapshot)
    inputs = "" if prepared else ",".join(
        f"{name} as ({sql})"
        for name, sql in feature_inputs_sql(transactions, customers, web_sessions, timestamp_formats).items()
    ) + ","
    return f"""
        with {inputs}
        per_customer as (
            select customer_id,
                   min(order_ts) filter (where amount > 0) as first_order_ts,
                   max(order_ts) filter (where amount > 0) as last_order_ts,
                   count(*) filter (where amount > 0) as frequency,
                   sum(amount) as monetary,
                   avg(amount) filter (where amount > 0) as avg_order_value,
                   count(*) filter (where amount > 0 and order_ts >= {s} - interval 30 day) as orders_30d,
                   count(*) filter (where amount > 0 and order_ts >= {s} - interval 90 day) as orders_90d,
                   count(*) filter (where amount > 0 and order_ts >= {s} - interval 180 day) as orders_180d,
                   coalesce(sum(amount) filter (where order_ts >= {s} - interval 30 day), 0) as spend_30d,
                   coalesce(sum(amount) filter (where order_ts >= {s} - interval 90 day), 0) as spend_90d,
                   coalesce(sum(amount) filter (where order_ts >= {s} - interval 180 day), 0) as spend_180d,
                   coalesce(sum(amount) filter (
                       where order_ts >= {s} - interval 180 day and order_ts < {s} - interval 90 day
                   ), 0) as spend_prior_90d,
                   count(distinct product_category) as distinct_categories,
                   coalesce(-sum(amount) filter (where amount < 0), 0) as refunded,
                   coalesce(sum(amount) filter (where amount > 0), 0) as gross,
                   avg(gap_days) as mean_gap,
                   stddev_samp(gap_days) as std_gap
            from feature_orders where order_ts < {s} group by 1
        ),
        customer_attributes as (
            select customer_id, segment, loyalty_points, marketing_opt_in from (
                select *, row_number() over (
                    partition by customer_id order by _ingested_at desc, _source_file desc, _row_number desc
                ) as newest
                from feature_customers where coalesce(signup_ts < {s}, true)
            ) where newest = 1
        ),
        session_activity as (
            select customer_id,
                   count(*) filter (where ts >= {s} - interval 30 day) as sessions_30d,
                   date_diff('day', max(ts), {s}) as days_since_last_session
            from feature_sessions where ts < {s} group by 1
        )
        select {s} as snapshot_date,
               p.customer_id,
               date_diff('second', p.last_order_ts, {s}) / 86400.0 as recency_days,
               p.frequency,
               round(p.monetary, 2) as monetary,
               round(p.avg_order_value, 2) as avg_order_value,
               date_diff('second', p.first_order_ts, {s}) / 86400.0 as tenure_days,
               p.orders_30d, p.orders_90d, p.orders_180d,
               round(p.spend_30d, 2) as spend_30d,
               round(p.spend_90d, 2) as spend_90d,
               round(p.spend_180d, 2) as spend_180d,
               round(p.spend_90d - p.spend_prior_90d, 2) as spend_trend,
               p.mean_gap as mean_days_between_orders,
               p.std_gap as std_days_between_orders,
               (date_diff('second', p.last_order_ts, {s}) / 86400.0) / nullif(p.mean_gap, 0) as overdue_ratio,
               p.distinct_categories,
               p.refunded / nullif(p.gross, 0) as refund_share,
               c.segment, c.loyalty_points, c.marketing_opt_in,
               coalesce(w.sessions_30d, 0) as sessions_30d,
               w.days_since_last_session,
               p.first_order_ts, p.last_order_ts
        from per_customer p
        left join customer_attributes c using (customer_id)
        left join session_activity w using (customer_id)
        where p.frequency > 0
        order by p.customer_id
    """


def features_by_snapshot(connection, snapshots: list[date], timestamp_formats: tuple[str, ...] = ()) -> pa.Table:
    """Features of every snapshot, each validated against ``customer_features_schema``, as one
    Arrow table, from silver and whichever optional bronze sources exist; the typed inputs are
    prepared once for all of them."""
    prepare_feature_inputs(
        connection,
        customers="bronze.customers" if table_exists(connection, "bronze", "customers") else None,
        web_sessions="bronze.web_sessions" if table_exists(connection, "bronze", "web_sessions") else None,
        timestamp_formats=timestamp_formats,
    )
    schema = customer_features_schema()
    features = query_validated(connection, [customer_features_sql(s, prepared=True) for s in snapshots], schema.validate)
    for name in FEATURE_INPUTS:  # the temp tables hold every order; free them before the write
        connection.execute(f"drop table if exists {name}").fetchall()
    return features


def labels_by_snapshot(connection, snapshots: list[date], horizon_days: int) -> tuple[pa.Table, list[date], object]:
    """Labels of every snapshot whose horizon the data covers, each validated against
    ``churn_labels_schema``, as one Arrow table; the snapshots left without labels (never partial
    labels: a customer who has not ordered *yet* is not a churner); and the timestamp the data
    runs through."""
    data_through = connection.execute(data_through_sql()).fetchall()[0][0]
    observed = [s for s in snapshots if horizon_observed(s, horizon_days, data_through)]
    sqls = [churn_labels_sql(s, horizon_days) for s in observed] or [
        f"select * from ({churn_labels_sql(snapshots[0], horizon_days)}) limit 0"
    ]
    unobserved = [s for s in snapshots if s not in observed]
    return query_validated(connection, sqls, churn_labels_schema().validate), unobserved, data_through


def rows_per_snapshot(table: pa.Table, column: str | None = None) -> pd.DataFrame:
    """Rows per snapshot (and the mean of ``column``) of a snapshot table, for a person to read."""
    aggregations = [("snapshot_date", "count")] + ([(column, "mean")] if column else [])
    counts = table.group_by("snapshot_date").aggregate(aggregations).to_pandas()
    return counts.rename(columns={"snapshot_date_count": "rows"}).set_index("snapshot_date").sort_index()


def data_through_sql(transactions: str = "silver.transactions") -> str:
    """The timestamp up to which transactions are observed (the newest order or refund)."""
    return f"select max(order_ts) from {transactions}"


def horizon_observed(snapshot: date, horizon_days: int, data_through) -> bool:
    """True when the data reaches the end of [snapshot, snapshot + horizon)."""
    if data_through is None:
        return False
    end = snapshot + timedelta(days=horizon_days)
    return data_through.date() >= end - timedelta(days=1)


def churn_labels_sql(snapshot: date, horizon_days: int, transactions: str = "silver.transactions") -> str:
    """Label 1 for each customer with an order before ``snapshot`` and none in the horizon."""
    s, end = _ts(snapshot), _ts(snapshot + timedelta(days=horizon_days))
    return f"""
        select {s} as snapshot_date,
               customer_id,
               {end} as horizon_end,
               count(*) filter (where order_ts >= {s} and order_ts < {end} and amount > 0) as orders_in_horizon,
               (orders_in_horizon = 0)::integer as churned
        from {transactions}
        where amount > 0 and order_ts < {end}
        group by customer_id
        having count(*) filter (where order_ts < {s}) > 0
        order by customer_id
    """


def customer_features_schema() -> pandera.DataFrameSchema:
    text = pd.StringDtype("pyarrow")
    number = {c: pandera.Column(float, nullable=True) for c in FEATURE_COLUMNS}
    number.update(
        {
            c: pandera.Column("int64", pandera.Check.ge(0))
            for c in ("frequency", "orders_30d", "orders_90d", "orders_180d", "distinct_categories", "sessions_30d")
        }
    )
    number["recency_days"] = pandera.Column(float, pandera.Check.gt(0), description="days since the last order")
    number["segment"] = pandera.Column(text, nullable=True)
    number["marketing_opt_in"] = pandera.Column("boolean", nullable=True)
    return pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]"),
            "customer_id": pandera.Column(text),
            **{c: number[c] for c in FEATURE_COLUMNS},
            "first_order_ts": pandera.Column("datetime64[us]"),
            "last_order_ts": pandera.Column("datetime64[us]"),
        },
        name="customer_features",
        unique=["snapshot_date", "customer_id"],
        strict=True,
        ordered=True,
        coerce=True,
    )


def churn_labels_schema() -> pandera.DataFrameSchema:
    return pandera.DataFrameSchema(
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
    )
