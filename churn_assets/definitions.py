"""The code location: every layer under ``defs/`` loaded from its folder, with the resources,
the automation sensor and the job ``churn-assets run`` selects from."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from churn_assets.lib.automation import AUTOMATED, automation_sensor
from churn_assets.lib.config import loading_with
from churn_assets.lib.resources import build_resources
from churn_assets.settings import Settings

# Every table after bronze: ``churn-assets run`` runs a selection of it per stale range.
refresh_job = dg.define_asset_job(
    "refresh_tables",
    selection=AUTOMATED,
    description="Silver and the monthly tables; churn-assets run runs the stale part of it.",
)


def build_definitions(settings: Settings | None = None, executor: dg.ExecutorDefinition | None = None) -> dg.Definitions:
    """Definitions for ``settings`` (default: from the environment), read once here. ``executor``
    replaces the UI's subprocess-per-step executor, e.g. for headless runs in this process."""
    settings = settings or Settings.from_env()
    with loading_with(settings):
        layers = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    return dg.Definitions.merge(layers, dg.Definitions(
        jobs=[refresh_job],
        sensors=[automation_sensor],
        resources=build_resources(settings),
        # Runs launched from the UI execute each step in a subprocess. Forked from a server that
        # imported this module once per run, a step starts without re-importing Dagster, pandas
        # and scikit-learn (seconds each time on a 2-core laptop); MLflow and matplotlib load on
        # first use, in the steps that need them. Named here because the default preloads only
        # Dagster's executor module.
        executor=executor or dg.multiprocess_executor.configured(
            {"start_method": {"forkserver": {"preload_modules": ["churn_assets.definitions"]}}}
        ),
    ))


defs = build_definitions()
