"""The DuckDB-to-Spark rewrites on their own (no JVM): what each turns a DuckDB construct into."""

from __future__ import annotations

import pytest

from churn_assets.core.spark.dialect import java_pattern, to_spark


@pytest.mark.parametrize(("strftime", "java"), [
    ("%m/%d/%Y %H:%M", "M/d/yyyy H:m"),  # one or two digits each, as DuckDB reads them
    ("%Y%m%d", "yyyyMMdd"),  # numbers with no separator need fixed widths
    ("%d.%m.%Y %H:%M:%S", "d.M.yyyy H:m:s"),
    ("%Y-%m-%dT%H:%M", "yyyy-M-d'T'H:m"),  # a literal letter is quoted
])
def test_strptime_formats_become_java_patterns(strftime, java):
    assert java_pattern(strftime) == java


def test_duckdb_functions_become_their_spark_meaning():
    (sql,) = to_spark(
        "select try_strptime(t, ['%Y%m%d', '%d/%m/%Y']), isfinite(a) and true, epoch_us(ts), "
        "regexp_replace(c, '^([0-9]+)\\.0+$', '\\1'), x::hugeint, try_cast(t as timestamp) from s.t"
    )
    assert "COALESCE(TRY_TO_TIMESTAMP(t, 'yyyyMMdd'), TRY_TO_TIMESTAMP(t, 'd/M/yyyy'))" in sql
    assert "(NOT ISNAN(a) AND ABS(a) <> CAST('Infinity' AS DOUBLE)) AND TRUE" in sql  # kept whole under AND
    assert "UNIX_MICROS(ts)" in sql and "'$1'" in sql and "DECIMAL(38, 0)" in sql
    assert "TRY_CAST(t AS TIMESTAMP)" in sql and "NTZ" not in sql


def test_a_wall_clock_time_in_a_zone_converts_to_utc_and_materialized_hints_go():
    (sql,) = to_spark(
        "with a as materialized (select 1 as x) "
        "select timezone('Europe/Berlin', ts) at time zone 'UTC', try_cast(t as timestamptz) at time zone 'UTC' from a"
    )
    assert "TO_UTC_TIMESTAMP(ts, 'Europe/Berlin')" in sql and "MATERIALIZED" not in sql.upper()
    assert "AT TIME ZONE" not in sql.upper()


def test_warehouse_tables_are_renamed_and_keep_their_alias():
    (sql,) = to_spark("select t.a from silver.transactions t join gold.x using (a)", lambda schema, name: f"{schema}__{name}")
    assert "silver__transactions AS t" in sql and "gold__x AS x" in sql
