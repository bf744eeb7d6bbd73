"""Reading one landed file into bronze rows: every value as landed (text), plus lineage columns.

Bronze keeps values as text on purpose: typing and rejection happen in silver, where each
rejected row is quarantined with a reason instead of failing the whole file here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq

from churn_assets.core.landing import LandingError
from churn_assets.core.sources import EXTRA_COLUMN, LINEAGE_COLUMNS, Source

TEXT = pd.StringDtype()


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
        raw = pd.DataFrame(columns=list(source.required))
    raw.columns = [str(c).strip() for c in raw.columns]
    if column_map:
        raw = raw.rename(columns=dict(column_map))
    _require_columns(label, list(raw.columns), source)
    return to_bronze_frame(raw, source, file_name=path.name, sha256=sha256, ingested_at=ingested_at)


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
        columns = list(_read_as_text(path, label, nrows=0).columns)
        if not columns:
            return  # a file with no bytes at all is an empty file, not a broken one
    columns = [str(c).strip() for c in columns]
    _require_columns(label, [(column_map or {}).get(c, c) for c in columns], source)


def _require_columns(label: str, columns: list[str], source: Source) -> None:
    missing = [c for c in source.required if c not in columns]
    if missing:
        raise LandingError(
            f"{label}: missing required columns {missing}; found {columns}. Rename the columns "
            f"in the file to {list(source.required)} and land it again under a new name."
        )


def to_bronze_frame(
    raw: pd.DataFrame, source: Source, *, file_name: str, sha256: str, ingested_at: pd.Timestamp
) -> pd.DataFrame:
    """Canonical column order, unknown columns folded into ``_extra`` as JSON, lineage appended."""
    n = len(raw)
    out = pd.DataFrame(index=pd.RangeIndex(n))
    for column in source.columns:
        out[column] = raw[column].to_numpy() if column in raw.columns else None
        out[column] = out[column].astype(TEXT)
    extras = [c for c in raw.columns if c not in source.columns]
    if extras and n:
        lines = raw[extras].to_json(orient="records", lines=True, force_ascii=False).splitlines()
        out[EXTRA_COLUMN] = pd.array(lines, dtype=TEXT)
    else:
        out[EXTRA_COLUMN] = pd.array([None] * n, dtype=TEXT)
    out["_source_file"] = pd.array([file_name] * n, dtype=TEXT)
    out["_file_sha256"] = pd.array([sha256] * n, dtype=TEXT)
    out["_ingested_at"] = pd.Series([ingested_at] * n, dtype="datetime64[us]")
    out["_row_number"] = pd.Series(range(1, n + 1), dtype="int64")
    return out


def _read_as_text(path: Path, label: str, nrows: int | None = None) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet_as_text(path, label)
    if suffix != ".csv":
        raise LandingError(f"{label}: unsupported file type {suffix!r}; land .csv or .parquet")
    try:
        return pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8",
            engine="c",
            nrows=nrows,
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except UnicodeDecodeError:
        raise LandingError(_describe_bad_encoding(path, label)) from None
    except pd.errors.ParserError as exc:
        raise LandingError(f"{label}: not a readable CSV file: {exc}") from None


def _read_parquet_as_text(path: Path, label: str) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise LandingError(f"{label}: not a readable Parquet file: {exc}") from None
    return frame.apply(_column_as_text)


def _column_as_text(column: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column):
        text = column.dt.strftime("%Y-%m-%d %H:%M:%S")
    else:
        text = column.astype(str)
    return text.where(column.notna(), None)


def _describe_bad_encoding(path: Path, label: str) -> str:
    """Name the first line and column holding bytes that are not UTF-8."""
    with open(path, "rb") as handle:
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


def bronze_schema(source: Source) -> pa.DataFrameSchema:
    """Pandera schema of ``bronze.<source>``: text as landed plus typed lineage columns."""
    text = {c: pa.Column(TEXT, nullable=True) for c in (*source.columns, EXTRA_COLUMN)}
    lineage = {
        "_source_file": pa.Column(TEXT, nullable=False),
        "_file_sha256": pa.Column(TEXT, pa.Check.str_matches(r"^[0-9a-f]{64}$"), nullable=False),
        "_ingested_at": pa.Column("datetime64[us]", nullable=False),
        "_row_number": pa.Column("int64", pa.Check.ge(1), nullable=False),
    }
    assert tuple(lineage) == LINEAGE_COLUMNS
    return pa.DataFrameSchema(
        {**text, **lineage},
        name=f"bronze_{source.name}",
        description=f"Rows of landed {source.name} files as text, with file lineage.",
        strict=True,
        ordered=True,
    )
