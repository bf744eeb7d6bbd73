"""Headless runs of the pipeline into the persistent Dagster instance (``churn-assets run``).

Dagster decides what runs: the landing sensor's rules say which files to ingest, and the assets'
automation conditions (``run_plan.stale_partitions``) say which partitions are stale; this module
executes what they ask for in this process, then asks again, until nothing is stale. Runs go
through the same assets, resources and instance the UI uses, so they show up in ``dagster dev``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from churn_assets.core import tables
from churn_assets.core.ingestion.bronze import check_landed_columns
from churn_assets.core.ingestion.landing import LandingError, Verdict
from churn_assets.core.ingestion.sources import SOURCES
from churn_assets.core.ingestion.ledger import FileVerdict, LedgerEntry
from churn_assets.lib.failures import RETRY_TAG, failed_for_environment, newest_failure, step_failure_text
from churn_assets.defs.ingestion.new_files import (
    SHA_TAG,
    IngestionPlan,
    partitions_name,
    plan_ingestion,
)
from churn_assets.lib.keys import CHURN_MODEL, LANDING_LEDGER
from churn_assets.run_plan import RunPlan, consecutive_spans, plan_runs, stale_partitions
from churn_assets.settings import Settings
from churn_assets.lib.in_process import QUIET_LOGS, fail_abandoned_runs, in_process_definitions, run_assets, run_job
from churn_assets.lib.run_report import PipelineReport, warehouse_connection

LEDGER_JOB = "record_landing_ledger"


def run_pipeline(
    settings: Settings,
    instance: dg.DagsterInstance | None = None,
    verbose: bool = False,
    echo: Callable[[str], None] = lambda _: None,
    settle_seconds: float | None = None,
    only: Collection[dg.AssetKey] | None = None,
) -> PipelineReport:
    """Ingest every new landed file into bronze once it has settled (``settle_seconds``, default the
    setting), then build what the automation conditions call stale (of ``only``, when given),
    round after round, until nothing is, and take the landing ledger. Returns what happened."""
    settle_seconds = settings.settle_seconds if settle_seconds is None else settle_seconds
    started = time.perf_counter()
    instance = instance or dg.DagsterInstance.get()
    definitions = in_process_definitions(settings)
    report = PipelineReport(settings)
    for run_id in fail_abandoned_runs(instance):
        report.notices.append(
            f"run {run_id} was left unfinished by a process that no longer exists (killed?): marked "
            "failed and its DuckDB pool slot released; what it did not finish is rebuilt below"
        )
    plan = _settled_plan(instance, settings, settle_seconds, echo)
    report.failures += plan.refusals  # every refusal makes the run exit non-zero, naming the file
    report.notices += [d.message for d in plan.decisions if d.verdict is Verdict.DUPLICATE_CONTENT]
    report.notices += [
        f"{f.file_id} is still being written: a later run reads it once it is unchanged for {settle_seconds:g} s"
        for f in plan.waiting
    ]
    run_config = None if verbose else QUIET_LOGS
    machine_stopped = False
    for source in SOURCES:
        decisions = [d for d in plan.new if d.file.source == source]
        if decisions:
            echo(f"Ingesting {len(decisions)} new {source} file(s) ...")
            if not _ingest(instance, settings, source, decisions, run_config, report, echo):
                machine_stopped = True  # a lock, a full disk: the next run goes on from here
                break
    _build_stale(instance, definitions, settings, run_config, report, echo, only)
    if machine_stopped:
        report.notices.append("landing ledger not taken: the warehouse could not be written (see the problems below)")
    else:
        _take_ledger(instance, settings, run_config, report)
    report.seconds = time.perf_counter() - started
    return report


def _read_ledger(settings: Settings) -> list[LedgerEntry]:
    with warehouse_connection(settings) as connection:
        rows = connection.execute(f"select file, verdict, reason, rows from {tables.BRONZE_LANDING_LEDGER}").fetchall()
    return [LedgerEntry(file, FileVerdict(verdict), reason, rows) for file, verdict, reason, rows in rows]


def _settled_plan(instance, settings: Settings, settle_seconds: float, echo) -> IngestionPlan:
    """The ingestion plan once the files still being written have settled, waiting at most three
    settle intervals; what still changes after that is left for a later run."""
    deadline = time.monotonic() + 3 * settle_seconds
    while True:
        plan = plan_ingestion(instance, settings.landing_dir, settle_seconds=settle_seconds)
        if not plan.waiting or time.monotonic() >= deadline:
            return plan
        echo(f"Waiting for {len(plan.waiting)} file(s) still being written: {', '.join(f.file_id for f in plan.waiting[:3])} ...")
        youngest = max(f.mtime_ns for f in plan.waiting)
        time.sleep(min(max(0.2, (youngest - time.time_ns()) / 1e9 + settle_seconds), settle_seconds))


def _take_ledger(instance, settings: Settings, run_config, report: PipelineReport) -> None:
    """Record ``bronze.landing_ledger`` (unless a refresh in this run already did, after every
    ingestion and refusal of it) and keep its verdicts for the summary."""
    if not any(LANDING_LEDGER in run.keys for run in report.built):
        result = run_job(settings, LEDGER_JOB, instance, run_config)
        if not result.success:
            report.failures.append(f"landing ledger: {_failure(result)}")
            return
    report.ledger = _read_ledger(settings)


MAX_ROUNDS = 10  # a round per layer that waits for the one before (silver, then the months)


def _build_stale(instance, definitions, settings, run_config, report, echo, only=None) -> None:
    """Run what is stale, then ask again: silver first, then every month it reaches."""
    failures_before = len(report.failures)  # a refused landed file stops nothing that follows
    models: dict[str, dict] = {}  # the model metadata of every month built, by month
    for round_number in range(MAX_ROUNDS):
        stale = {k: v for k, v in stale_partitions(definitions, instance).items() if only is None or k in only}
        if not stale:
            if round_number == 0:
                echo("Nothing is stale: every table is up to date.")
            break
        for run in plan_runs(stale, definitions):
            echo(f"Building {run.describe()} ...")
            started = time.perf_counter()
            result = run_assets(settings, instance, run, run_config)
            if not result.success:
                report.failures.append(f"{run.describe()}: {_failure(result)}")
                echo(f"  failed: {_failure(result)}")
                continue
            report.built.append(run)
            echo(f"  done in {time.perf_counter() - started:.1f} s")
            built = _model_records(instance, definitions, run)
            models.update(built)
            for line in _model_lines(built):
                echo(f"  {line}")
        if len(report.failures) > failures_before:
            break  # what failed is asked for again by the next run, once its cause is fixed
    else:
        report.failures.append(f"still stale after {MAX_ROUNDS} rounds: {stale_summary(stale)}")
    without = sorted(month for month, metadata in models.items() if "model_version" not in metadata)
    if without:
        status = models[without[-1]].get("status")
        reason = str(status.value).removeprefix("no model: ") if status else "see the model's metadata"
        report.notices.append(f"no model for {len(without)} month(s) ({without[0]} .. {without[-1]}): {reason}")


def stale_summary(stale: dict) -> str:
    return "; ".join(f"{k.to_user_string()} {', '.join(str(p) for p in v)}" for k, v in stale.items())


def _model_records(instance, definitions: dg.Definitions, run: RunPlan) -> dict[str, dict]:
    """The model's metadata of every month ``run`` built, by month."""
    if CHURN_MODEL not in run.keys:
        return {}
    partitions = definitions.get_assets_def(CHURN_MODEL).partitions_def
    found = {}
    for key in partitions.get_partition_keys_in_range(dg.PartitionKeyRange(run.first, run.last)):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=CHURN_MODEL, asset_partitions=[key]), limit=1
        ).records
        if records:
            found[key] = records[0].asset_materialization.metadata
    return found


