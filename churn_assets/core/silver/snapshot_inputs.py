"""What each monthly snapshot reads, summarised, so that only the months new data touches are rebuilt.

Snapshot S reads rows with a timestamp before S (features, customer value) or before the end of
its label horizon (labels). ``DataState`` summarises the data by month: a fingerprint of silver's
orders per calendar month, and for each landed customers or web-sessions file the earliest
timestamp among its rows. A snapshot's digest is the fingerprint of exactly what it reads, so it
changes when, and only when, new data reaches that snapshot. Pure functions: the Dagster shell
builds the state from materialization metadata and compares digests in its automation conditions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from churn_assets.core.silver.labels import horizon_observed

OPTIONAL_SOURCES = ("customers", "web_sessions")


@dataclass(frozen=True)
class DataState:
    """The data as snapshots see it.

    ``order_months``: 'YYYY-MM' -> fingerprint of silver's orders placed in that month.
    ``files``: source -> {file name: (sha256, earliest row timestamp)}; a customers row without a
    signup time holds for every snapshot (earliest None); a file without a dated row is left out.
    """

    order_months: Mapping[str, str] = field(default_factory=dict)
    first_order: datetime | None = None
    data_through: datetime | None = None
    files: Mapping[str, Mapping[str, tuple[str, datetime | None]]] = field(default_factory=dict)


def month_start(key: str) -> datetime:
    """'YYYY-MM' -> the first instant of that month."""
    return datetime.strptime(key, "%Y-%m")


def has_data(state: DataState, snapshot: date) -> bool:
    """Whether some order comes before ``snapshot`` and the snapshot is at most the month after
    the newest order: the months a snapshot is computed for."""
    if state.first_order is None or state.data_through is None:
        return False
    newest = state.data_through
    after_newest = date(newest.year + newest.month // 12, newest.month % 12 + 1, 1)
    return state.first_order.date() < snapshot <= after_newest


def _digest(parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _orders_before(state: DataState, end: datetime) -> dict[str, str]:
    return {month: fp for month, fp in state.order_months.items() if month_start(month) < end}


def _files_before(state: DataState, end: datetime) -> dict[str, list[str]]:
    return {
        source: sorted(sha for sha, earliest in files.values() if earliest is None or earliest < end)
        for source, files in state.files.items()
    }


def features_digest(state: DataState, snapshot: date) -> str:
    """Fingerprint of everything the features (and the customer value) of ``snapshot`` read:
    orders, customer rows and web sessions timestamped before it."""
    end = datetime.combine(snapshot, datetime.min.time())
    return _digest({"orders": _orders_before(state, end), "files": _files_before(state, end)})


def labels_digest(state: DataState, snapshot: date, horizon_days: int) -> str | None:
    """Fingerprint of the orders before the end of ``snapshot``'s horizon (the first purchases
    before S and the purchases within it); None while the horizon is not observed."""
    if not horizon_observed(snapshot, horizon_days, state.data_through):
        return None
    end = datetime.combine(snapshot + timedelta(days=horizon_days), datetime.min.time())
    return _digest({"orders": _orders_before(state, end)})


def labelled_offset_months(horizon_days: int) -> int:
    """The fewest months k such that a snapshot k months before S can have its horizon end by S
    (3 for 90 days: 2024-01-01 + 90 days = 2024-03-31 <= 2024-04-01): a model for S reads labels
    of S - k months and earlier. Checked over four years of month starts, so leap years count."""
    starts = [date(2024 + i // 12, i % 12 + 1, 1) for i in range(48)]
    for k in range(1, 1000):
        if any(_months_after(s, k) >= s + timedelta(days=horizon_days) for s in starts):
            return k
    raise ValueError(f"a horizon of {horizon_days} days is longer than any history")


def _months_after(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def parse_state(
    order_months: str | None,
    first_order: str | None,
    data_through: str | None,
    files: Iterable[tuple[str, str, str, str | None]],
) -> DataState:
    """A ``DataState`` from what silver and the bronze file partitions record in their metadata:
    the months as JSON, ISO timestamps, and (source, file, sha256, earliest row timestamp) per
    landed file of the optional sources, the timestamp as ``earliest_row_ts`` gives it ('' for
    every snapshot, 'none' or missing for no snapshot)."""
    by_source: dict[str, dict[str, tuple[str, datetime | None]]] = {source: {} for source in OPTIONAL_SOURCES}
    for source, name, sha, earliest in files:
        if earliest is None or earliest == "none":
            continue
        by_source[source][name] = (sha, datetime.fromisoformat(earliest) if earliest else None)
    return DataState(
        order_months=json.loads(order_months) if order_months else {},
        first_order=datetime.fromisoformat(first_order) if first_order else None,
        data_through=datetime.fromisoformat(data_through) if data_through else None,
        files=by_source,
    )


def snapshot_keys_with_data(state: DataState, keys: Iterable[str]) -> list[str]:
    """The partition keys (YYYY-MM-DD) among ``keys`` whose snapshot has data."""
    return [k for k in keys if has_data(state, date.fromisoformat(k))]
