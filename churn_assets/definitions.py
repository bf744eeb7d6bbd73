"""The code location: every layer's assets, checks, jobs, sensors and schedule, with their resources."""

from __future__ import annotations

import dagster as dg

from churn_assets.defs.automation import AUTOMATED, automation_sensor
from churn_assets.defs.action_effects import build_action_effects, build_uplift_validation
from churn_assets.defs.campaigns import build_campaign_assets, campaign_checks
from churn_assets.defs.bronze import build_bronze_assets, build_landing_ledger, ingest_jobs, ledger_job
from churn_assets.defs.checks import bronze_checks
from churn_assets.defs.features import build_snapshot_assets, snapshot_checks
from churn_assets.defs.gold import build_gold_assets
from churn_assets.defs.keys import CHURN_LABELS, CUSTOMER_FEATURES
from churn_assets.defs.ml import build_ml_assets, ml_job
from churn_assets.defs.resources import build_resources
from churn_assets.defs.schedules import build_monthly_retraining
from churn_assets.defs.sensors import build_landing_sensor, ledger_after_failed_ingestion
from churn_assets.defs.silver import build_silver_assets, silver_checks, silver_job
from churn_assets.settings import Settings

# Every table after bronze: ``churn-assets run`` runs a selection of it per stale range.
refresh_job = dg.define_asset_job(
    "refresh_tables",
    selection=AUTOMATED,
    description="Silver and the monthly tables; churn-assets run runs the stale part of it.",
)
snapshots_job = dg.define_asset_job(
    "build_snapshots",
    selection=dg.AssetSelection.assets(CUSTOMER_FEATURES, CHURN_LABELS),
    description="Features and labels for a month or a range of months.",
)


def build_definitions(settings: Settings | None = None, executor: dg.ExecutorDefinition | None = None) -> dg.Definitions:
    """Definitions for ``settings`` (default: from the environment), read once here. ``executor``
    replaces the UI's subprocess-per-step executor, e.g. for headless runs in this process."""
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[
            *build_bronze_assets(settings), build_landing_ledger(settings), *build_silver_assets(settings), *build_snapshot_assets(settings),
            *build_ml_assets(settings), *build_gold_assets(settings), *build_campaign_assets(settings),
            build_action_effects(settings), build_uplift_validation(settings),
        ],
        asset_checks=[*bronze_checks, *silver_checks, *snapshot_checks, *campaign_checks],
        jobs=[*ingest_jobs.values(), ledger_job, silver_job, snapshots_job, ml_job, refresh_job],
        schedules=[build_monthly_retraining(settings)],
        sensors=[build_landing_sensor(settings), ledger_after_failed_ingestion, automation_sensor],
        resources=build_resources(settings),
        # Runs launched from the UI execute each step in a subprocess. Forked from a server that
        # imported this module once per run, a step starts without re-importing Dagster, pandas
        # and scikit-learn (seconds each time on a 2-core laptop); MLflow and matplotlib load on
        # first use, in the steps that need them. Named here because the default preloads only
        # Dagster's executor module.
        executor=executor or dg.multiprocess_executor.configured(
            {"start_method": {"forkserver": {"preload_modules": ["churn_assets.definitions"]}}}
        ),
    )


defs = build_definitions()
