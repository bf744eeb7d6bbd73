"""Point-in-time customer features and forward-looking churn labels, as DuckDB SQL.

Snapshot S: features see only rows with a timestamp strictly before S; the label looks only at
[S, S + horizon). Both are set-based queries over silver so only the per-customer result leaves
the database.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.ingestion.sources import (
    AFTER_ALL_TIME,
    BEFORE_ALL_TIME,
    TimestampRules,
    cents_sql,
    customer_id_sql,
    timestamp_sql,
)
from churn_assets.core.table_query import TableQuery
from churn_assets.core.warehouse import coerce_except_timestamps, query_frame, table_exists
from churn_assets.core.tables import BRONZE_CUSTOMERS, BRONZE_WEB_SESSIONS, SILVER_TRANSACTIONS

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


# Features that count rows: never null, whole numbers.
COUNT_FEATURES = ("frequency", "orders_30d", "orders_90d", "orders_180d", "distinct_categories", "sessions_30d")


def timestamp_literal(day: date) -> str:
    return f"timestamp '{day.isoformat()} 00:00:00'"


FEATURE_INPUTS = ("feature_orders", "feature_customers", "feature_sessions")


def feature_inputs_sql(
    transactions: str = SILVER_TRANSACTIONS,
    customers: str | None = None,
    web_sessions: str | None = None,
    timestamps: TimestampRules = TimestampRules(),
) -> dict[str, str]:
    """The typed inputs every snapshot's features read, as {name: select}, in ``FEATURE_INPUTS`` order.

    Built once for all snapshots: ids normalized, landed timestamps parsed (ISO 8601 or one of
    ``timestamps``), each order's gap to the customer's previous purchase, and each
    customer row's span of snapshots. What is derived only looks back, so it is the same
    whichever later snapshot it is seen from.
    """
    # Per order, the columns the snapshot aggregates read without a FILTER clause (aggregates
    # skip nulls instead), the gap in seconds to the customer's previous purchase, and a flag on
    # the first order in each category (a count(distinct) per snapshot cost twice as much). At ten
    # million orders the 19 snapshot queries took 66 s with a FILTER per aggregate, 48 s this way. Money is exact decimal (silver rounds amounts to cents) and gaps are whole
    # seconds, so every sum is exact: a parallel sum of doubles differs in its last bits from run
    # to run, and a mean rounded to cents then flips on ties.
    orders = f"""
        select customer_id, order_ts, amount::decimal(18, 2) as amount,
               case when not is_refund then order_ts end as purchase_ts,
               case when not is_refund then amount::decimal(18, 2) end as purchase_amount,
               case when is_refund then amount::decimal(18, 2) end as refund_amount,
               case when not is_refund then (epoch_us(order_ts) - epoch_us(lag(order_ts) over (
                   partition by customer_id, is_refund order by order_ts, order_id
               ))) // 1000000 end as gap_seconds,
               case when product_category is not null and row_number() over (
                   partition by customer_id, product_category order by order_ts, order_id
               ) = 1 then 1 end as first_in_category
        from {transactions}
    """
    customer_id = customer_id_sql("customer_id")
    # Each customer row with the span of snapshots for which it is the newest row whose signup
    # is before the snapshot (valid_after < S <= valid_through), so no snapshot ranks rows again.
    typed_customers = (
        f"""select customer_id, segment, loyalty_points, marketing_opt_in,
                   coalesce(signup_ts, {BEFORE_ALL_TIME}) as valid_after,
                   coalesce(min(coalesce(signup_ts, {BEFORE_ALL_TIME})) over (
                       partition by customer_id order by _ingested_at desc, _source_file desc, _row_number desc
                       rows between unbounded preceding and 1 preceding
                   ), {AFTER_ALL_TIME}) as valid_through
            from (
                select {customer_id} as customer_id,
                       nullif(trim(segment), '') as segment,
                       try_cast(loyalty_points as double) as loyalty_points,
                       try_cast(marketing_opt_in as boolean) as marketing_opt_in,
                       {timestamp_sql('signup_ts', timestamps)} as signup_ts,
                       _ingested_at, _source_file, _row_number
                from {customers}
            )"""
        if customers
        else "select null::varchar as customer_id, null::varchar as segment, null::double as loyalty_points, "
        "null::boolean as marketing_opt_in, null::timestamp as valid_after, null::timestamp as valid_through where false"
    )
    sessions = (
        f"""select customer_id, ts from (
                select {customer_id} as customer_id, {timestamp_sql('session_ts', timestamps)} as ts
                from {web_sessions}
            ) where ts is not null"""
        if web_sessions
        else "select null::varchar as customer_id, null::timestamp as ts where false"
    )
    return dict(zip(FEATURE_INPUTS, (orders, typed_customers, sessions)))


def feature_inputs_statements(connection, timestamps: TimestampRules = TimestampRules()) -> tuple[str, ...]:
    """Statements that make the ``FEATURE_INPUTS`` temp tables from silver and whichever optional
    bronze sources exist (see ``feature_inputs_sql``)."""
    sources = feature_inputs_sql(
        customers=BRONZE_CUSTOMERS if table_exists(connection, "bronze", "customers") else None,
        web_sessions=BRONZE_WEB_SESSIONS if table_exists(connection, "bronze", "web_sessions") else None,
        timestamps=timestamps,
    )
    return tuple(f"create or replace temp table {name} as {sql}" for name, sql in sources.items())


def _days_between(earlier: str, later: str) -> str:
    """Days from ``earlier`` to ``later`` with their fractions, from whole microseconds."""
    return f"(epoch_us({later}) - epoch_us({earlier}))::double / 86400000000"


def customer_features_sql(
    snapshot: date,
    transactions: str = SILVER_TRANSACTIONS,
    customers: str | None = None,
    web_sessions: str | None = None,
    timestamps: TimestampRules = TimestampRules(),
    prepared: bool = False,
) -> str:
    """One row per customer with an order before ``snapshot``; every input row is before it.

    ``customers`` and ``web_sessions`` name bronze tables; when None their columns are null. With
    ``prepared`` the query reads the temp tables ``feature_inputs_statements`` make on the same
    connection (the sources are then ignored); otherwise it computes those inputs itself.
    """
    s = timestamp_literal(snapshot)
    inputs = "" if prepared else ",".join(
        f"{name} as ({sql})"
        for name, sql in feature_inputs_sql(transactions, customers, web_sessions, timestamps).items()
    ) + ","
    return f"""
        with {inputs}
        per_customer as (
            select customer_id,
                   min(purchase_ts) as first_order_ts,
                   max(purchase_ts) as last_order_ts,
                   count(purchase_ts) as frequency,
                   sum(amount) as monetary,
                   avg(purchase_amount) as avg_order_value,
                   count(first_in_category) as distinct_categories,
                   coalesce(-sum(refund_amount), 0) as refunded,
                   coalesce(sum(purchase_amount), 0) as gross,
                   count(gap_seconds) as gaps,
                   sum(gap_seconds) as gap_sum,
                   sum(gap_seconds::hugeint * gap_seconds) as gap_square_sum
            from feature_orders where order_ts < {s} group by 1
        ),
        recent as (
            select customer_id,
                   count(purchase_ts) filter (where order_ts >= {s} - interval 30 day) as orders_30d,
                   count(purchase_ts) filter (where order_ts >= {s} - interval 90 day) as orders_90d,
                   count(purchase_ts) as orders_180d,
                   coalesce(sum(amount) filter (where order_ts >= {s} - interval 30 day), 0) as spend_30d,
                   coalesce(sum(amount) filter (where order_ts >= {s} - interval 90 day), 0) as spend_90d,
                   sum(amount) as spend_180d
            from feature_orders where order_ts >= {s} - interval 180 day and order_ts < {s} group by 1
        ),
        customer_attributes as (
            select customer_id, segment, loyalty_points, marketing_opt_in from feature_customers
            where valid_after < {s} and {s} <= valid_through
        ),
        session_activity as (
            select customer_id,
                   count(*) filter (where ts >= {s} - interval 30 day) as sessions_30d,
                   date_diff('day', cast(max(ts) as date), cast({s} as date)) as days_since_last_session
            from feature_sessions where ts < {s} group by 1
        ),
        gap_statistics as (
            -- mean and sample standard deviation of the gaps, in days, from exact integer sums
            select customer_id,
                   gap_sum::double / nullif(gaps, 0) / 86400 as mean_gap,
                   case when gaps > 1 then sqrt(
                       (gaps * gap_square_sum - gap_sum * gap_sum)::double / (gaps * (gaps - 1))
                   ) / 86400 end as std_gap
            from per_customer
        )
        select {s} as snapshot_date,
               p.customer_id,
               {_days_between('p.last_order_ts', s)} as recency_days,
               p.frequency,
               p.monetary::double as monetary,
               {cents_sql('p.avg_order_value')} as avg_order_value,
               {_days_between('p.first_order_ts', s)} as tenure_days,
               coalesce(r.orders_30d, 0) as orders_30d,
               coalesce(r.orders_90d, 0) as orders_90d,
               coalesce(r.orders_180d, 0) as orders_180d,
               coalesce(r.spend_30d, 0)::double as spend_30d,
               coalesce(r.spend_90d, 0)::double as spend_90d,
               coalesce(r.spend_180d, 0)::double as spend_180d,
               -- the last 90 days minus the 90 before them
               coalesce(2 * r.spend_90d - r.spend_180d, 0)::double as spend_trend,
               g.mean_gap as mean_days_between_orders,
               g.std_gap as std_days_between_orders,
               {_days_between('p.last_order_ts', s)} / nullif(g.mean_gap, 0) as overdue_ratio,
               p.distinct_categories,
               p.refunded::double / nullif(p.gross, 0)::double as refund_share,
               c.segment, c.loyalty_points, c.marketing_opt_in,
               coalesce(w.sessions_30d, 0) as sessions_30d,
               w.days_since_last_session,
               p.first_order_ts, p.last_order_ts
        from per_customer p
        join gap_statistics g using (customer_id)
        left join recent r using (customer_id)
        left join customer_attributes c using (customer_id)
        left join session_activity w using (customer_id)
        where p.frequency > 0
        order by p.customer_id
    """


def features_query(
    connection, snapshots: list[date], timestamps: TimestampRules = TimestampRules()
) -> tuple[TableQuery, pd.DataFrame]:
    """Every snapshot's features as a query the warehouse runs snapshot by snapshot, and the
    snapshots' ``customers_per_snapshot_sql`` counts. The typed inputs are prepared once for all
    snapshots; each must yield one row per customer with a purchase before it."""
    counts = query_frame(connection, customers_per_snapshot_sql(snapshots)).set_index("snapshot_date")
    query = TableQuery(
        customer_features_schema(),
        selects=tuple(customer_features_sql(s, prepared=True) for s in snapshots),
        setup=feature_inputs_statements(connection, timestamps),
        teardown=tuple(f"drop table if exists {name}" for name in FEATURE_INPUTS),
        expected_rows=tuple(int(counts.loc[pd.Timestamp(s), "customers"]) for s in snapshots),
        summaries={"preview": "select * from {rows} order by snapshot_date desc, customer_id limit 10"},
    )
    return query, counts


def customers_per_snapshot_sql(snapshots: list[date], transactions: str = SILVER_TRANSACTIONS) -> str:
    """Per snapshot, the customers with a purchase before it (one feature row and one label each)
    and those whose rows before it are all refunds: they have no purchase to measure recency or a
    label from, so they are the only ones with history but no feature row."""
    listed = ", ".join(f"({timestamp_literal(s)})" for s in snapshots) or "(null::timestamp)"
    return f"""
        with customers as (
            select customer_id, min(order_ts) as first_row_ts,
                   min(order_ts) filter (where not is_refund) as first_purchase_ts
            from {transactions} group by 1
        )
        select s.snapshot_date,
               count(c.customer_id) filter (where c.first_purchase_ts < s.snapshot_date) as customers,
               count(c.customer_id) filter (where c.first_purchase_ts is null or c.first_purchase_ts >= s.snapshot_date)
                   as refund_only_customers
        from (values {listed}) s(snapshot_date)
        left join customers c on c.first_row_ts < s.snapshot_date
        group by 1 order by 1
    """


def customer_features_schema() -> pandera.DataFrameSchema:
    text = pd.StringDtype("pyarrow")
    number = {c: pandera.Column(float, nullable=True) for c in FEATURE_COLUMNS}
    number.update(
        {
            c: pandera.Column("int64", pandera.Check.ge(0))
            for c in COUNT_FEATURES
        }
    )
    number["recency_days"] = pandera.Column(float, pandera.Check.gt(0), description="days since the last order")
    number["segment"] = pandera.Column(text, nullable=True)
    number["marketing_opt_in"] = pandera.Column("boolean", nullable=True)
    return coerce_except_timestamps(pandera.DataFrameSchema(
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
    ))


