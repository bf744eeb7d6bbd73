"""Point-in-time customer features and forward-looking churn labels, as DuckDB SQL.

Snapshot S: features see only rows with a timestamp strictly before S; the label looks only at
[S, S + horizon). Both are set-based queries over silver so only the per-customer result leaves
the database.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.sources import timestamp_sql

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


def customer_features_sql(
    snapshot: date,
    transactions: str = "silver.transactions",
    customers: str | None = None,
    web_sessions: str | None = None,
    timestamp_formats: tuple[str, ...] = (),
) -> str:
    """One row per customer with an order before ``snapshot``; every input row is before it.

    ``customers`` and ``web_sessions`` name bronze tables; when None their columns are null. Their
    landed timestamps parse as ISO 8601 or one of ``timestamp_formats``.
    """
    s = _ts(snapshot)
    customer_join = (
        f"""left join (
            select customer_id, segment, loyalty_points, marketing_opt_in from (
                select regexp_replace(trim(customer_id), '\\.0+$', '') as customer_id,
                       nullif(trim(segment), '') as segment,
                       try_cast(loyalty_points as double) as loyalty_points,
                       try_cast(marketing_opt_in as boolean) as marketing_opt_in,
                       row_number() over (
                           partition by regexp_replace(trim(customer_id), '\\.0+$', '')
                           order by _ingested_at desc, _source_file desc, _row_number desc
                       ) as newest
                from {customers}
                where coalesce({timestamp_sql('signup_ts', timestamp_formats)} < {s}, true)
            ) where newest = 1
        ) c using (customer_id)"""
        if customers
        else "left join (select null::varchar as customer_id, null::varchar as segment, "
        "null::double as loyalty_points, null::boolean as marketing_opt_in where false) c using (customer_id)"
    )
    session_join = (
        f"""left join (
            select regexp_replace(trim(customer_id), '\\.0+$', '') as customer_id,
                   count(*) filter (where ts >= {s} - interval 30 day) as sessions_30d,
                   date_diff('day', max(ts), {s}) as days_since_last_session
            from (select customer_id, {timestamp_sql('session_ts', timestamp_formats)} as ts from {web_sessions})
            where ts < {s}
            group by 1
        ) w using (customer_id)"""
        if web_sessions
        else "left join (select null::varchar as customer_id, null::bigint as sessions_30d, "
        "null::bigint as days_since_last_session where false) w using (customer_id)"
    )
    return f"""
        with history as (
            select * from {transactions} where order_ts < {s}
        ),
        orders as (
            select customer_id, order_ts,
                   date_diff('second', lag(order_ts) over (partition by customer_id order by order_ts, order_id), order_ts)
                     / 86400.0 as gap_days
            from history where amount > 0
        ),
        rhythm as (
            select customer_id, avg(gap_days) as mean_gap, stddev_samp(gap_days) as std_gap
            from orders group by 1
        ),
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
                   coalesce(sum(amount) filter (where amount > 0), 0) as gross
            from history group by 1
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
               r.mean_gap as mean_days_between_orders,
               r.std_gap as std_days_between_orders,
               (date_diff('second', p.last_order_ts, {s}) / 86400.0) / nullif(r.mean_gap, 0) as overdue_ratio,
               p.distinct_categories,
               p.refunded / nullif(p.gross, 0) as refund_share,
               c.segment, c.loyalty_points, c.marketing_opt_in,
               coalesce(w.sessions_30d, 0) as sessions_30d,
               w.days_since_last_session,
               p.first_order_ts, p.last_order_ts
        from per_customer p
        join rhythm r using (customer_id)
        {customer_join}
        {session_join}
        where p.frequency > 0
        order by p.customer_id
    """


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
