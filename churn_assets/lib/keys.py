"""Every table's asset key, derived from its warehouse name in ``core/tables.py``, so each table has
one name: the DuckDB table ``schema.name`` is the key ``schema/name``."""

import dagster as dg

from churn_assets.core import tables


def _key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table.split("."))


def bronze_key(source: str) -> dg.AssetKey:
    return _key(getattr(tables, f"BRONZE_{source.upper()}"))


LANDING_LEDGER = _key(tables.BRONZE_LANDING_LEDGER)
SILVER_TRANSACTIONS = _key(tables.SILVER_TRANSACTIONS)
SILVER_QUARANTINE = _key(tables.SILVER_QUARANTINE)
CUSTOMER_FEATURES = _key(tables.SILVER_CUSTOMER_FEATURES)
CHURN_LABELS = _key(tables.SILVER_CHURN_LABELS)
CHURN_MODEL = dg.AssetKey(["ml", "churn_model"])  # a model in MLflow, not a warehouse table
CHURN_PREDICTIONS = _key(tables.ML_CHURN_PREDICTIONS)
CUSTOMER_VALUE = _key(tables.GOLD_CUSTOMER_VALUE)
RETENTION_ACTIONS = _key(tables.GOLD_RETENTION_ACTIONS)
RETENTION_SUMMARY = _key(tables.GOLD_RETENTION_SUMMARY)
CAMPAIGN_CONTACTS = _key(tables.SILVER_CAMPAIGN_CONTACTS)
CONTACT_QUARANTINE = _key(tables.SILVER_CAMPAIGN_CONTACTS_QUARANTINE)
CAMPAIGN_OUTCOMES = _key(tables.GOLD_CAMPAIGN_OUTCOMES)
CAMPAIGN_EXECUTION = _key(tables.GOLD_CAMPAIGN_EXECUTION)
ACTION_EFFECTS = _key(tables.GOLD_ACTION_EFFECTS)
UPLIFT_VALIDATION = _key(tables.GOLD_UPLIFT_VALIDATION)

# The tables computed inside DuckDB, after bronze: what ``python -m benchmarks.bench --tables-only`` builds.
WAREHOUSE_TABLES = frozenset(
    {LANDING_LEDGER, SILVER_TRANSACTIONS, SILVER_QUARANTINE, CAMPAIGN_CONTACTS, CONTACT_QUARANTINE,
     CUSTOMER_FEATURES, CHURN_LABELS}
)

# The blocking check that proves every bronze row is in silver or the quarantine.
ROW_ACCOUNTING = dg.AssetCheckKey(SILVER_TRANSACTIONS, "row_accounting")
