"""The warehouse IO manager on a real DuckDB file: frames by column name, and tables whose rows
stay in DuckDB, written partition by partition in one transaction and checked there."""

import dagster as dg
import duckdb
import pandas as pd
import pandera.pandas as pandera
import pytest

from churn_assets.core.table_query import TableQuery
from churn_assets.lib.resources import WarehouseIOManager

SCORES = pandera.DataFrameSchema(
    {
        "snapshot_date": pandera.Column("datetime64[us]"),
        "customer_id": pandera.Column(pd.StringDtype("pyarrow")),
        "score": pandera.Column(float, pandera.Check.in_range(0, 1)),
    },
    name="scores",
    unique=["snapshot_date", "customer_id"],
)
MONTHS = dg.MonthlyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")


def _scores(context: dg.AssetExecutionContext) -> TableQuery:
    """Two customers per month; month 2024-03 scores 1.5 for customer b when asked to."""
    bad = context.run.tags.get("bad_score") == "yes"
    return TableQuery(
        SCORES,
        selects=tuple(
            f"""select timestamp '{key} 00:00:00' as snapshot_date, customer_id,
                       case when {bad} and customer_id = 'b' and '{key}' = '2024-03-01' then 1.5 else 0.25 end as score
                from (values ('a'), ('b')) t(customer_id)"""
            for key in context.partition_keys
        ),
        expected_rows=tuple(2 for _ in context.partition_keys),
        summaries={"per_month": "select snapshot_date, count(*) as rows from {rows} group by 1 order by 1"},
    )


@dg.asset(key_prefix=["silver"], partitions_def=MONTHS, metadata={"partition_expr": "snapshot_date"},
          backfill_policy=dg.BackfillPolicy.single_run())
def scores(context: dg.AssetExecutionContext) -> TableQuery:
    return _scores(context)


@dg.asset(key_prefix=["silver"])
def empty_scores() -> TableQuery:
    return TableQuery(SCORES)


@dg.asset(key_prefix=["silver"])
def frame_rows() -> pd.DataFrame:
    return pd.DataFrame({"score": [0.5, 0.25], "customer_id": ["a", "b"]})


def _materialize(database, assets, **kwargs):
    return dg.materialize(assets, resources={"io_manager": WarehouseIOManager(database=str(database))},
                          raise_on_error=False, **kwargs)


def _rows(database, sql):
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def test_frames_are_written_by_column_name(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    assert _materialize(database, [frame_rows]).success
    assert _rows(database, "select customer_id, score from silver.frame_rows order by 1") == [("a", 0.5), ("b", 0.25)]


def test_a_table_query_runs_in_the_warehouse_partition_by_partition(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    result = _materialize(database, [scores, empty_scores], partition_key=None, tags={
        "dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-03-01",
    })
    assert result.success
    assert _rows(database, "select count(*), count(distinct snapshot_date) from silver.scores") == [(6, 3)]
    # a query without selects still creates its table, typed by the schema, so downstream reads do not fail
    assert _rows(database, "select count(*) from silver.empty_scores") == [(0,)]
    assert [c[1] for c in _rows(database, "describe silver.scores")] == ["TIMESTAMP", "VARCHAR", "DOUBLE"]
    metadata = result.asset_materializations_for_node("silver__scores")[0].metadata
    assert metadata["rows_written_for_range"].value == 6
    assert metadata["schema_checks"].value.startswith("5 SQL checks")
    assert "2024-03-01" in metadata["per_month"].value


def test_a_row_that_breaks_the_schema_fails_the_write_and_keeps_the_old_rows(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    assert _materialize(database, [scores], partition_key="2024-03-01").success
    failed = _materialize(database, [scores], partition_key="2024-03-01", tags={"bad_score": "yes"})
    assert not failed.success
    message = str(failed.get_step_failure_events()[0].event_specific_data.error)
    assert "1 row(s) break score: in_range" in message and "silver.scores" in message
    # the delete of the partition's old rows rolled back with the insert
    assert _rows(database, "select customer_id, score from silver.scores order by 1") == [("a", 0.25), ("b", 0.25)]


def test_a_query_that_returns_another_number_of_rows_than_promised_fails(tmp_path):
    from churn_assets.core.table_query import UnexpectedRowCount, write_table_query

    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        query = TableQuery(SCORES, selects=("select timestamp '2024-01-01' as snapshot_date, 'a' as customer_id, 0.5 as score",),
                           expected_rows=(2,))
        with pytest.raises(UnexpectedRowCount, match="inserted 1 rows, 2 expected"):
            write_table_query(connection, "scores", query)
