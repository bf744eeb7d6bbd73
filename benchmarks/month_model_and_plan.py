"""Wall time per step of one month's `retrain_and_score` run (model, predictions, value, plan).

Usage: CHURN_HOME=... DAGSTER_HOME=... python benchmarks/month_model_and_plan.py --snapshot 2026-01-01
(after `churn-assets run` has built silver, features and labels there). Runs the job through the
real instance, warehouse and MLflow store, then reads each step's duration from the event log and
the model's out-of-time metrics and the plan's comparison from the materialization metadata.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource

import dagster as dg

from churn_assets.lib.in_process import QUIET_LOGS, run_job
from churn_assets.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", required=True, help="YYYY-MM-01")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    settings = Settings.from_env()
    with dg.DagsterInstance.get() as instance:
        # as `churn-assets run` runs it: every step in this process
        result = run_job(settings, "retrain_and_score", instance, QUIET_LOGS, partition_key=args.snapshot)
        started = {}
        print(f"run {result.run_id}: {'success' if result.success else 'FAILED'}")
        for event in instance.all_logs(result.run_id):
            dagster_event = event.dagster_event
            if dagster_event is None:
                continue
            if dagster_event.event_type_value == "STEP_START":
                started[event.step_key] = event.timestamp
            elif dagster_event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                print(f"  {event.step_key:<28} {event.timestamp - started[event.step_key]:7.1f} s")
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        key = event.materialization.asset_key.to_user_string()
        if "metrics" in metadata:
            print(f"\n{key}: chosen {metadata['chosen_model'].value}, version {metadata['model_version'].value}")
            print(metadata["metrics"].value)
        if "policies_at_equal_spend" in metadata:
            print(f"\n{key}: solve {metadata['solve_seconds'].value:.2f} s, gap {metadata['optimality_gap'].value:.2f}")
            print(metadata["policies_at_equal_spend"].value)
        if "value_error_out_of_time" in metadata:
            print(f"\n{key}: method {metadata['value_method'].value}")
            print(metadata["value_error_out_of_time"].value)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process: {peak:,.0f} MB")


if __name__ == "__main__":
    main()
