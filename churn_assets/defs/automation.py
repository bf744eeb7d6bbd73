"""When assets refresh on their own: after new data lands, and when a label's horizon is observed.

Needs the daemon (``churn-assets dev`` runs it); the automation sensor is on by default.
"""

from datetime import timedelta

import dagster as dg


def refresh_after_new_data() -> dg.AutomationCondition:
    """Materialize when an upstream asset was updated (for partitioned assets: the newest month).

    Unlike plain ``eager``, a missing upstream partition does not hold it back: a refused landed
    file stays a missing bronze partition for good, and must not freeze everything downstream.
    """
    return dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())


def refresh_recent_months(horizon_days: int) -> dg.AutomationCondition:
    """Like ``refresh_after_new_data`` over every month whose label horizon can still be completing,
    so a month's labels appear once the data covers its horizon, without a manual backfill."""
    return refresh_after_new_data().replace(
        dg.AutomationCondition.in_latest_time_window(),
        dg.AutomationCondition.in_latest_time_window(timedelta(days=horizon_days + 62)),
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "refresh_downstream_assets",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refreshes silver, features, labels and predictions after new data is ingested.",
)
