"""Silver campaign contacts: what each retention campaign executed, typed, and the quarantine of the rest.

One SQL pass over ``bronze.campaign_contacts`` classifies every landed row: it reaches silver or
is quarantined with the first reason that applies, so for every file bronze rows = silver rows +
quarantined rows. A campaign is named by its plan's snapshot (``campaign_id``, YYYY-MM-01).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.silver.schemas import quarantine_schema_for
from churn_assets.core.ingestion.sources import CAMPAIGN_CONTACTS, TimestampRules, customer_id_sql, timestamp_sql
from churn_assets.core.warehouse import query_frame, table_exists
from churn_assets.core.tables import SILVER_CAMPAIGN_CONTACTS

# In the order they are tested; a row gets the first that applies.
CONTACT_QUARANTINE_REASONS = (
    "campaign_id_not_a_snapshot",
    "missing_customer_id",
    "unknown_action",
    "unparseable_is_control",
    "unparseable_contacted_at",
    "future_contacted_at",
    "contact_before_snapshot",
    "unparseable_cost",
    "customer_not_in_plan",
    "duplicate_contact",
)
_RAW_COLUMNS = CAMPAIGN_CONTACTS.columns
_TRUE, _FALSE = ("true", "t", "1", "yes", "y"), ("false", "f", "0", "no", "n")


def _listed(values) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


def classified_contacts_sql(bronze_table: str, transactions: str, actions: tuple[str, ...], timestamps: TimestampRules = TimestampRules()) -> str:
    """Every bronze contact row, typed, with ``reason`` null for the rows that reach silver.

    A control may leave ``contacted_at`` empty (it was never contacted). A customer is in a
    campaign's plan only when they ordered before its snapshot (``transactions``: silver's
    orders); among contacts of one customer in one campaign the first landed (by file, then row)
    is kept and later ones are duplicates."""
    control = "lower(trim(is_control))"
    return f"""
        with typed as (
            select
                case when regexp_matches(trim(campaign_id), '^\\d{{4}}-\\d{{2}}-01$')
                     then try_cast(trim(campaign_id) as date) end as snapshot_date,
                nullif({customer_id_sql('customer_id')}, '') as customer_id,
                lower(trim(action)) as action,
                {timestamp_sql('contacted_at', timestamps)} as contacted_ts,
                nullif(trim(contacted_at), '') is null as no_contacted_at,
                case when {control} in ({_listed(_TRUE)}) then true
                     when {control} in ({_listed(_FALSE)}) then false end as is_control,
                try_cast(trim(cost) as double) as cost,
                nullif(trim(cost), '') is not null as has_cost,
                {", ".join(f"{c} as raw_{c}" for c in _RAW_COLUMNS)},
                _source_file, _row_number, _file_sha256, _ingested_at
            from {bronze_table}
        ),
        first_orders as (
            select customer_id, min(order_ts) as first_order_ts from {transactions} group by 1
        ),
        judged as (
            select t.*,
                case
                    when t.snapshot_date is null then 'campaign_id_not_a_snapshot'
                    when t.customer_id is null then 'missing_customer_id'
                    when t.action is null or t.action not in ({_listed(actions)}) then 'unknown_action'
                    when t.is_control is null then 'unparseable_is_control'
                    when t.contacted_ts is null and not (t.no_contacted_at and t.is_control)
                        then 'unparseable_contacted_at'
                    when t.contacted_ts > t._ingested_at then 'future_contacted_at'
                    when t.contacted_ts < t.snapshot_date then 'contact_before_snapshot'
                    when t.has_cost and (t.cost is null or not isfinite(t.cost) or t.cost < 0) then 'unparseable_cost'
                    when f.first_order_ts is null or f.first_order_ts >= t.snapshot_date then 'customer_not_in_plan'
                end as invalid_reason
            from typed t left join first_orders f using (customer_id)
        )
        select *,
            case
                when invalid_reason is not null then invalid_reason
                when row_number() over (
                    partition by invalid_reason is null, snapshot_date, customer_id order by _source_file, _row_number
                ) > 1 then 'duplicate_contact'
            end as reason
        from judged
    """


def silver_contacts_sql(classified: str) -> str:
    """The valid contacts, one row per campaign and customer."""
    return f"""
        select snapshot_date, customer_id, action, contacted_ts as contacted_at, is_control,
               case when has_cost then cost end as cost, _source_file, _row_number
        from {classified} where reason is null
        order by snapshot_date, customer_id
    """


def contact_quarantine_sql(classified: str) -> str:
    """Every landed contact row that is not in silver, with its reason and landed values."""
    raw = ", ".join(f"raw_{c} as {c}" for c in _RAW_COLUMNS)
    return f"""
        select _source_file, _row_number, _file_sha256, reason, {raw}
        from {classified} where reason is not null
        order by _source_file, _row_number
    """


def contacts_and_quarantine(
    connection, bronze_table: str, transactions: str, actions: tuple[str, ...], timestamps: TimestampRules = TimestampRules()
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Silver contacts, their quarantine and each campaign's fingerprint (``campaign_fingerprints_sql``)
    from one classifying pass over ``bronze_table``."""
    classified = classified_contacts_sql(bronze_table, transactions, actions, timestamps)
    connection.execute(f"create or replace temp table classified_contacts as {classified}").fetchall()
    fingerprints = connection.execute(campaign_fingerprints_sql(f"({silver_contacts_sql('classified_contacts')})")).fetchall()
    return (
        query_frame(connection, silver_contacts_sql("classified_contacts")),
        query_frame(connection, contact_quarantine_sql("classified_contacts")),
        dict(fingerprints),
    )


