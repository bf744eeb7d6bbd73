"""The landing sensor: each new landed file is ingested exactly once."""

import json

import dagster as dg

from churn_assets.defs.bronze import FILE_PARTITIONS, ingest_jobs
from churn_assets.defs.ingestion import SHA_TAG, plan_ingestion
from churn_assets.settings import Settings


def build_landing_sensor(settings: Settings) -> dg.SensorDefinition:
    """The sensor that watches ``settings``' landing folder; ``churn-assets run`` evaluates it too."""

    @dg.sensor(
        jobs=list(ingest_jobs.values()),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches landing/<source>/ for CSV (.csv, .csv.gz) and Parquet files; one run per new file content.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext):
        cache = json.loads(context.cursor) if context.cursor else {}
        plan = plan_ingestion(context.instance, settings.landing_dir, cache)
        for refusal in plan.refused_files:
            context.log.warning(refusal)
        for decision in plan.decisions:
            (context.log.warning if decision in plan.refused else context.log.info)(decision.message)
        run_requests = [
            dg.RunRequest(
                run_key=d.run_key,
                job_name=ingest_jobs[d.file.source].name,
                partition_key=d.file.name,
                tags={SHA_TAG: d.sha256},
            )
            for d in plan.new
        ]
        new_names: dict[str, list[str]] = {}
        for d in plan.new:
            new_names.setdefault(d.file.source, []).append(d.file.name)
        return dg.SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[
                FILE_PARTITIONS[source].build_add_request(names) for source, names in new_names.items()
            ],
            cursor=json.dumps(plan.stat_cache, sort_keys=True),
            skip_reason=None if run_requests else "no new landed files",
        )

    return landing_sensor
