"""Tables computed and stored inside DuckDB: a set-based step returns the query, the writer runs it.

The rows of such a table never travel through Python. Each select (one snapshot, or the whole
table) is inserted on its own, so DuckDB works on one batch at a time, and the caller's transaction
keeps the whole write atomic for readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa

from churn_assets.core.schema_sql import (
    SchemaViolation,
    check_column_types,
    check_rows,
    create_table_sql,
    typed_select_sql,
)
from churn_assets.core.warehouse import insert_by_name


@dataclass(frozen=True)
class TableQuery:
    """Rows that stay in the warehouse: ``selects`` land in the table in order, typed and checked
    by ``schema``.

    ``setup`` runs first on the writing connection (temporary inputs the selects share) and
    ``teardown`` last. ``expected_rows``, when given, is how many rows each select must insert.
    ``summaries`` name SQL over ``{rows}`` (the written rows) whose results describe them to a person.
    """

    schema: pandera.DataFrameSchema
    selects: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    teardown: tuple[str, ...] = ()
    expected_rows: tuple[int, ...] | None = None
    summaries: dict[str, str] = field(default_factory=dict)
    check: bool = True  # False when Pandera already validated the rows on their way in

    def __post_init__(self) -> None:
        if self.expected_rows is not None and len(self.expected_rows) != len(self.selects):
            raise ValueError(f"{len(self.expected_rows)} expected row counts for {len(self.selects)} selects")


@dataclass(frozen=True)
class WrittenTable:
    """What ``write_table_query`` did: rows per select, each check's failing rows (all zero), and
    the query's summaries of the written rows."""

    rows_per_select: tuple[int, ...]
    checks: dict[str, int]
    summaries: dict[str, pd.DataFrame]

    @property
    def rows(self) -> int:
        return sum(self.rows_per_select)


def _refuse_unknown_columns(connection, schema: pandera.DataFrameSchema, select: str, table: str) -> None:
    """Pandera's ``strict``: a column the schema does not name is a mistake, not something to drop."""
    unknown = [name for name in connection.sql(select).columns if name not in schema.columns]
    if unknown:
        raise SchemaViolation(f"{table}: the query returns columns its schema {schema.name!r} does not have: {unknown}")


class FrameStaging:
    """Frames a step produces one month at a time, each validated by Pandera once and parked in a
    staging table, so a range of months never sits in memory together; ``query`` hands them to the
    writer, which moves them into the asset's table in its transaction and drops the staging table."""

    def __init__(self, connection, name: str, schema: pandera.DataFrameSchema):
        self.connection, self.schema, self.table = connection, schema, f"staging.{name}"
        self.rows: dict = {}  # rows staged per snapshot
        connection.execute("create schema if not exists staging").fetchall()
        connection.execute(f"drop table if exists {self.table}").fetchall()

    def add(self, key, frame: pd.DataFrame) -> pd.DataFrame:
        """Validate ``frame`` (the rows of snapshot ``key``), stage it and return it validated."""
        validated = self.schema.validate(frame)
        insert_by_name(self.connection, self.table, pa.Table.from_pandas(validated, preserve_index=False))
        self.rows[key] = len(validated)
        return validated

    def query(self) -> TableQuery:
        selects = (f"select * from {self.table}",) if self.rows else ()
        return TableQuery(self.schema, selects, teardown=(f"drop table if exists {self.table}",), check=False)


class UnexpectedRowCount(ValueError):
    """A select inserted another number of rows than its step said it would."""


def write_table_query(connection, table: str, query: TableQuery, written: str | None = None) -> WrittenTable:
    """Insert ``query``'s rows into ``table`` (created from the schema if missing) and check them.

    ``written`` is an SQL condition that selects the rows this write owns (a partition range);
    None means the whole table. Deleting the old rows and the transaction are the caller's.
    """
    for statement in query.setup:
        connection.execute(statement).fetchall()
    connection.execute(create_table_sql(query.schema, table)).fetchall()
    check_column_types(connection, query.schema, table)
    counts = []
    for position, select in enumerate(query.selects):
        _refuse_unknown_columns(connection, query.schema, select, table)
        inserted = connection.execute(f"insert into {table} {typed_select_sql(query.schema, select)}").fetchall()[0][0]
        if query.expected_rows is not None and inserted != query.expected_rows[position]:
            raise UnexpectedRowCount(
                f"{table}: select {position + 1} of {len(query.selects)} inserted {inserted:,} rows, "
                f"{query.expected_rows[position]:,} expected"
            )
        counts.append(int(inserted))
    for statement in query.teardown:
        connection.execute(statement).fetchall()
    rows = f"(select * from {table} where {written or 'true'})"
    checks = check_rows(connection, query.schema, rows, table) if query.check else {}
    summaries = {name: connection.sql(sql.format(rows=rows)).df() for name, sql in query.summaries.items()}
    return WrittenTable(tuple(counts), checks, summaries)
