"""Small helpers on a DuckDB connection shared by the assets and checks."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
from pandera.engines.pandas_engine import DateTime

from churn_assets.core.tables import SILVER_TRANSACTIONS

_ARROW_TO_PANDAS = {
    pa.string(): pd.StringDtype("pyarrow"),
    pa.int32(): pd.Int32Dtype(),
}


def query_frame(connection, sql: str) -> pd.DataFrame:
    """Run ``sql`` on a DuckDB connection and return a DataFrame through Arrow.

    ``.df()`` turns every text value into a Python object (several times the memory at ten
    million rows); through Arrow, text stays in Arrow buffers and nullable integers stay integers.
    """
    return connection.sql(sql).to_arrow_table().to_pandas(types_mapper=_ARROW_TO_PANDAS.get)


def coerce_except_timestamps(schema: pandera.DataFrameSchema) -> pandera.DataFrameSchema:
    """``schema`` coercing every column but its timestamps, which must arrive typed (DuckDB's
    come as datetime64[us]). Pandera coerces a timestamp column through ``to_datetime`` even when
    it already has the type: about 0.2 s per million rows and column, 30 s at ten million
    transactions over silver, features and labels."""
    coerced = schema.update_columns(
        {name: {"coerce": not isinstance(column.dtype, DateTime)} for name, column in schema.columns.items()}
    )
    coerced.coerce = False  # a schema-wide coerce would override the columns' own
    return coerced


def insert_by_name(connection, table_name: str, table: pa.Table) -> None:
    """Insert ``table`` into ``table_name`` by column name, creating it from ``table``'s columns
    first when it does not exist (so even a table with no rows leaves its table behind)."""
    connection.register("_insert_by_name", table)
    try:
        connection.execute(f"create table if not exists {table_name} as select * from _insert_by_name limit 0").fetchall()
        connection.execute(f"insert into {table_name} by name select * from _insert_by_name").fetchall()
    finally:
        connection.unregister("_insert_by_name")


def table_exists(connection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists; asking avoids a failed statement, which would abort an
    open transaction."""
    return connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()[0][0] > 0


def snapshot_dates(connection, table: str) -> list:
    """Distinct ``snapshot_date`` values of ``table`` as dates; empty when the table does not exist yet."""
    schema, name = table.split(".")
    if not table_exists(connection, schema, name):
        return []
    return [r[0] for r in connection.execute(f"select distinct cast(snapshot_date as date) from {table}").fetchall()]


def snapshots_with_data(connection, start: date) -> list[str]:
    """Monthly snapshots (YYYY-MM-DD) from ``start`` that come after the first order, through the
    month after the newest; empty before silver has any order."""
    if not table_exists(connection, "silver", "transactions"):
        return []
    first, last = connection.execute(f"select min(order_ts), max(order_ts) from {SILVER_TRANSACTIONS}").fetchall()[0]
    if first is None:
        return []
    months = pd.date_range(start, last + pd.offsets.MonthBegin(1), freq="MS")
    return [m.date().isoformat() for m in months if m.date() > first.date()]
