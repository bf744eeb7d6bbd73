"""Reading one landed file into bronze rows: every value as landed (text), plus lineage columns.

Bronze keeps values as text on purpose: typing and rejection happen in silver, where each
rejected row is quarantined with a reason instead of failing the whole file here.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Mapping
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn_assets.core.ingestion.landing import (
    LandingError,
    check_content_unchanged,
    file_sha256,
    landed_path,
)
from churn_assets.core.ingestion.parquet import read_parquet
from churn_assets.core.ingestion.sources import (
    EXTRA_COLUMN,
    LINEAGE_COLUMNS,
    Source,
    TimestampRules,
    timestamp_sql,
)

# Arrow-backed text: DuckDB scans it without touching Python objects, several times faster.
TEXT = pd.StringDtype("pyarrow")


def read_landed_file(
    path: Path,
    source: Source,
    *,
    sha256: str,
    ingested_at: pd.Timestamp,
    column_map: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Bronze rows of one landed CSV or Parquet file.

    Columns are renamed by ``column_map`` (source name -> canonical name) first. Raises
    ``LandingError`` naming the file when it cannot be read or lacks required columns.
    """
    label = f"{source.name}/{path.name}"
    raw = _read_as_text(path, label)
    if raw.columns.empty:  # a file with no bytes at all: zero rows, not an error
        raw = pd.DataFrame(columns=list(source.columns))
    raw.columns = [str(c).strip() for c in raw.columns]
    if column_map:
        raw = raw.rename(columns=dict(column_map))
    _require_unique_columns(label, list(raw.columns))
    _require_columns(label, list(raw.columns), source)
    return to_bronze_frame(raw, source, file_name=path.name, sha256=sha256, ingested_at=ingested_at)


def ingest_landed_file(
    landing_dir: Path,
    source: Source,
    name: str,
    *,
    ingested_at: pd.Timestamp,
    requested_sha: str | None = None,
    ingested_sha: str | None = None,
    allow_changed_content: bool = False,
    column_map: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, str, Path]:
    """Bronze rows, sha256 and path of landed file ``name``, refusing content that is not what was
    requested or that changed since it was ingested. Raises ``LandingError`` naming the file."""
    path = landed_path(landing_dir, source.name, name)
    if not path.is_file():
        raise LandingError(f"{source.name}/{name} is no longer in {path.parent}")
    sha = file_sha256(path)
    check_content_unchanged(f"{source.name}/{name}", sha, requested_sha, ingested_sha, allow_changed_content)
    frame = read_landed_file(path, source, sha256=sha, ingested_at=ingested_at, column_map=column_map)
    return frame, sha, path


# The timestamp by which each optional source's rows reach a snapshot (features read rows before S).
DATED_COLUMNS = {"customers": "signup_ts", "web_sessions": "session_ts"}
EVERY_SNAPSHOT, NO_SNAPSHOT = "", "none"


def earliest_row_ts(frame: pd.DataFrame, source: Source, timestamps: TimestampRules = TimestampRules()) -> str:
    """The earliest timestamp among a landed file's rows of an optional source, as ISO text: the
    first snapshot after it is the first its rows reach. ``EVERY_SNAPSHOT`` when a customers row
    has no signup time (it holds for every snapshot), ``NO_SNAPSHOT`` when no row has a readable
    time (features leave such session rows out)."""
    column = DATED_COLUMNS[source.name]
    parsed = timestamp_sql(column, timestamps)
    with duckdb.connect() as connection:  # in memory, on the frame: never the warehouse
        connection.register("landed", frame[[column]])
        earliest, undated = connection.execute(
            f"select min({parsed}), count(*) filter (where {parsed} is null) from landed"
        ).fetchall()[0]
    if source.name == "customers" and undated:
        return EVERY_SNAPSHOT
    return NO_SNAPSHOT if earliest is None else earliest.isoformat()