def campaign_fingerprints_sql(contacts: str) -> str:
    """Per campaign (YYYY-MM-DD) of ``contacts`` (silver's columns): a fingerprint of its contacts
    that changes when any of them does (an order-independent combination of row hashes)."""
    return f"""
        select strftime(snapshot_date, '%Y-%m-%d') as campaign,
               bit_xor(hash(customer_id, action, contacted_at, is_control, cost))::varchar as fingerprint
        from {contacts} group by 1 order by 1
    """


def contact_accounting_sql(bronze_table: str, silver_table: str, quarantine_table: str) -> str:
    """Per landed file: bronze rows, silver rows, quarantined rows, and the difference (zero when nothing was lost)."""
    return f"""
        with counted as (
            select _source_file, 1 as bronze, 0 as silver, 0 as quarantined from {bronze_table}
            union all select _source_file, 0, 1, 0 from {silver_table}
            union all select _source_file, 0, 0, 1 from {quarantine_table}
        )
        select _source_file, sum(bronze)::bigint as bronze_rows, sum(silver)::bigint as silver_rows,
               sum(quarantined)::bigint as quarantined_rows,
               (sum(bronze) - sum(silver) - sum(quarantined))::bigint as unaccounted
        from counted group by 1 order by 1
    """


def running_campaign_customers_sql(snapshot: str, horizon_days: int) -> str:
    """Customers a campaign before ``snapshot`` contacted or held out and is still measuring (its
    churn horizon has not ended by the snapshot): acting on them again would blur its read-out."""
    return f"""
        select distinct customer_id from {SILVER_CAMPAIGN_CONTACTS}
        where snapshot_date < date '{snapshot}' and snapshot_date + interval {int(horizon_days)} day > date '{snapshot}'
    """


def in_running_campaign(connection, customers: pd.DataFrame, snapshot: str, horizon_days: int) -> np.ndarray:
    """Per row of ``customers``: whether a running campaign holds the customer
    (``running_campaign_customers_sql``); none before any contact landed."""
    if not table_exists(connection, "silver", "campaign_contacts"):
        return np.zeros(len(customers), dtype=bool)
    running = query_frame(connection, running_campaign_customers_sql(snapshot, horizon_days))["customer_id"]
    return customers["customer_id"].isin(running).to_numpy(dtype=bool)


def empty_bronze_contacts_sql() -> str:
    """A relation shaped like ``bronze.campaign_contacts`` with no rows, for before any contact landed."""
    text = ", ".join(f"cast(null as varchar) as {c}" for c in (*_RAW_COLUMNS, "_source_file", "_file_sha256"))
    return f"(select {text}, cast(null as timestamp) as _ingested_at, cast(null as bigint) as _row_number where false)"


def silver_contacts_schema() -> pandera.DataFrameSchema:
    text = pd.StringDtype("pyarrow")
    return pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]", description="The campaign: its plan's snapshot"),
            "customer_id": pandera.Column(text),
            "action": pandera.Column(text, description="The action executed (or held back, for a control)"),
            "contacted_at": pandera.Column("datetime64[us]", nullable=True, description="Empty for a control never contacted"),
            "is_control": pandera.Column(bool, description="Held out at random: not contacted"),
            "cost": pandera.Column(float, pandera.Check.ge(0), nullable=True, description="As landed; empty: the catalogue's"),
            "_source_file": pandera.Column(text),
            "_row_number": pandera.Column("int64", pandera.Check.ge(1)),
        },
        name="campaign_contacts", unique=["snapshot_date", "customer_id"], strict=True, ordered=True, coerce=True,
    )


def contact_quarantine_schema() -> pandera.DataFrameSchema:
    return quarantine_schema_for("campaign_contacts_quarantine", CONTACT_QUARANTINE_REASONS, _RAW_COLUMNS)
