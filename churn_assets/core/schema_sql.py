"""A Pandera schema as DuckDB SQL: the table it describes, and the checks it makes, run where the
rows live.

Tables that never leave DuckDB are validated by SQL generated from the same schema that gives the
UI its Columns tab, so a schema stays the one source of a table's contract. ``pandera.ibis`` would
do this through Ibis, a second dataframe library in the install for five kinds of check.
"""

from __future__ import annotations

import pandera.pandas as pandera

# Pandera dtypes (as ``str(dtype)``) and the DuckDB types that hold them.
_DUCKDB_TYPES = {
    "datetime64[ns]": "TIMESTAMP",
    "datetime64[us]": "TIMESTAMP",
    "string[pyarrow]": "VARCHAR",
    "string": "VARCHAR",
    "str": "VARCHAR",
    "float64": "DOUBLE",
    "int64": "BIGINT",
    "Int64": "BIGINT",
    "int32": "INTEGER",
    "Int32": "INTEGER",
    "bool": "BOOLEAN",
    "boolean": "BOOLEAN",
}


class SchemaViolation(ValueError):
    """Rows in the warehouse break their table's schema; the message says which checks and how often."""


def duckdb_type(column: pandera.Column) -> str:
    """The DuckDB type of a Pandera column; a dtype without one is a mistake in the schema."""
    try:
        return _DUCKDB_TYPES[str(column.dtype)]
    except KeyError:
        raise ValueError(f"column {column.name!r}: no DuckDB type for the Pandera dtype {column.dtype}") from None


def create_table_sql(schema: pandera.DataFrameSchema, table: str) -> str:
    """``create table if not exists`` with the schema's columns, in its order, and their types."""
    columns = ", ".join(f'"{name}" {duckdb_type(column)}' for name, column in schema.columns.items())
    return f"create table if not exists {table} ({columns})"


def typed_select_sql(schema: pandera.DataFrameSchema, sql: str) -> str:
    """The rows of ``sql`` with exactly the schema's columns, in order, cast to its types (the SQL
    form of Pandera's ``coerce``, ``strict`` and ``ordered``)."""
    columns = ", ".join(
        f'cast("{name}" as {duckdb_type(column)}) as "{name}"' for name, column in schema.columns.items()
    )
    return f"select {columns} from ({sql})"


def _predicate(check: pandera.Check, column: str) -> str:
    """The SQL condition a value of ``column`` must meet to pass ``check``."""
    c, stats = f'"{column}"', check.statistics
    if check.name == "greater_than_or_equal_to":
        return f"{c} >= {stats['min_value']!r}"
    if check.name == "greater_than":
        return f"{c} > {stats['min_value']!r}"
    if check.name == "less_than_or_equal_to":
        return f"{c} <= {stats['max_value']!r}"
    if check.name == "less_than":
        return f"{c} < {stats['max_value']!r}"
    if check.name == "in_range":
        low = ">=" if stats.get("include_min", True) else ">"
        high = "<=" if stats.get("include_max", True) else "<"
        return f"{c} {low} {stats['min_value']!r} and {c} {high} {stats['max_value']!r}"
    if check.name == "isin":
        return f"{c} in ({', '.join(_literal(v) for v in stats['allowed_values'])})"
    if check.name == "finite":
        return f"isfinite({c})"
    raise ValueError(
        f"column {column!r}: the check {check.name!r} has no SQL form; use a built-in Pandera check "
        "(ge, gt, le, lt, in_range, isin) or one named 'finite'"
    )


def _literal(value) -> str:
    return "'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)


def _is_missing(column: pandera.Column, name: str) -> str:
    """Pandera counts NaN as missing in a float column."""
    return f'"{name}" is null' + (f' or isnan("{name}")' if duckdb_type(column) == "DOUBLE" else "")


def violations_sql(schema: pandera.DataFrameSchema, rows: str) -> str:
    """One row: for each check of ``schema`` (missing values, value checks, uniqueness), how many
    of ``rows`` break it, in a column named after the check."""
    counts = []
    for name, column in schema.columns.items():
        if not column.nullable:
            counts.append(f'count(*) filter (where {_is_missing(column, name)}) as "{name} is not null"')
        for check in column.checks:
            predicate = _predicate(check, name)
            counts.append(f'count(*) filter (where not ({predicate})) as "{name}: {check.name}"')
    keys = ([schema.unique] if isinstance(schema.unique, str) else [list(schema.unique)]) if schema.unique else []
    keys += [[name] for name, column in schema.columns.items() if column.unique]
    repeated = [
        f"""(select count(*) from (select 1 from {rows} group by {', '.join(f'"{k}"' for k in key)}
             having count(*) > 1)) as "unique ({', '.join(key)})" """
        for key in keys
    ]
    aggregates = ", ".join(counts) or "0 as none"
    return f"select * from (select {aggregates} from {rows}) cross join (select {', '.join(repeated) or '0 as no_keys'})"


def check_rows(connection, schema: pandera.DataFrameSchema, rows: str, table: str) -> dict[str, int]:
    """Every check of ``schema`` on ``rows`` (a table or subquery), by name, with its count of
    failing rows; raises ``SchemaViolation`` naming the failed ones."""
    relation = connection.sql(violations_sql(schema, rows))
    names, result = relation.columns, relation.fetchall()[0]
    counts = {name: int(count) for name, count in zip(names, result) if name not in ("none", "no_keys")}
    failed = {name: count for name, count in counts.items() if count}
    if failed:
        listed = "; ".join(f"{count:,} row(s) break {name}" for name, count in failed.items())
        raise SchemaViolation(f"{table} breaks its schema {schema.name!r}: {listed}")
    return counts


def check_column_types(connection, schema: pandera.DataFrameSchema, table: str) -> None:
    """Raise ``SchemaViolation`` when ``table``'s columns are not the schema's, in order and type."""
    # a table written before from pandas may hold nanosecond timestamps; inserts cast into them
    found = [(name, str(kind).replace("TIMESTAMP_NS", "TIMESTAMP")) for name, kind in zip(*_described(connection, table))]
    wanted = [(name, duckdb_type(column)) for name, column in schema.columns.items()]
    if found != wanted:
        raise SchemaViolation(
            f"{table} has the columns {found}, its schema {schema.name!r} wants {wanted}; the table was "
            "made by another version: drop it (or remove the warehouse file) and materialize it again"
        )


def _described(connection, table: str) -> tuple[list[str], list[str]]:
    relation = connection.sql(f"select * from {table} limit 0")
    return relation.columns, [str(t) for t in relation.types]
