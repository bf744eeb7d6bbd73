"""Features from raw history handed in by a caller: one or many customers' transactions, and
optionally their customer rows and web sessions, typed and checked by the same silver and feature
SQL the warehouse runs, on an in-process DuckDB.

No Dagster and no MLflow: the registered champion and ``churn-assets score`` call these.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import duckdb
import numpy as np
import pandas as pd

from churn_assets.core.ingestion.bronze import column_as_text
from churn_assets.core.errors import ChurnError
from churn_assets.core.silver.features import COUNT_FEATURES, FEATURE_COLUMNS, customer_features_sql
from churn_assets.core.silver.transactions import classified_rows_sql, silver_transactions_sql
from churn_assets.core.ingestion.sources import HISTORY_SOURCES, TRANSACTIONS, Source, TimestampRules

SOURCE_COLUMN = "source"
# Every column a history row may carry: which source the row is, then each source's columns.
HISTORY_COLUMNS = (SOURCE_COLUMN, *dict.fromkeys(c for s in HISTORY_SOURCES.values() for c in s.columns))
# Silver drops an exact repeat of an order as the warehouse does; every other reason is the caller's to fix.
_TOLERATED = ("exact_duplicate",)
_SHOWN_PROBLEMS = 5


class ScoringError(ChurnError):
    """History or a date that cannot be scored; the message names the field and what to do."""


def parse_as_of(value) -> date:
    """``value`` (a date, or text YYYY-MM-DD, or a timestamp at midnight) as the snapshot day;
    None means today (UTC)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return datetime.now(timezone.utc).date()
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise ScoringError(f"as_of: {value!r} is not a date; give YYYY-MM-DD")
    if stamp != stamp.normalize():
        raise ScoringError(
            f"as_of: {value!r} has a time of day; features are per day (every row before it), give YYYY-MM-DD"
        )
    return stamp.date()


