"""Driving the landing sensor and ingest jobs against a real Dagster instance, as the daemon would."""

from __future__ import annotations

import dagster as dg

from churn_assets.defs.sensors import build_landing_sensor
from churn_assets.runner import QUIET_LOGS
from churn_assets.settings import Settings

QUIET = QUIET_LOGS


def tick(instance: dg.DagsterInstance, settings: Settings, cursor: str | None = None) -> dg.SensorResult:
    """One evaluation of the landing sensor; applies its dynamic-partition requests."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = build_landing_sensor(settings)(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def launch(instance, definitions: dg.Definitions, result: dg.SensorResult) -> dict[str, dg.ExecuteInProcessResult]:
    """Execute every run the sensor requested; returns results by partition key."""
    outcomes = {}
    for request in result.run_requests or []:
        job = definitions.resolve_job_def(request.job_name)
        outcomes[request.partition_key] = job.execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags=request.tags,
            run_config=QUIET,
            raise_on_error=False,
        )
    return outcomes


def materialize_file(instance, definitions, source: str, name: str, config: dict | None = None):
    """Materialize one file partition of bronze.<source>, as a user would from the UI."""
    run_config = dict(QUIET)
    if config:
        run_config["ops"] = {f"bronze__{source}": {"config": config}}
    return definitions.resolve_job_def(f"ingest_{source}").execute_in_process(
        instance=instance, partition_key=name, run_config=run_config, raise_on_error=False
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            return data.user_failure_data.description if data.user_failure_data else data.error.to_string()
    return ""
