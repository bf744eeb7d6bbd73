"""Step failures that name the asset, the month and the root cause, in the UI and the CLI alike."""

from __future__ import annotations

import traceback
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

from churn_assets.core.errors import (
    _TRACEBACK_TEXT,
    caused_by_environment,
    first_line,
    is_environment_error,
    root_cause,
)

# On a run whose failure came from the machine (see ``caused_by_environment``), or whose process
# was killed: its partitions are retried by the next evaluation instead of waiting for new data.
RETRY_TAG = "churn_assets/retry"


def _where(context: dg.AssetExecutionContext) -> str:
    """'ml.churn_model for 2025-01-01' (or a range of months, or no partition)."""
    name = ".".join(context.assets_def.key.path) if len(context.assets_def.keys) == 1 else context.op_def.name
    if context.assets_def.partitions_def is None:
        return name
    keys = context.partition_keys
    return f"{name} for {keys[0]}" if len(keys) == 1 else f"{name} for {keys[0]} .. {keys[-1]}"


@contextmanager
def named_failure(context: dg.AssetExecutionContext):
    """Turn an unexpected error in an asset body into a ``dg.Failure`` whose description names the
    asset, its partitions and the root cause's own type and message; the traceback stays beside it.
    A failure caused by the machine tags its run to be retried."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        if caused_by_environment(exc):
            context.instance.add_run_tags(context.run.run_id, {RETRY_TAG: root_cause(exc)[:200]})
        raise dg.Failure(
            description=f"{_where(context)}: {root_cause(exc)}",
            metadata={"traceback": dg.MetadataValue.text("".join(traceback.format_exception(exc)))},
        ) from exc


def failure_text(error: SerializableErrorInfo) -> str:
    """The root cause of a step's error as Dagster stored it: the innermost cause that is neither
    Dagster's wrapper around user code nor joblib's traceback text."""
    while error.cause is not None and error.cause.cls_name != _TRACEBACK_TEXT:
        error = error.cause
    message = first_line(error.message)
    return message if error.cls_name is None or message.startswith(error.cls_name) else f"{error.cls_name}: {message}"


def failed_for_environment(error: SerializableErrorInfo | None) -> bool:
    """Whether a stored step error has, anywhere in its chain of causes and contexts, an error from
    the machine (see ``is_environment_error``): the file may be fine, so it is tried again."""
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None:
            continue
        if is_environment_error(current.cls_name, current.message):
            return True
        pending += [current.cause, current.context]
    return False


@dataclass(frozen=True)
class StoredFailure:
    """The first step failure of a failed run, as the instance stored it."""

    run_id: str
    text: str
    environment: bool  # caused by the machine (or the run was killed): worth trying again


def step_failure_text(event: dg.DagsterEvent) -> str:
    """A step failure in its own words: a ``dg.Failure`` description (the asset bodies name the
    asset, month and root cause there), else the root cause of the step's error."""
    data = event.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        return data.user_failure_data.description
    return f"{event.step_key}: {failure_text(data.error)}" if data.error else f"{event.step_key} failed"


def newest_failure(instance: dg.DagsterInstance, tags: dict[str, str]) -> StoredFailure | None:
    """The failure of the newest run with ``tags``, or None when that run did not fail."""
    records = instance.get_run_records(dg.RunsFilter(tags=tags), limit=1)
    if not records or records[0].dagster_run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return None
    run = records[0].dagster_run
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = record.dagster_event
        environment = RETRY_TAG in run.tags or failed_for_environment(event.step_failure_data.error)
        return StoredFailure(run.run_id, step_failure_text(event), environment)
    # no step failed: the run itself was stopped (killed, cancelled, or it never started)
    return StoredFailure(run.run_id, f"run {run.run_id} ended as {run.status.value.lower()}", True)
