"""Bronze: one asset per landed source, one dynamic partition per landed file."""

import dagster as dg
import pandas as pd

from churn_assets.core.ingestion.bronze import (
    DATED_COLUMNS,
    bronze_schema,
    earliest_row_ts,
    ingest_landed_file,
)
from churn_assets.core.ingestion.landing import LandingError
from churn_assets.core.ingestion.ledger import FileVerdict, ledger_frame, ledger_schema
from churn_assets.core.ingestion.sources import SOURCES, Source
from churn_assets.core.table_query import FrameStaging, TableQuery
from churn_assets.core.warehouse import table_exists
from churn_assets.lib.automation import rebuild_when_stale
from churn_assets.defs.ingestion.new_files import (
    MTIME_METADATA_KEY,
    SHA_METADATA_KEY,
    SHA_TAG,
    SIZE_METADATA_KEY,
    landing_ledger,
    partitions_name,
)
from churn_assets.lib.keys import LANDING_LEDGER, bronze_key
from churn_assets.lib.metadata import column_schema, dagster_type, preview, table_query_type
from churn_assets.lib.resources import DUCKDB_POOL, WarehouseResource, storage_kind
from churn_assets.lib.staleness import EARLIEST_KEY
from churn_assets.settings import Settings


class BronzeIngestConfig(dg.Config):
    allow_changed_content: bool = False
    """Replace the rows of a file whose content changed since it was ingested (off: refuse)."""


FILE_PARTITIONS = {
    name: dg.DynamicPartitionsDefinition(name=partitions_name(name)) for name in SOURCES
}


def _ingested_hashes(warehouse: WarehouseResource, source: Source, names: list[str]) -> dict[str, str]:
    """{file name: sha256} already in ``bronze.<source>`` for ``names``."""
    with warehouse.get_connection() as connection:
        if not table_exists(connection, "bronze", source.name):
            return {}
        rows = connection.execute(
            f"select _source_file, any_value(_file_sha256) from bronze.{source.name} "
            "where _source_file in (select unnest(?)) group by 1",
            [names],
        ).fetchall()
    return dict(rows)


def _build_bronze_asset(source: Source, settings: Settings) -> dg.AssetsDefinition:
    schema = bronze_schema(source)

    @dg.asset(
        key=bronze_key(source.name),
        group_name="bronze",
        description=(
            f"Rows of every file landed in landing/{source.name}/, as landed (text), with lineage "
            "columns _source_file, _file_sha256, _ingested_at and _row_number."
        ),
        partitions_def=FILE_PARTITIONS[source.name],
        dagster_type=table_query_type(schema),
        metadata={"partition_expr": "_source_file", "dagster/column_schema": column_schema(schema)},
        kinds={storage_kind(settings), "pandas", "csv", "parquet"},
        pool=DUCKDB_POOL,
    )
    def bronze_asset(
        context: dg.AssetExecutionContext,
        config: BronzeIngestConfig,
        warehouse: WarehouseResource,
    ) -> TableQuery:
        names = context.partition_keys
        requested_sha = context.run.tags.get(SHA_TAG) if len(names) == 1 else None
        previous = _ingested_hashes(warehouse, source, names)
        ingested_at = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
        with warehouse.get_connection() as connection:
            # each file validated once and parked in the warehouse: a range of files is never one frame
            staging = FrameStaging(connection, f"bronze_{source.name}", schema)
            for name in names:
                try:
                    frame, sha, path = ingest_landed_file(
                        settings.landing_dir,
                        source,
                        name,
                        ingested_at=ingested_at,
                        requested_sha=requested_sha,
                        ingested_sha=previous.get(name),
                        allow_changed_content=config.allow_changed_content,
                        column_map=settings.column_map(source.name),
                    )
                except LandingError as exc:
                    raise dg.Failure(description=str(exc), allow_retries=False) from None
                # when the file's rows first reach a snapshot, for the staleness of the snapshot tables
                dated = (
                    {EARLIEST_KEY: earliest_row_ts(frame, source, settings.timestamp_rules)}
                    if source.name in DATED_COLUMNS else {}
                )
                stat = path.stat()  # with the hash, lets the landing ledger skip re-reading an unchanged file
                context.add_asset_metadata(
                    {
                        SHA_METADATA_KEY: sha, SIZE_METADATA_KEY: stat.st_size, MTIME_METADATA_KEY: str(stat.st_mtime_ns),
                        "source_path": str(path), "dagster/row_count": len(frame), **dated,
                    },
                    partition_key=name,
                )
                context.log.info(f"{source.name}/{name}: {len(frame):,} rows")
                staging.add(name, frame)
                newest = frame
        context.add_output_metadata({"files": len(names), "preview": preview(newest)})
        return staging.query()

    return bronze_asset


def build_bronze_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """One bronze asset per source, reading landed files with ``settings``' column maps."""
    return [_build_bronze_asset(source, settings) for source in SOURCES.values()]


def build_landing_ledger(settings: Settings) -> dg.AssetsDefinition:
    """``bronze.landing_ledger``: every file under landing/ with its verdict."""
    @dg.asset(
        key=LANDING_LEDGER,
        group_name="bronze",
        deps=[bronze_key(source) for source in SOURCES],
        description=(
            "Every file under landing/ with its verdict: ingested (with its rows), duplicate_content, "
            "refused (with the reason) or waiting (still being written, or retried after a failure "
            "the machine caused)."
        ),
        dagster_type=dagster_type(ledger_schema()),
        metadata={"dagster/column_schema": column_schema(ledger_schema())},
        kinds={storage_kind(settings), "pandas"},
        automation_condition=rebuild_when_stale(),
        pool=DUCKDB_POOL,
    )
    def landing_ledger_asset(context: dg.AssetExecutionContext) -> pd.DataFrame:
        ledger = ledger_frame(landing_ledger(context.instance, settings.landing_dir, settings.settle_seconds))
        not_ingested = ledger[ledger["verdict"] != "ingested"]
        context.add_output_metadata({
            **{f"files/{v.value}": int((ledger["verdict"] == v.value).sum()) for v in FileVerdict},
            "not_ingested": dg.MetadataValue.md(not_ingested.to_markdown(index=False) if len(not_ingested) else "none"),
        })
        return ledger

    return landing_ledger_asset


ledger_job = dg.define_asset_job(
    "record_landing_ledger",
    selection=[LANDING_LEDGER],
    description="Take the landing ledger: a verdict for every file under landing/.",
)

ingest_jobs = {
    name: dg.define_asset_job(
        f"ingest_{name}",
        selection=[bronze_key(name)],
        description=f"Ingest landed {name} files into bronze.{name}, one file partition per run.",
    )
    for name in SOURCES
}
