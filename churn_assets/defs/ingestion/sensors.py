"""The landing sensor: each new landed file is ingested exactly once; the ledger follows every change."""

import json

import dagster as dg

# the module, not its jobs: the defs loader collects every job a module names
from churn_assets.defs.ingestion import bronze
from churn_assets.defs.ingestion.new_files import SHA_TAG, plan_ingestion
from churn_assets.settings import Settings


def build_landing_sensor(settings: Settings) -> dg.SensorDefinition:
    """The sensor that watches ``settings``' landing folder; ``churn-assets run`` follows the same rules."""

    @dg.sensor(
        jobs=[*bronze.ingest_jobs.values(), bronze.ledger_job],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Watches landing/<source>/ for CSV (.csv, .csv.gz) and Parquet files: one run per new file "
            "content once it has stopped changing, a retry after a failure the machine caused, and a "
            "new landing ledger whenever a file appears, changes or is refused."
        ),
    )
    def landing_sensor(context: dg.SensorEvaluationContext):
        cache = json.loads(context.cursor) if context.cursor else {}
        plan = plan_ingestion(context.instance, settings.landing_dir, cache, settings.settle_seconds)
        for message in plan.refusals:
            context.log.warning(message)
        for waiting in plan.waiting:
            context.log.info(f"waiting for {waiting.file_id}: modified less than {settings.settle_seconds:g} s ago")
        for decision in plan.new:
            context.log.info(decision.message)
        run_requests = [
            dg.RunRequest(
                run_key=d.run_key,
                job_name=bronze.ingest_jobs[d.file.source].name,
                partition_key=d.file.name,
                tags={SHA_TAG: d.sha256},
            )
            for d in plan.new
        ]
        if plan.files or plan.refused_files:
            # run keys are never reused, so the ledger is taken once per state of the landing folder
            run_requests.append(dg.RunRequest(run_key=f"landing_ledger@{plan.landing_fingerprint}", job_name=bronze.ledger_job.name))
        new_names: dict[str, list[str]] = {}
        for d in plan.new:
            if d.retry_of is None:
                new_names.setdefault(d.file.source, []).append(d.file.name)
        return dg.SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[
                bronze.FILE_PARTITIONS[source].build_add_request(names) for source, names in new_names.items()
            ],
            cursor=json.dumps(plan.stat_cache, sort_keys=True),
            skip_reason=None if run_requests else "no landed files",
        )

    return landing_sensor


@dg.run_failure_sensor(
    monitored_jobs=list(bronze.ingest_jobs.values()),
    request_job=bronze.ledger_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Takes the landing ledger again after a failed ingestion, so the file shows as refused or waiting.",
)
def ledger_after_failed_ingestion(context: dg.RunFailureSensorContext):
    return dg.RunRequest(run_key=f"landing_ledger@failed-{context.dagster_run.run_id}")
