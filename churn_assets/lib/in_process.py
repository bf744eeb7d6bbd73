"""Runs executed in this process (``churn-assets run``): the in-process definitions for a set of
settings, one job run with its tags, and the release of what a killed process left behind."""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import socket

import dagster as dg
import psutil
import pyarrow as pa
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from churn_assets.definitions import build_definitions
from churn_assets.lib.failures import RETRY_TAG
from churn_assets.run_plan import RunPlan
from churn_assets.settings import Settings

# Failures are reported in the summary (and in full in the UI), so the console stays quiet.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# "host:pid:process start time" of the process that executes a run in process, so a later run
# can tell that process is gone (killed) and release what its run still holds.
PROCESS_TAG = "churn_assets/process"
ASSET_JOB = "refresh_tables"  # silver and the monthly tables, for runs of any selection of them
UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def run_job(
    settings: Settings, job_name: str, instance: dg.DagsterInstance, run_config=None, tags=None, partition_key=None,
    asset_selection: list[dg.AssetKey] | None = None,
) -> dg.ExecutionResult:
    """Job ``job_name`` in this process, tagged with this process so a killed run can be recognised.

    Through ``execute_job`` rather than ``execute_in_process``: the latter keeps every step's
    output in memory until the run ends (for ``output_for_node``), so each step started with the
    earlier steps' tables still held (at ten million transactions: a 10.7 GB peak, now 7.7 GB).
    """
    tags = {**(tags or {}), PROCESS_TAG: _this_process()}
    if partition_key is not None:
        tags[PARTITION_NAME_TAG] = partition_key
    job = dg.build_reconstructable_job(
        __name__, "in_process_job", reconstructable_args=(job_name, _settings_key(settings))
    )
    result = dg.execute_job(
        job, instance=instance, run_config=run_config, tags=tags, raise_on_error=False, asset_selection=asset_selection
    )
    release_freed_memory()
    return result


def run_assets(settings: Settings, instance: dg.DagsterInstance, run: RunPlan, run_config=None) -> dg.ExecutionResult:
    """The assets of ``run`` over its partition range, in this process."""
    tags = {}
    if run.first is not None:
        tags = {ASSET_PARTITION_RANGE_START_TAG: run.first, ASSET_PARTITION_RANGE_END_TAG: run.last}
    return run_job(settings, ASSET_JOB, instance, run_config, tags, asset_selection=list(run.keys))


def release_freed_memory() -> None:
    """Collect what a finished run left in reference cycles and hand freed memory back to the
    OS, so the next run starts from a low baseline instead of adding to it.

    At ten million transactions Arrow's allocator still held 2.3 GB after each bronze run, all of
    it free; Python's collector had not yet reached 1.1 GB of silver when the features run began;
    glibc kept a few hundred MB of freed heap. ``malloc_trim`` is glibc's; elsewhere it is skipped.
    """
    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def in_process_job(job_name: str, settings_key: str) -> dg.JobDefinition:
    """The job ``execute_job`` reconstructs: ``job_name`` of the in-process definitions for the
    settings ``_settings_key`` encoded."""
    return _in_process_definitions(settings_key).resolve_job_def(job_name)


def in_process_definitions(settings: Settings) -> dg.Definitions:
    """The definitions for ``settings`` with every step run in this process, built once."""
    return _in_process_definitions(_settings_key(settings))


def _settings_key(settings: Settings) -> str:
    return json.dumps(settings.to_plain(), sort_keys=True)


@functools.lru_cache(maxsize=8)
def _in_process_definitions(settings_key: str) -> dg.Definitions:
    return build_definitions(Settings.from_plain(json.loads(settings_key)), executor=dg.in_process_executor)


def _this_process() -> str:
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.2f}"


def _process_gone(tag: str) -> bool:
    """Whether the process a PROCESS_TAG names has ended; False when it ran on another host."""
    host, pid, created = tag.rsplit(":", 2)
    if host != socket.gethostname():
        return False
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(created)) > 0.1  # pid reused
    except psutil.NoSuchProcess:
        return True


def fail_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the unfinished in-process runs whose process is gone, and free the pool slots
    they claimed. Such a run (``churn-assets run`` killed) would otherwise hold the one
    DuckDB slot forever: no daemon monitors a run executed in process."""
    abandoned = [
        run for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED))
        if PROCESS_TAG in run.tags and _process_gone(run.tags[PROCESS_TAG])
    ]
    for run in abandoned:
        instance.add_run_tags(run.run_id, {RETRY_TAG: "its process ended"})
        instance.report_run_failed(run, message="The process executing this run ended without finishing it.")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return [run.run_id for run in abandoned]