def split_history(history: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows of each source, keyed by source name, in the order given (a later customer row wins).

    Rows without a ``source`` value are transactions. Raises ``ScoringError`` naming an unknown
    column or source, or a required column that rows of a source lack."""
    if not isinstance(history, pd.DataFrame) or history.empty:
        raise ScoringError("history: no rows; give at least one transactions row per customer")
    unknown = [c for c in history.columns if c not in HISTORY_COLUMNS]
    if unknown:
        raise ScoringError(f"history: unknown columns {unknown}; known columns are {list(HISTORY_COLUMNS)}")
    names = (
        history[SOURCE_COLUMN].astype(object).where(history[SOURCE_COLUMN].notna(), TRANSACTIONS.name)
        if SOURCE_COLUMN in history.columns else pd.Series(TRANSACTIONS.name, index=history.index)
    ).astype(str)
    strange = sorted(set(names) - set(HISTORY_SOURCES))
    if strange:
        raise ScoringError(f"source: unknown values {strange}; each row is one of {list(HISTORY_SOURCES)}")
    parts = {}
    for name, rows in history.groupby(names.to_numpy(), sort=False):
        source = HISTORY_SOURCES[name]
        present = [c for c in source.columns if c in rows.columns and rows[c].notna().any()]
        missing = source.missing_columns(present)
        if missing:
            raise ScoringError(
                f"{name} rows: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                f"{name} rows need {source.describe_required()}"
            )
        parts[name] = rows[present].reset_index(drop=True)
    if TRANSACTIONS.name not in parts:
        raise ScoringError("history: no transactions rows; a customer is scored from their orders")
    return parts


def history_features(
    history: pd.DataFrame, as_of: date, *, max_abs_amount: float, timestamps: TimestampRules = TimestampRules(),
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Feature rows (``customer_features`` columns) as of ``as_of`` for every customer with a
    transactions row in ``history``. Raises ``ScoringError`` for a row silver would quarantine
    (other than an exact repeat), naming its field, and for a customer with no order before ``as_of``.

    ``connection``: an in-process DuckDB to use (a cursor of it is taken); a new one otherwise."""
    parts = split_history(history)
    cursor = (connection or duckdb.connect()).cursor()
    try:
        now = pd.Timestamp.now(tz="UTC").tz_localize(None)
        for name, rows in parts.items():
            cursor.register(f"landed_{name}", _as_text(rows))
            cursor.execute(f"create temp view history_{name} as {_bronze_sql(HISTORY_SOURCES[name], list(rows.columns), now)}")
        cursor.execute(
            "create temp table classified as "
            + classified_rows_sql("history_transactions", max_abs_amount, timestamps)
        )
        _refuse_bad_rows(cursor)
        features = cursor.execute(customer_features_sql(
            as_of, transactions=f"({silver_transactions_sql('classified')})",
            customers="history_customers" if "customers" in parts else None,
            web_sessions="history_web_sessions" if "web_sessions" in parts else None,
            timestamps=timestamps,
        )).df()
        _refuse_unscorable(cursor, as_of)
    finally:
        cursor.close()
    return _typed(features.sort_values("customer_id", ignore_index=True))


def _as_text(rows: pd.DataFrame) -> pd.DataFrame:
    """Every value as the text a landed file holds (whole floats without '.0'), numbered from 1."""
    text = {
        c: rows[c] if pd.api.types.infer_dtype(rows[c], skipna=True) == "string" else column_as_text(rows[c])
        for c in rows.columns
    }
    return pd.DataFrame({**text, "_row_number": np.arange(1, len(rows) + 1)})


def _bronze_sql(source: Source, landed: list[str], ingested_at: pd.Timestamp) -> str:
    """The landed rows of ``source`` shaped as its bronze table: every column as text, lineage after."""
    return f"""
        select {", ".join(f"{c}::varchar as {c}" if c in landed else f"null::varchar as {c}" for c in source.columns)},
               'history.{source.name}' as _source_file, '' as _file_sha256,
               timestamp '{ingested_at.isoformat(sep=" ")}' as _ingested_at, _row_number
        from landed_{source.name}
    """


def _refuse_bad_rows(cursor) -> None:
    tolerated = ", ".join(f"'{r}'" for r in _TOLERATED)
    bad = cursor.execute(f"""
        select _row_number, reason, raw_order_id, raw_customer_id, raw_order_ts, raw_amount, raw_quantity
        from classified where reason is not null and reason not in ({tolerated})
        order by _row_number
    """).fetchall()
    if bad:
        shown = "; ".join(
            f"transactions row {row}: {reason} (order_id={order_id!r}, customer_id={customer!r}, "
            f"order_ts={ts!r}, amount={amount!r}{'' if quantity is None else f', quantity={quantity!r}'})"
            for row, reason, order_id, customer, ts, amount, quantity in bad[:_SHOWN_PROBLEMS]
        )
        more = f" and {len(bad) - _SHOWN_PROBLEMS} more" if len(bad) > _SHOWN_PROBLEMS else ""
        raise ScoringError(f"{len(bad)} transactions row{'s' if len(bad) > 1 else ''} cannot be read: {shown}{more}")


def _refuse_unscorable(cursor, as_of: date) -> None:
    """Every customer with orders must have one before ``as_of``."""
    late = cursor.execute(
        "select customer_id, min(order_first_ts) from classified where reason is null "
        "group by 1 having min(order_first_ts) >= ? order by 1", [pd.Timestamp(as_of).to_pydatetime()],
    ).fetchall()
    if late:
        shown = ", ".join(f"{c!r} on {pd.Timestamp(first):%Y-%m-%d %H:%M}" for c, first in late[:_SHOWN_PROBLEMS])
        raise ScoringError(
            f"as_of {as_of.isoformat()}: no order before it for {len(late)} customer"
            f"{'s' if len(late) > 1 else ''} (first orders: {shown}); give a later as_of"
        )


def _typed(features: pd.DataFrame) -> pd.DataFrame:
    """The dtypes ``customer_features_schema`` gives the warehouse's rows, without its per-call cost."""
    features["customer_id"] = features["customer_id"].astype(pd.StringDtype("pyarrow"))
    features["segment"] = features["segment"].astype(pd.StringDtype("pyarrow"))
    features["marketing_opt_in"] = features["marketing_opt_in"].astype("boolean")
    for column in FEATURE_COLUMNS:
        if column not in ("segment", "marketing_opt_in"):
            features[column] = features[column].astype("int64" if column in COUNT_FEATURES else np.float64)
    return features