def check_landed_columns(
    path: Path, source: Source, column_map: Mapping[str, str] | None = None
) -> None:
    """Read only the header (or Parquet schema) and raise ``LandingError`` if columns are missing."""
    label = f"{source.name}/{path.name}"
    if path.suffix.lower() == ".parquet":
        try:
            columns = pq.read_schema(path).names
        except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
            raise LandingError(f"{label}: not a readable Parquet file: {exc}") from None
    else:
        columns = _csv_header(path, label)
        if not columns:
            return  # a file with no bytes at all is an empty file, not a broken one
    columns = [(column_map or {}).get(c, c) for c in (str(c).strip() for c in columns)]
    _require_unique_columns(label, columns)
    _require_columns(label, columns, source)


def _require_unique_columns(label: str, columns: list[str]) -> None:
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise LandingError(
            f"{label}: the header names {', '.join(repeated)} more than once (after trimming spaces and "
            "the column map); give each column one name and land the file again under a new name"
        )


def _require_columns(label: str, columns: list[str], source: Source) -> None:
    missing = source.missing_columns(columns)
    if missing:
        raise LandingError(
            f"{label}: missing required columns {missing}; found {columns}. The file needs columns "
            f"{source.describe_required()}: rename them and land it again under a new name, or map "
            f"them with CHURN_{source.name.upper()}_COLUMN_MAP (e.g. 'OrderNo=order_id')."
        )


def to_bronze_frame(
    raw: pd.DataFrame, source: Source, *, file_name: str, sha256: str, ingested_at: pd.Timestamp
) -> pd.DataFrame:
    """Canonical column order, unknown columns folded into ``_extra`` as JSON, lineage appended."""
    n = len(raw)
    out = pd.DataFrame(index=pd.RangeIndex(n))
    for column in source.columns:
        out[column] = raw[column].astype(TEXT).array if column in raw.columns else _constant_text(None, n)
    extras = [c for c in raw.columns if c not in source.columns]
    if extras and n:
        lines = raw[extras].to_json(orient="records", lines=True, force_ascii=False).splitlines()
        out[EXTRA_COLUMN] = pd.array(lines, dtype=TEXT)
    else:
        out[EXTRA_COLUMN] = _constant_text(None, n)
    out["_source_file"] = _constant_text(file_name, n)
    out["_file_sha256"] = _constant_text(sha256, n)
    out["_ingested_at"] = np.full(n, np.datetime64(ingested_at.to_datetime64(), "us"))
    out["_row_number"] = np.arange(1, n + 1, dtype=np.int64)
    return out


def _constant_text(value: str | None, n: int) -> pd.api.extensions.ExtensionArray:
    """``n`` copies of ``value`` as Arrow text, built in Arrow (a Python list of n strings is slow)."""
    array = pa.nulls(n, pa.string()) if value is None else pa.repeat(pa.scalar(value, pa.string()), n)
    return pd.array(array, dtype=TEXT)


def _is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".csv.gz")


