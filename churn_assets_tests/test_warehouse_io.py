"""The warehouse IO manager on a real DuckDB file: pandas and Arrow outputs, by column name."""

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa

from churn_assets.defs.resources import WarehouseIOManager


@dg.asset(key_prefix=["silver"])
def arrow_rows() -> pa.Table:
    return pa.table({"customer_id": ["a", "b"], "score": [0.5, 0.25]})


@dg.asset(key_prefix=["silver"])
def empty_arrow_rows() -> pa.Table:
    return pa.table({"customer_id": pa.array([], pa.string())})


@dg.asset(key_prefix=["gold"], ins={"rows": dg.AssetIn(["silver", "arrow_rows"])})
def rows_as_arrow(rows: pa.Table) -> pd.DataFrame:
    assert isinstance(rows, pa.Table)
    return pd.DataFrame({"rows": [rows.num_rows], "columns": [",".join(rows.column_names)]})


def test_arrow_outputs_are_written_and_read_back_as_arrow(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    result = dg.materialize(
        [arrow_rows, empty_arrow_rows, rows_as_arrow],
        resources={"io_manager": WarehouseIOManager(database=str(database))},
    )
    assert result.success
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute("select * from silver.arrow_rows order by 1").fetchall() == [("a", 0.5), ("b", 0.25)]
        # an empty output still creates its table, so downstream reads do not fail
        assert connection.execute("select count(*) from silver.empty_arrow_rows").fetchall() == [(0,)]
        assert connection.execute("select * from gold.rows_as_arrow").fetchall() == [(2, "customer_id,score")]
    written = result.asset_materializations_for_node("silver__arrow_rows")[0].metadata
    assert written["dagster/row_count"].value == 2
