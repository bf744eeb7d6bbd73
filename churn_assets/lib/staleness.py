"""Which partitions are stale: one rule, evaluated alike by the daemon and by ``churn-assets run``.

A partition is stale when it is missing, when the data it reads changed (its recorded
``inputs_digest`` differs from the digest of the current data), or when a partitioned upstream
partition it maps to was materialized after it. The rule is a custom ``AutomationCondition``
because Dagster has no data-dependent partition mapping: which months a landed file touches is
known only from its rows, and the snapshot digests stand in for that mapping. It reads only the
instance (never the warehouse, which a run may hold), and keeps no cursor, so every evaluation of
the same instance gives the same answer.
"""

from __future__ import annotations

import weakref
from datetime import date

import dagster as dg

from churn_assets.core.silver.snapshot_inputs import (
    OPTIONAL_SOURCES,
    DataState,
    features_digest,
    has_data,
    labels_digest,
    parse_state,
)
from churn_assets.lib.failures import RETRY_TAG
from churn_assets.lib.keys import (
    ROW_ACCOUNTING,
    SILVER_QUARANTINE,
    SILVER_TRANSACTIONS,
    bronze_key,
)

DIGEST_KEY = "inputs_digest"
# Metadata silver and the bronze file partitions record for the state.
ORDER_MONTHS_KEY, FIRST_ORDER_KEY, DATA_THROUGH_KEY = "order_months", "first_order", "data_through"
EARLIEST_KEY, SHA_KEY = "earliest_row_ts", "file_sha256"


def metadata_text(metadata, name: str) -> str | None:
    entry = metadata.get(name)
    return None if entry is None else str(entry.value)


def latest_materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str | None, dg.EventLogRecord]:
    """The newest materialization record of each partition of ``key`` (None for an unpartitioned asset)."""
    found: dict[str | None, dg.EventLogRecord] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1000, cursor=cursor)
        for record in page.records:  # newest first
            found.setdefault(record.asset_materialization.partition, record)
        if not page.has_more:
            return found
        cursor = page.cursor


def data_state(instance: dg.DagsterInstance) -> DataState:
    """The ``DataState`` of the data as silver and the landed optional files last recorded it."""
    silver = latest_materializations(instance, SILVER_TRANSACTIONS).get(None)
    metadata = silver.asset_materialization.metadata if silver else {}
    files = []
    for source in OPTIONAL_SOURCES:
        for name, record in latest_materializations(instance, bronze_key(source)).items():
            meta = record.asset_materialization.metadata
            files.append((source, name, metadata_text(meta, SHA_KEY) or "", metadata_text(meta, EARLIEST_KEY)))
    return parse_state(
        metadata_text(metadata, ORDER_MONTHS_KEY), metadata_text(metadata, FIRST_ORDER_KEY), metadata_text(metadata, DATA_THROUGH_KEY), files
    )


def inputs_digest(reads: str, state: DataState, partition_key: str, horizon_days: int) -> str | None:
    """The digest of what a partition reads: 'features' (everything before the snapshot),
    'labels' (the orders before the end of its horizon; None until it is observed) or 'none'."""
    snapshot = date.fromisoformat(partition_key)
    if reads == "features":
        return features_digest(state, snapshot)
    if reads == "labels":
        return labels_digest(state, snapshot, horizon_days)
    return None


def record_digests(context: dg.AssetExecutionContext, reads: str, horizon_days: int) -> None:
    """Record on each partition of this run the digest of the data it reads, as the instance
    knows it when the run starts (the pool keeps silver from changing while the run reads it)."""
    state = data_state(context.instance)
    for key in context.partition_keys:
        digest = inputs_digest(reads, state, key, horizon_days)
        context.add_asset_metadata({DIGEST_KEY: digest or "horizon not observed"}, partition_key=key)


_states: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tick_state(context: dg.AutomationContext) -> DataState:
    """One ``DataState`` per evaluation tick, shared by every asset's condition."""
    view = context.asset_graph_view
    if view not in _states:
        _states[view] = data_state(view.instance)
    return _states[view]


class SnapshotStale(dg.AutomationCondition):
    """True for the partitions to build: those with data (for labels: with an observed horizon)
    that are missing, whose data changed, or that a partitioned upstream partition is newer than.
    A partition whose last attempt failed is retried only once something upstream changed after it.
    """

    def __init__(self, reads: str = "none", horizon_days: int = 90):
        self.reads = reads
        self.horizon_days = horizon_days

    @property
    def name(self) -> str:
        return f"snapshot_stale(reads={self.reads})"

    @property
    def description(self) -> str:
        return "Missing, its data changed, or an upstream partition is newer"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        if candidates.is_empty:
            return dg.AutomationResult(context=context, true_subset=candidates)
        instance = context.asset_graph_view.instance
        if not candidates.is_partitioned:
            stale = _unpartitioned_stale(context, instance)
            return dg.AutomationResult(context=context, true_subset=candidates if stale else context.get_empty_subset())
        stale = {key for key in candidates.expensively_compute_partition_keys() if self._stale(context, instance, key)}
        return dg.AutomationResult(context=context, true_subset=candidates.compute_intersection_with_partition_keys(stale))

    def _stale(self, context: dg.AutomationContext, instance, key: str) -> bool:
        state = tick_state(context)
        return self._in_scope(state, key) and _partition_stale(context, instance, state, key, self)

    def _in_scope(self, state: DataState, key: str) -> bool:
        if self.reads == "labels":
            return labels_digest(state, date.fromisoformat(key), self.horizon_days) is not None
        return has_data(state, date.fromisoformat(key))


