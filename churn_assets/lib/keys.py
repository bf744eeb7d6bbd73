"""Every table's asset key, in one place; the DuckDB table is ``schema.name`` of the same key."""

import dagster as dg


def bronze_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["bronze", source])


LANDING_LEDGER = dg.AssetKey(["bronze", "landing_ledger"])
SILVER_TRANSACTIONS = dg.AssetKey(["silver", "transactions"])
SILVER_QUARANTINE = dg.AssetKey(["silver", "quarantine"])
CUSTOMER_FEATURES = dg.AssetKey(["silver", "customer_features"])
CHURN_LABELS = dg.AssetKey(["silver", "churn_labels"])
CHURN_MODEL = dg.AssetKey(["ml", "churn_model"])
CHURN_PREDICTIONS = dg.AssetKey(["ml", "churn_predictions"])
CUSTOMER_VALUE = dg.AssetKey(["gold", "customer_value"])
RETENTION_ACTIONS = dg.AssetKey(["gold", "retention_actions"])
RETENTION_SUMMARY = dg.AssetKey(["gold", "retention_summary"])
CAMPAIGN_CONTACTS = dg.AssetKey(["silver", "campaign_contacts"])
CONTACT_QUARANTINE = dg.AssetKey(["silver", "campaign_contacts_quarantine"])
CAMPAIGN_OUTCOMES = dg.AssetKey(["gold", "campaign_outcomes"])
CAMPAIGN_EXECUTION = dg.AssetKey(["gold", "campaign_execution"])
ACTION_EFFECTS = dg.AssetKey(["gold", "action_effects"])
UPLIFT_VALIDATION = dg.AssetKey(["gold", "uplift_validation"])

# The tables computed inside DuckDB, after bronze: what ``churn-assets bench --tables-only`` builds.
WAREHOUSE_TABLES = frozenset(
    {LANDING_LEDGER, SILVER_TRANSACTIONS, SILVER_QUARANTINE, CAMPAIGN_CONTACTS, CONTACT_QUARANTINE,
     CUSTOMER_FEATURES, CHURN_LABELS}
)

# The blocking check that proves every bronze row is in silver or the quarantine.
ROW_ACCOUNTING = dg.AssetCheckKey(SILVER_TRANSACTIONS, "row_accounting")