def _model_lines(models: dict[str, dict]) -> list[str]:
    """One line per model trained: version, algorithm, out-of-time ROC-AUC, gate."""
    return [
        f"{key}: version {m['model_version'].value} {m['chosen_model'].value}, ROC-AUC "
        f"{m['roc_auc_out_of_time'].value:.3f} out-of-time (recency only {m['recency_only_roc_auc'].value:.3f}); "
        f"{'champion' if m['promoted'].value else 'not promoted'}"
        for key, m in models.items() if "model_version" in m
    ]


def _ingest(instance, settings, source, decisions, run_config, report, echo) -> bool:
    """Ingest ``decisions``' files of ``source``; False when the machine stopped it (a lock held, a
    full disk), leaving the rest for the next run."""
    job = f"ingest_{source}"
    readable, one_by_one = [], []
    for decision in decisions:
        try:
            check_landed_columns(decision.file.path, SOURCES[source], settings.column_map(source))
            readable.append(decision)
        except LandingError:
            one_by_one.append(decision)
    names = sorted(d.file.name for d in decisions)
    instance.add_dynamic_partitions(partitions_name(source), names)
    order = {name: i for i, name in enumerate(instance.get_dynamic_partitions(partitions_name(source)))}
    # Readable files go in as few runs as possible (one per contiguous span of partitions); each
    # unreadable file gets a run of its own, so its failure is visible in the UI and stops no other.
    # A span whose run fails (a bad row only a full read finds) is retried file by file.
    by_name = {d.file.name: d for d in readable}
    for span in consecutive_spans(sorted(by_name, key=order.get), order):
        if len(span) == 1:
            one_by_one.append(by_name[span[0]])
            continue
        started = time.perf_counter()
        tags = {ASSET_PARTITION_RANGE_START_TAG: span[0], ASSET_PARTITION_RANGE_END_TAG: span[-1]}
        result = run_job(settings, job, instance, run_config, tags)
        if result.success:
            rows = _rows_written(result)
            report.ingested[source] = report.ingested.get(source, 0) + rows
            echo(f"  {len(span)} file(s), {rows:,} rows in {time.perf_counter() - started:.1f} s")
        elif _tag_if_environment(instance, result):
            return _stopped_by_machine(report, echo, source, decisions, result)
        else:
            echo(f"  {len(span)} file(s) failed together ({_failure(result)}); retrying them one by one")
            one_by_one += [by_name[name] for name in span]
    for decision in sorted(one_by_one, key=lambda d: order[d.file.name]):
        failed = newest_failure(instance, {SHA_TAG: decision.sha256})
        if failed is not None and not failed.environment:
            report.failures.append(f"{failed.text} (unchanged since its failed run)")
            continue
        result = run_job(settings, job, instance, run_config, {SHA_TAG: decision.sha256}, partition_key=decision.file.name)
        if result.success:
            rows = _rows_written(result)
            report.ingested[source] = report.ingested.get(source, 0) + rows
            echo(f"  {decision.file.file_id}: {rows:,} rows")
        elif _tag_if_environment(instance, result):
            return _stopped_by_machine(report, echo, source, decisions, result)
        else:
            report.failures.append(_failure(result))
            echo(f"  refused {decision.file.file_id} (see the failed run in the UI)")
    return True


