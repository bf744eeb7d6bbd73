"""Driving the landing sensor and ingest jobs against a real Dagster instance, as the daemon would."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager

import dagster as dg

from churn_assets.defs.ingestion.sensors import build_landing_sensor
from churn_assets.lib.in_process import QUIET_LOGS
from churn_assets.settings import Settings

QUIET = QUIET_LOGS


def tick(instance: dg.DagsterInstance, settings: Settings, cursor: str | None = None) -> dg.SensorResult:
    """One evaluation of the landing sensor; applies its dynamic-partition requests."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = build_landing_sensor(settings)(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def ingestion_requests(result: dg.SensorResult) -> list[dg.RunRequest]:
    """The sensor's requests to ingest a file (the others take the landing ledger)."""
    return [r for r in result.run_requests or [] if r.job_name.startswith("ingest_")]


def ledger_requests(result: dg.SensorResult) -> list[dg.RunRequest]:
    return [r for r in result.run_requests or [] if r.job_name == "record_landing_ledger"]


def launch(
    instance, definitions: dg.Definitions, result: dg.SensorResult, ledger: bool = False
) -> dict[str, dg.ExecuteInProcessResult]:
    """Execute every ingestion run the sensor requested (then its ledger run, keyed 'ledger', when
    ``ledger``), in order; returns results by partition key."""
    outcomes = {}
    for request in ingestion_requests(result) + (ledger_requests(result) if ledger else []):
        job = definitions.resolve_job_def(request.job_name)
        outcomes[request.partition_key or "ledger"] = job.execute_in_process(
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


@contextmanager
def hold_warehouse(settings: Settings):
    """Another process (an analyst's DuckDB session, say) holding the warehouse open for writing."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(900)",
         str(settings.warehouse_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()
