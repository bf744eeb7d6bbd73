"""The code location: every layer's assets, checks, jobs and sensors, with their resources."""

from __future__ import annotations

import dagster as dg

from churn_assets.defs.automation import automation_sensor
from churn_assets.defs.bronze import bronze_assets, ingest_jobs
from churn_assets.defs.checks import bronze_checks
from churn_assets.defs.resources import build_resources
from churn_assets.defs.features import build_snapshot_assets, snapshot_checks
from churn_assets.defs.gold import build_gold_assets
from churn_assets.defs.ml import build_ml_assets, ml_job, monthly_retraining
from churn_assets.defs.sensors import landing_sensor
from churn_assets.defs.silver import silver_assets, silver_checks, silver_job
from churn_assets.settings import Settings


def build_definitions(settings: Settings | None = None, executor: dg.ExecutorDefinition | None = None) -> dg.Definitions:
    """Definitions for ``settings`` (default: from the environment). ``executor`` replaces the
    UI's subprocess-per-step executor, e.g. for headless runs in this process."""
    settings = settings or Settings.from_env()
    snapshot_assets = build_snapshot_assets(settings)
    snapshots_job = dg.define_asset_job(
        "build_snapshots",
        selection=dg.AssetSelection.assets(*snapshot_assets),
        description="Features and labels for one monthly snapshot.",
    )
    return dg.Definitions(
        assets=[*bronze_assets, *silver_assets, *snapshot_assets, *build_ml_assets(settings), *build_gold_assets(settings)],
        asset_checks=[*bronze_checks, *silver_checks, *snapshot_checks],
        jobs=[*ingest_jobs.values(), silver_job, snapshots_job, ml_job],
        schedules=[monthly_retraining],
        sensors=[landing_sensor, automation_sensor],
        resources=build_resources(settings),
        # Runs launched from the UI execute each step in a subprocess. Forked from a server that
        # imported this module once per run, a step starts without re-importing pandas,
        # scikit-learn and MLflow (several seconds each time on a 2-core laptop). Named here
        # because the default preloads only Dagster's executor module.
        executor=executor or dg.multiprocess_executor.configured(
            {"start_method": {"forkserver": {"preload_modules": ["churn_assets.definitions"]}}}
        ),
    )


defs = build_definitions()
