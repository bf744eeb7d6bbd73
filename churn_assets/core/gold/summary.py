"""SQL views in schema ``gold`` that answer the retention team's questions per snapshot."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.tables import GOLD_CUSTOMER_VALUE, GOLD_RETENTION_ACTIONS

VIEWS = {
    "high_risk_customers": f"""
        select snapshot_date, count(*) as customers,
               sum(revenue_at_risk) as revenue_at_risk
        from {GOLD_CUSTOMER_VALUE} where risk_segment = 'High'
        group by 1 order by 1
    """,
    "revenue_at_risk_by_segment": f"""
        select snapshot_date, risk_segment, count(*) as customers,
               round(sum(expected_value), 2) as expected_value,
               round(sum(revenue_at_risk), 2) as revenue_at_risk
        from {GOLD_CUSTOMER_VALUE}
        group by all
        union all
        select snapshot_date, 'Total', count(*), round(sum(expected_value), 2), round(sum(revenue_at_risk), 2)
        from {GOLD_CUSTOMER_VALUE} group by 1
        order by 1, 2
    """,
    "retention_priorities": f"""
        select a.snapshot_date, a.priority, a.customer_id, a.action, a.cost,
               a.expected_saved_revenue, a.expected_net_value, v.churn_probability,
               v.risk_segment, v.expected_value, a.reason
        from {GOLD_RETENTION_ACTIONS} a
        join {GOLD_CUSTOMER_VALUE} v using (snapshot_date, customer_id)
        where not a.is_control
        order by a.snapshot_date, a.priority
    """,
}


def create_views_sql() -> list[str]:
    """``create or replace view`` statements for every view in ``VIEWS``."""
    return [f"create or replace view gold.{name} as {sql}" for name, sql in VIEWS.items()]


def retention_summary_sql(snapshot: str) -> str:
    """One row per risk segment and a total for ``snapshot`` (YYYY-MM-DD): customers, revenue at
    risk, customers acted on, controls, spend and expected saved revenue and net value."""
    return f"""
        with v as (select * from {GOLD_CUSTOMER_VALUE} where snapshot_date = date '{snapshot}'),
        a as (select * from {GOLD_RETENTION_ACTIONS} where snapshot_date = date '{snapshot}'),
        joined as (
            select v.risk_segment, v.revenue_at_risk, a.customer_id is not null and not a.is_control as acted,
                   coalesce(a.is_control, false) as control, coalesce(a.cost, 0) as cost,
                   coalesce(a.expected_saved_revenue, 0) as saved, coalesce(a.expected_net_value, 0) as net
            from v left join a using (customer_id)
        )
        select date '{snapshot}' as snapshot_date,
               coalesce(risk_segment, 'Total') as risk_segment,
               count(*) as customers,
               round(sum(revenue_at_risk), 2) as revenue_at_risk,
               count(*) filter (where acted) as customers_acted_on,
               count(*) filter (where control) as control_customers,
               round(sum(cost), 2) as spend,
               round(sum(saved), 2) as expected_saved_revenue,
               round(sum(net), 2) as expected_net_value
        from joined
        group by rollup (risk_segment)
        order by grouping(joined.risk_segment),
                 case joined.risk_segment when 'High' then 1 when 'Medium' then 2 else 3 end
    """


def retention_summary_schema() -> pandera.DataFrameSchema:
    """One row per risk segment and a 'Total' row per snapshot, as ``retention_summary_sql`` returns."""
    count = pandera.Column("int64", pandera.Check.ge(0))
    money = pandera.Column(float, nullable=True)
    return pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]"),
            "risk_segment": pandera.Column(pd.StringDtype("pyarrow"), pandera.Check.isin(["High", "Medium", "Low", "Total"])),
            "customers": count,
            "revenue_at_risk": money,
            "customers_acted_on": count,
            "control_customers": count,
            "spend": money,
            "expected_saved_revenue": money,
            "expected_net_value": money,
        },
        name="retention_summary", unique=["snapshot_date", "risk_segment"], strict=True, ordered=True, coerce=True,
    )
