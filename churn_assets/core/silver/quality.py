"""SQL that finds data-quality problems; each query returns one row per problem found."""

from __future__ import annotations


def bronze_lineage_problems_sql(table: str) -> str:
    """Files in ``table`` whose lineage is incomplete: several hashes, missing values, or row
    numbers that are not exactly 1..n."""
    return f"""
        select _source_file,
               count(*) as rows,
               count(distinct _file_sha256) as hashes,
               count(distinct _row_number) as distinct_row_numbers,
               min(_row_number) as first_row,
               max(_row_number) as last_row,
               3 * count(*) - count(_file_sha256) - count(_ingested_at) - count(_row_number)
                 as missing_values
        from {table}
        group by _source_file
        having hashes <> 1 or missing_values > 0 or first_row <> 1
            or last_row <> rows or distinct_row_numbers <> rows
        union all
        select null, count(*), 0, 0, 0, 0, count(*)
        from {table} where _source_file is null having count(*) > 0
        order by 1
    """


def repeated_pairs_sql(table: str, key: tuple[str, ...]) -> str:
    """How many values of ``key`` occur more than once in ``table``."""
    columns = ", ".join(key)
    return f"select count(*) from (select {columns} from {table} group by {columns} having count(*) > 1)"


def rows_at_or_after_snapshot_sql(table: str) -> str:
    """How many feature rows saw an order at or after their own snapshot."""
    return (
        f"select count(*) from {table} "
        "where last_order_ts >= snapshot_date or first_order_ts >= snapshot_date"
    )