class HasSnapshotData(dg.AutomationCondition):
    """True for the snapshot months the data reaches (an order before S, S at most the month
    after the newest order): calendar months beyond the data are never computed."""

    @property
    def name(self) -> str:
        return "has_snapshot_data"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        if candidates.is_empty or not candidates.is_partitioned:
            return dg.AutomationResult(context=context, true_subset=candidates)
        state = tick_state(context)
        keys = {k for k in candidates.expensively_compute_partition_keys() if has_data(state, date.fromisoformat(k))}
        return dg.AutomationResult(context=context, true_subset=candidates.compute_intersection_with_partition_keys(keys))


def parents_newest(context: dg.AutomationContext, instance, key: str | None, partitioned_only: bool) -> int:
    """The newest storage id among the upstream partitions ``key`` maps to (unpartitioned parents
    of a partitioned asset left out: they reach it only through its data digest)."""
    view = context.asset_graph_view
    own = context.candidate_subset if key is None else context.candidate_subset.compute_intersection_with_partition_keys({key})
    newest = 0
    for parent in context.asset_graph.get(context.key).parent_keys:
        parent_def = context.asset_graph.get(parent).partitions_def
        if partitioned_only and parent_def is None:
            continue
        mapped = own.compute_parent_subset(parent)
        if mapped.is_empty:
            continue
        partitions = mapped.expensively_compute_partition_keys() if parent_def is not None else None
        ids = instance.get_latest_storage_id_by_partition(
            parent, dg.DagsterEventType.ASSET_MATERIALIZATION, set(partitions) if partitions else None
        ) if parent_def is not None else {None: latest_storage_id(view.instance, parent)}
        newest = max([newest, *(v for v in ids.values() if v is not None)])
    return newest


def latest_storage_id(instance, key: dg.AssetKey) -> int | None:
    page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1)
    return page.records[0].storage_id if page.records else None


def failed_since(instance, key: dg.AssetKey, partition: str | None, materialized_id: int | None) -> int | None:
    """The storage id of a failed attempt newer than the last materialization, if any."""
    planned = instance.get_latest_planned_materialization_info(key, partition)
    if planned is None or (materialized_id is not None and planned.storage_id <= materialized_id):
        return None
    run = instance.get_run_by_id(planned.run_id)
    if run is None or run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return None
    if RETRY_TAG in run.tags:  # killed, or failed for a cause outside the data: try again
        return None
    return planned.storage_id


def _unpartitioned_stale(context: dg.AutomationContext, instance) -> bool:
    own = latest_storage_id(instance, context.key)
    newest = parents_newest(context, instance, None, partitioned_only=False)
    if not newest:
        return False  # nothing upstream yet
    if context.key in (SILVER_TRANSACTIONS, SILVER_QUARANTINE) and not _rows_accounted(instance):
        return True
    failed = failed_since(instance, context.key, None, own)
    if failed is not None and newest < failed:
        return False
    return own is None or newest > own


def _rows_accounted(instance) -> bool:
    """Whether the row-accounting check proved silver's newest build: it passed on it, or it failed
    on it and on the build before (a rebuild did not help, so the failure is reported, not looped).
    An interrupted build (a kill between the write and the check) was never proven: rebuild it."""
    built = latest_storage_id(instance, SILVER_TRANSACTIONS)
    if built is None:
        return True  # never built: the rule above decides
    history = instance.event_log_storage.get_asset_check_execution_history(ROW_ACCOUNTING, limit=2)
    evaluations = [record.evaluation for record in history]
    newest = evaluations[0] if evaluations else None
    if newest is None or newest.target_materialization_data is None or newest.target_materialization_data.storage_id != built:
        return False
    return newest.passed or (len(evaluations) == 2 and evaluations[1] is not None and not evaluations[1].passed)


def _partition_stale(context, instance, state: DataState, key: str, condition: SnapshotStale) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.key, asset_partitions=[key]), limit=1
    ).records
    own = records[0] if records else None
    # the data digest stands for the upstream of the tables that read data (silver, landed files)
    newest = parents_newest(context, instance, key, partitioned_only=True) if condition.reads == "none" else 0
    failed = failed_since(instance, context.key, key, own.storage_id if own else None)
    if failed is not None:
        # retried once upstream changed after the failure (data digests change only with silver
        # or a landed file, whose storage ids then follow the failure too)
        upstream = max(newest, latest_storage_id(instance, SILVER_TRANSACTIONS) or 0)
        return upstream > failed
    if own is None:
        return True
    if newest > own.storage_id:
        return True
    expected = inputs_digest(condition.reads, state, key, condition.horizon_days)
    recorded = metadata_text(own.asset_materialization.metadata, DIGEST_KEY)
    return expected is not None and recorded != expected


