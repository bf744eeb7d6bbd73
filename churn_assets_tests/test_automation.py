"""Declarative automation: what refreshes on its own after a landed file is ingested."""

import dagster as dg

from churn_assets.defs.features import CHURN_LABELS, CUSTOMER_FEATURES
from churn_assets.defs.silver import SILVER_QUARANTINE, SILVER_TRANSACTIONS
from churn_assets_tests.conftest import land
from churn_assets_tests.dagster_helpers import launch, tick

JAN = "order_id,customer_id,order_ts,amount\nO1,1,2024-01-05 10:00:00,10.00\n"


def test_ingesting_a_file_requests_silver_then_nothing_more(settings, instance, definitions):
    first = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    land(settings, "transactions", "jan.csv", JAN)
    (ingestion,) = launch(instance, definitions, tick(instance, settings)).values()
    assert ingestion.success
    after = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=first.cursor)
    assert after.get_num_requested(SILVER_TRANSACTIONS) == 1
    assert after.get_num_requested(SILVER_QUARANTINE) == 1
    again = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=after.cursor)
    assert again.get_num_requested(SILVER_TRANSACTIONS) == 0  # requested once, not on every tick


def test_labels_refresh_every_month_whose_horizon_may_still_be_completing(settings, definitions):
    labels = definitions.get_assets_def(CHURN_LABELS).automation_conditions_by_key[CHURN_LABELS]
    features = definitions.get_assets_def(CUSTOMER_FEATURES).automation_conditions_by_key[CUSTOMER_FEATURES]
    window = next(c for c in labels.children if isinstance(c, type(dg.AutomationCondition.in_latest_time_window())))
    assert window.serializable_lookback_timedelta.days == settings.churn_horizon_days + 62
    assert "any_deps_missing" not in str(features)  # a refused landed file must not freeze features
