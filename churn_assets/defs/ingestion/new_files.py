"""Which landed files to ingest, judged against what the Dagster instance has materialized.

Shared by the landing sensor and ``churn-assets run`` so both follow one rule set: the instance's
materializations (with each file's sha256 in their metadata) are the ledger of ingested files;
a stat cache (the sensor's cursor) only saves re-hashing unchanged files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from churn_assets.core.ingestion.landing import (
    IngestDecision,
    LandedFile,
    Refusal,
    Verdict,
    decide_ingestion,
    file_sha256,
    scan_landing,
    settled,
)
from churn_assets.core.ingestion.ledger import FileVerdict, LedgerEntry
from churn_assets.lib.failures import StoredFailure, newest_failure
from churn_assets.lib.keys import bronze_key

SHA_METADATA_KEY = "file_sha256"
SIZE_METADATA_KEY, MTIME_METADATA_KEY = "file_size_bytes", "file_mtime_ns"
SHA_TAG = "churn_assets/file_sha256"


def partitions_name(source: str) -> str:
    return f"{source}_files"


@dataclass(frozen=True)
class IngestedFile:
    """A file partition of bronze as its newest materialization recorded it."""

    sha256: str
    rows: int | None
    size_bytes: int | None
    mtime_ns: int | None


@dataclass
class IngestionPlan:
    decisions: list[IngestDecision] = field(default_factory=list)
    refused_files: list[Refusal] = field(default_factory=list)  # files the pipeline does not read, and why
    stat_cache: dict[str, list] = field(default_factory=dict)
    waiting: list[LandedFile] = field(default_factory=list)  # still changing: taken once settled
    files: list[LandedFile] = field(default_factory=list)  # every readable file found

    @property
    def landing_fingerprint(self) -> str:
        """Changes whenever a file appears, changes, goes, or is refused: when to take the ledger again."""
        seen = [self.refusals, [(f.file_id, f.size, f.mtime_ns) for f in self.files]]
        return hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:16]

    @property
    def new(self) -> list[IngestDecision]:
        return [d for d in self.decisions if d.verdict is Verdict.NEW]

    @property
    def refused(self) -> list[IngestDecision]:
        return [d for d in self.decisions if d.verdict is Verdict.CHANGED_CONTENT]

    @property
    def refusals(self) -> list[str]:
        """Every refusal of this plan, as messages: unreadable or misplaced files, changed content."""
        return [*(r.message for r in self.refused_files), *(d.message for d in self.refused)]


def ingested_files(instance: dg.DagsterInstance, source: str) -> dict[str, IngestedFile]:
    """Every file partition of ``bronze.<source>`` that materialized, by file name."""
    found: dict[str, IngestedFile] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=bronze_key(source)), limit=1000, cursor=cursor
        )
        for record in result.records:  # newest first: the first record seen per file wins
            materialization = record.asset_materialization
            meta = materialization.metadata if materialization else {}
            if SHA_METADATA_KEY in meta and materialization.partition not in found:
                found[materialization.partition] = IngestedFile(
                    meta[SHA_METADATA_KEY].value, *(_number(meta, k) for k in ("dagster/row_count", SIZE_METADATA_KEY, MTIME_METADATA_KEY))
                )
        if not result.has_more:
            return found
        cursor = result.cursor


def _number(metadata, key: str) -> int | None:
    entry = metadata.get(key)
    return None if entry is None else int(entry.value)


def _hashes(ingested: dict[str, dict[str, IngestedFile]]) -> dict[str, dict[str, str]]:
    return {source: {name: f.sha256 for name, f in files.items()} for source, files in ingested.items()}


def plan_ingestion(
    instance: dg.DagsterInstance,
    landing_dir: Path,
    stat_cache: dict[str, list] | None = None,
    settle_seconds: float = 0.0,
    now_ns: int | None = None,
) -> IngestionPlan:
    """Decide on every settled landed file that is new or changed since ``stat_cache`` last saw
    it; files modified less than ``settle_seconds`` ago wait. Files whose last ingestion failed
    because of the machine are decided again as retries.

    ``stat_cache`` maps file id -> [size, mtime_ns, sha256]; the returned plan carries the
    updated cache, which also serves as the record of files already requested.
    """
    cache = dict(stat_cache or {})
    now_ns = time.time_ns() if now_ns is None else now_ns
    files, refused_files = scan_landing(landing_dir)
    waiting = [f for f in files if not settled(f, now_ns, settle_seconds)]
    candidates = [
        f for f in files
        if f not in waiting and cache.get(f.file_id, [None, None])[:2] != [f.size, f.mtime_ns]
    ]
    ingested = {source: ingested_files(instance, source) for source in {f.source for f in files}}
    retries = _retries(instance, files, cache, ingested, exclude=set(waiting) | set(candidates))
    if not candidates:
        return IngestionPlan(retries, refused_files, cache, waiting, files)
    hashed = [(f, file_sha256(f.path)) for f in candidates]
    requested: dict[str, dict[str, str]] = {}
    for file_id, (_, _, sha) in cache.items():
        source, name = file_id.split("/", 1)
        requested.setdefault(source, {})[name] = sha
    decisions = decide_ingestion(hashed, _hashes(ingested), requested)
    for decision in decisions:
        cache[decision.file.file_id] = [decision.file.size, decision.file.mtime_ns, decision.sha256]
    return IngestionPlan(decisions + retries, refused_files, cache, waiting, files)


def _retries(instance, files, cache, ingested, exclude) -> list[IngestDecision]:
    """Files requested before (in ``cache``, unchanged) and not ingested whose newest ingestion
    run failed because of the machine: a lock held, a full disk, a killed process."""
    retries = []
    for landed in files:
        known = cache.get(landed.file_id)
        if landed in exclude or not known or landed.name in ingested.get(landed.source, {}):
            continue
        failure = newest_failure(instance, {SHA_TAG: known[2]})
        if failure is not None and failure.environment:
            message = f"retrying {landed.file_id}: its ingestion failed because of the machine ({failure.text})"
            retries.append(IngestDecision(landed, known[2], Verdict.NEW, message, retry_of=failure.run_id))
    return retries


def landing_ledger(instance: dg.DagsterInstance, landing_dir: Path, settle_seconds: float = 0.0) -> list[LedgerEntry]:
    """A verdict for every file under ``landing_dir``, judged against the instance: ingested (with
    its rows), duplicate content, refused (with the reason) or waiting (with what it waits for)."""
    files, refused_files = scan_landing(landing_dir)
    entries = [LedgerEntry(r.file, FileVerdict.REFUSED, r.reason) for r in refused_files]
    ingested = {source: ingested_files(instance, source) for source in {f.source for f in files}}
    now_ns = time.time_ns()
    readable = []
    for landed in files:
        known = ingested.get(landed.source, {}).get(landed.name)
        if known and (known.size_bytes, known.mtime_ns) == (landed.size, landed.mtime_ns):
            entries.append(_ingested_entry(landed, known))  # unchanged since ingested, however recently
        elif not settled(landed, now_ns, settle_seconds):
            reason = f"still being written: read once unchanged for {settle_seconds:g} s"
            entries.append(LedgerEntry(landed.file_id, FileVerdict.WAITING, reason, size_bytes=landed.size))
        else:
            readable.append((landed, file_sha256(landed.path)))
    for decision in decide_ingestion(readable, _hashes(ingested)):
        entries.append(_entry(instance, decision, ingested.get(decision.file.source, {}).get(decision.file.name)))
    return entries


def _ingested_entry(landed: LandedFile, known: IngestedFile) -> LedgerEntry:
    return LedgerEntry(landed.file_id, FileVerdict.INGESTED, "", known.rows, known.sha256, landed.size)


def _entry(instance, decision: IngestDecision, known: IngestedFile | None) -> LedgerEntry:
    landed, sha = decision.file, decision.sha256
    if decision.verdict is Verdict.ALREADY_INGESTED:
        return _ingested_entry(landed, dataclasses.replace(known, sha256=sha))
    if decision.verdict is Verdict.DUPLICATE_CONTENT:
        reason = decision.message.split(": ", 1)[1]
        return LedgerEntry(landed.file_id, FileVerdict.DUPLICATE_CONTENT, reason, 0, sha, landed.size)
    if decision.verdict is Verdict.CHANGED_CONTENT:  # the rows of the content ingested before stay
        reason = decision.message.split(": ", 1)[1]
        return LedgerEntry(landed.file_id, FileVerdict.REFUSED, reason, known.rows, sha, landed.size)
    failure: StoredFailure | None = newest_failure(instance, {SHA_TAG: sha})
    if failure is None:
        return LedgerEntry(landed.file_id, FileVerdict.WAITING, "not ingested yet", None, sha, landed.size)
    if failure.environment:
        reason = f"its ingestion failed because of the machine ({failure.text}); the next run tries it again"
        return LedgerEntry(landed.file_id, FileVerdict.WAITING, reason, None, sha, landed.size)
    return LedgerEntry(landed.file_id, FileVerdict.REFUSED, failure.text, None, sha, landed.size)
