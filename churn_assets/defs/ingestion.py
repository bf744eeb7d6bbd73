"""Which landed files to ingest, judged against what the Dagster instance has materialized.

Shared by the landing sensor and ``churn-assets run`` so both follow one rule set: the instance's
materializations (with each file's sha256 in their metadata) are the ledger of ingested files;
a stat cache (the sensor's cursor) only saves re-hashing unchanged files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from churn_assets.core.landing import (
    IngestDecision,
    Verdict,
    decide_ingestion,
    file_sha256,
    scan_landing,
)
from churn_assets.defs.keys import bronze_key

SHA_METADATA_KEY = "file_sha256"
SHA_TAG = "churn_assets/file_sha256"


def partitions_name(source: str) -> str:
    return f"{source}_files"


@dataclass
class IngestionPlan:
    decisions: list[IngestDecision] = field(default_factory=list)
    refused_files: list[str] = field(default_factory=list)  # files the pipeline does not read, and why
    stat_cache: dict[str, list] = field(default_factory=dict)

    @property
    def new(self) -> list[IngestDecision]:
        return [d for d in self.decisions if d.verdict is Verdict.NEW]

    @property
    def refused(self) -> list[IngestDecision]:
        return [d for d in self.decisions if d.verdict is Verdict.CHANGED_CONTENT]

    @property
    def refusals(self) -> list[str]:
        """Every refusal of this plan, as messages: unreadable or misplaced files, changed content."""
        return [*self.refused_files, *(d.message for d in self.refused)]


def ingested_files(instance: dg.DagsterInstance, source: str) -> dict[str, str]:
    """{file name: sha256} of every file partition of ``bronze.<source>`` that materialized."""
    found: dict[str, str] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=bronze_key(source)), limit=1000, cursor=cursor
        )
        for record in result.records:  # newest first: the first sha seen per file wins
            materialization = record.asset_materialization
            sha = materialization.metadata.get(SHA_METADATA_KEY) if materialization else None
            if sha is not None and materialization.partition not in found:
                found[materialization.partition] = sha.value
        if not result.has_more:
            return found
        cursor = result.cursor


def plan_ingestion(
    instance: dg.DagsterInstance, landing_dir: Path, stat_cache: dict[str, list] | None = None
) -> IngestionPlan:
    """Decide on every landed file that is new or changed since ``stat_cache`` last saw it.

    ``stat_cache`` maps file id -> [size, mtime_ns, sha256]; the returned plan carries the
    updated cache, which also serves as the record of files already requested.
    """
    cache = dict(stat_cache or {})
    files, refused_files = scan_landing(landing_dir)
    candidates = [
        f for f in files if cache.get(f.file_id, [None, None])[:2] != [f.size, f.mtime_ns]
    ]
    if not candidates:
        return IngestionPlan([], refused_files, cache)
    hashed = [(f, file_sha256(f.path)) for f in candidates]
    sources = {f.source for f in candidates}
    ingested = {source: ingested_files(instance, source) for source in sources}
    requested: dict[str, dict[str, str]] = {}
    for file_id, (_, _, sha) in cache.items():
        source, name = file_id.split("/", 1)
        requested.setdefault(source, {})[name] = sha
    decisions = decide_ingestion(hashed, ingested, requested)
    for decision in decisions:
        cache[decision.file.file_id] = [decision.file.size, decision.file.mtime_ns, decision.sha256]
    return IngestionPlan(decisions, refused_files, cache)
