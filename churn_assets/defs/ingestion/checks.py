"""Asset checks on bronze: lineage columns complete and consistent per file."""

import dagster as dg

from churn_assets.core.silver.quality import bronze_lineage_problems_sql
from churn_assets.core.ingestion.sources import SOURCES
from churn_assets.defs.ingestion.new_files import bronze_key
from churn_assets.lib.resources import DUCKDB_POOL, WarehouseResource


def _build_lineage_check(source: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=bronze_key(source),
        name="lineage_complete",
        description=(
            "Every file's rows carry one sha256 and row numbers 1..n without gaps or repeats; "
            "no lineage value is missing."
        ),
        pool=DUCKDB_POOL,
        blocking=True,
    )
    def lineage_check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as connection:
            problems = connection.execute(bronze_lineage_problems_sql(f"bronze.{source}")).df()
            files = connection.execute(
                f"select count(distinct _source_file) from bronze.{source}"
            ).fetchall()[0][0]
        return dg.AssetCheckResult(
            passed=problems.empty,
            metadata={
                "files_checked": files,
                "files_with_problems": len(problems),
                "problems": dg.MetadataValue.md(
                    problems.head(20).to_markdown(index=False) if len(problems) else "none"
                ),
            },
        )

    return lineage_check


bronze_checks = [_build_lineage_check(source) for source in SOURCES]
