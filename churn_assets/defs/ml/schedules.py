"""The monthly retraining on the calendar, for the newest month the data reaches."""

import dagster as dg

from churn_assets.core.silver.snapshot_inputs import snapshot_keys_with_data
# the module, not its job: the defs loader collects every job a module names
from churn_assets.defs.ml import model
from churn_assets.lib.partitions import snapshot_partitions
from churn_assets.lib.staleness import data_state
from churn_assets.settings import Settings


def build_monthly_retraining(settings: Settings) -> dg.ScheduleDefinition:
    """On the 1st at 04:00, retrain, rescore and re-plan the newest month with data. Written out
    rather than ``build_schedule_from_partitioned_job``, which targets the newest calendar month,
    with or without data."""
    partitions = snapshot_partitions(settings)

    @dg.schedule(
        cron_schedule="0 4 1 * *", job=model.ml_job, default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Retrains, rescores and re-plans the newest month that has data.",
    )
    def monthly_retraining(context: dg.ScheduleEvaluationContext):
        keys = snapshot_keys_with_data(data_state(context.instance), partitions.get_partition_keys())
        if not keys:
            return dg.SkipReason("no month has data yet")
        tick = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return dg.RunRequest(run_key=f"{keys[-1]}@{tick}", partition_key=keys[-1])

    return monthly_retraining