def _open_bytes(path: Path):
    """The file's bytes, decompressed for a ``.csv.gz``."""
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _read_as_text(path: Path, label: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet_as_text(path, label)
    if suffix != ".csv" and not _is_gzip(path):
        raise LandingError(f"{label}: unsupported file type {suffix!r}; land .csv, .csv.gz or .parquet")
    header = _csv_header(path, label)
    if not header:
        return pd.DataFrame()
    _require_unique_columns(label, [c.strip() for c in header])
    # pyarrow's CSV reader is about fifteen times faster than pandas' here and keeps text as text.
    try:
        table = pa_csv.read_csv(
            path,
            # quoted values may hold line breaks; without this a break at a block boundary splits a row
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:  # a damaged gzip stream is an OSError
        if isinstance(exc, OSError) and not _is_gzip(path):
            raise
        if isinstance(exc, OSError) or "gzip" in str(exc).lower():
            raise LandingError(f"{label}: not a readable gzip file ({exc}); land the CSV itself or compress it again") from None
        if "UTF8" in str(exc) or "UTF-8" in str(exc):
            raise LandingError(_describe_bad_encoding(path, label)) from None
        raise LandingError(f"{label}: not a readable CSV file: {_describe_bad_row(path, len(header), exc)}") from None
    return table.to_pandas(types_mapper={pa.string(): TEXT}.get)


def _csv_header(path: Path, label: str) -> list[str]:
    try:
        with _open_bytes(path) as handle:
            first = handle.readline()
    except (OSError, EOFError, zlib.error) as exc:
        if not _is_gzip(path):
            raise
        raise LandingError(f"{label}: not a readable gzip file ({exc}); land the CSV itself or compress it again") from None
    try:
        return next(csv.reader([first.decode("utf-8-sig")]), [])
    except UnicodeDecodeError:
        raise LandingError(f"{label}: the header holds bytes that are not UTF-8; re-export the file as UTF-8") from None


def _describe_bad_row(path: Path, width: int, error: Exception) -> str:
    """Name the first line whose field count differs from the header's."""
    with io.TextIOWrapper(_open_bytes(path), encoding="utf-8", errors="replace", newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if row and len(row) != width:
                return f"line {line_number} has {len(row)} fields, the header has {width}"
    return str(error).splitlines()[0]


def _read_parquet_as_text(path: Path, label: str) -> pd.DataFrame:
    try:
        frame = read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise LandingError(f"{label}: not a readable Parquet file: {exc}") from None
    return frame.apply(column_as_text)


def column_as_text(column: pd.Series) -> pd.Series:
    """A Parquet column as the text a CSV export would hold: whole floats without '.0', so an id
    stored as the float 1001.0 is the customer 1001 a CSV file names."""
    if pd.api.types.is_datetime64_any_dtype(column):
        text = column.dt.strftime("%Y-%m-%d %H:%M:%S")
    elif pd.api.types.is_float_dtype(column):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        whole = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2**53)
        text = column.astype(str)
        text[whole] = values[whole].astype(np.int64).astype(str)
    else:
        text = column.astype(str)
    return text.where(column.notna(), None)


def _describe_bad_encoding(path: Path, label: str) -> str:
    """Name the first line and column holding bytes that are not UTF-8."""
    with _open_bytes(path) as handle:
        header = handle.readline().decode("utf-8", errors="replace").rstrip("\r\n").split(",")
        for line_number, line in enumerate(handle, start=2):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                fields = line.split(b",")
                for index, value in enumerate(fields):
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError:
                        column = header[index] if index < len(header) else f"field {index + 1}"
                        return (
                            f"{label}: line {line_number}, column {column!r} holds bytes that are "
                            "not UTF-8; re-export the file as UTF-8"
                        )
    return f"{label}: the header holds bytes that are not UTF-8; re-export the file as UTF-8"


def bronze_schema(source: Source) -> pandera.DataFrameSchema:
    """Pandera schema of ``bronze.<source>``: text as landed plus typed lineage columns."""
    text = {c: pandera.Column(TEXT, nullable=True) for c in (*source.columns, EXTRA_COLUMN)}
    lineage = {
        "_source_file": pandera.Column(TEXT, nullable=False),
        # One hash per file: checking the distinct values, not every row, keeps this cheap.
        "_file_sha256": pandera.Column(
            TEXT,
            pandera.Check(
                lambda s: s.drop_duplicates().str.fullmatch(r"[0-9a-f]{64}").all(),
                name="sha256_hex",
                error="is not a 64-character lowercase hex sha256",
            ),
            nullable=False,
        ),
        "_ingested_at": pandera.Column("datetime64[us]", nullable=False),
        "_row_number": pandera.Column("int64", pandera.Check.ge(1), nullable=False),
    }
    assert tuple(lineage) == LINEAGE_COLUMNS
    return pandera.DataFrameSchema(
        {**text, **lineage},
        name=f"bronze_{source.name}",
        description=f"Rows of landed {source.name} files as text, with file lineage.",
        strict=True,
        ordered=True,
    )
