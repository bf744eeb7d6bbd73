"""The landing ledger: one verdict for every file under landing/, so no landed row goes unaccounted."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum

import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.tables import BRONZE_LANDING_LEDGER


class FileVerdict(str, Enum):
    INGESTED = "ingested"
    DUPLICATE_CONTENT = "duplicate_content"
    REFUSED = "refused"
    WAITING = "waiting"


@dataclass(frozen=True)
class LedgerEntry:
    """What became of one file: ``file`` is its path inside landing/; ``rows`` its rows in bronze
    (for a file refused because its content changed, those of the content ingested before)."""

    file: str
    verdict: FileVerdict
    reason: str = ""
    rows: int | None = None
    sha256: str | None = None
    size_bytes: int | None = None


def ledger_schema() -> pandera.DataFrameSchema:
    """Pandera schema of ``bronze.landing_ledger``."""
    return pandera.DataFrameSchema(
        {
            "file": pandera.Column(str, unique=True, description="Path inside landing/, e.g. transactions/2024-05.csv."),
            "verdict": pandera.Column(
                str, pandera.Check.isin([v.value for v in FileVerdict]),
                description="ingested, duplicate_content, refused or waiting.",
            ),
            "reason": pandera.Column(str, description="Why it was refused, skipped or is waiting; empty when ingested."),
            "rows": pandera.Column(
                "Int64", pandera.Check.ge(0), nullable=True,
                description="Rows of the file in bronze (for changed content: those ingested before).",
            ),
            "sha256": pandera.Column(str, nullable=True, description="Content hash, when the file was read."),
            "size_bytes": pandera.Column("Int64", nullable=True, description="File size when the ledger was taken."),
        },
        name="landing_ledger",
        strict=True,
        ordered=True,
        coerce=True,
    )


def ledger_frame(entries: list[LedgerEntry]) -> pd.DataFrame:
    """The ledger as a validated frame, sorted by file."""
    frame = pd.DataFrame(
        [(e.file, e.verdict.value, e.reason, e.rows, e.sha256, e.size_bytes) for e in entries],
        columns=list(ledger_schema().columns),
    ).sort_values("file", ignore_index=True)
    return ledger_schema().validate(frame)


def verdict_counts(entries: list[LedgerEntry]) -> dict[str, int]:
    counts = Counter(e.verdict.value for e in entries)
    return {v.value: counts.get(v.value, 0) for v in FileVerdict}


def ledger_lines(entries: list[LedgerEntry], list_all_up_to: int = 30) -> list[str]:
    """Console lines: every file when there are few, else the counts and every file not ingested."""
    if not entries:
        return []
    counts = ", ".join(f"{n} {verdict.replace('_', ' ')}" for verdict, n in verdict_counts(entries).items() if n)
    lines = [f"Landing ledger: {len(entries)} file(s): {counts}"]
    shown = entries if len(entries) <= list_all_up_to else [e for e in entries if e.verdict is not FileVerdict.INGESTED]
    for entry in sorted(shown, key=lambda e: e.file):
        detail = f"{entry.rows:,} rows" if entry.verdict is FileVerdict.INGESTED else entry.reason
        lines.append(f"  {entry.verdict.value:<17} {entry.file}: {detail}")
    if len(shown) < len(entries):
        lines.append(f"  ({len(entries) - len(shown)} ingested files not listed: select * from {BRONZE_LANDING_LEDGER})")
    return lines