def _stopped_by_machine(report, echo, source, decisions, result) -> bool:
    """One line for every file of ``source`` a failure of the machine left, however many: the
    cause, and that the next run tries them again."""
    left = [d for d in decisions if d.file.name not in _ingested_names(result)]
    report.failures.append(
        f"{len(left)} {source} file(s) not ingested now, not the files' fault: {_failure(result)}; "
        "the next run tries them again"
    )
    echo(f"  stopped: {_failure(result)}; the next run tries the other files again")
    return False


def _ingested_names(result: dg.ExecutionResult) -> set[str]:
    return {e.partition for e in result.get_asset_materialization_events()}


def _rows_written(result: dg.ExecutionResult) -> int:
    return sum(
        event.materialization.metadata["dagster/row_count"].value
        for event in result.get_asset_materialization_events()
    )


def _tag_if_environment(instance: dg.DagsterInstance, result: dg.ExecutionResult) -> bool:
    """Tag a failed run whose cause was the machine (a lock, a full disk) for retry; True if so."""
    errors = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
    if not any(failed_for_environment(error) for error in errors):
        return False
    instance.add_run_tags(result.run_id, {RETRY_TAG: _failure(result)[:200]})
    return True


def _failure(result: dg.ExecutionResult) -> str:
    """The first failure's own words (see ``step_failure_text``)."""
    for event in result.all_events:
        if event.is_step_failure:
            return step_failure_text(event)
    return f"run {result.run_id} failed; see it in the Dagster UI"
