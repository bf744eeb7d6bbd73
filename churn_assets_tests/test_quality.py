import duckdb

from churn_assets.core.silver.quality import bronze_lineage_problems_sql

SHA_A, SHA_B = "a" * 64, "b" * 64


def _problems(rows):
    with duckdb.connect() as connection:
        connection.execute(
            "create table t (_source_file varchar, _file_sha256 varchar, _ingested_at timestamp, _row_number bigint)"
        )
        connection.executemany("insert into t values (?, ?, '2025-01-01', ?)", rows)
        return connection.execute(bronze_lineage_problems_sql("t")).df()


def test_complete_lineage_has_no_problems():
    assert _problems([("a.csv", SHA_A, 1), ("a.csv", SHA_A, 2), ("b.csv", SHA_B, 1)]).empty


def test_each_kind_of_broken_lineage_is_found():
    problems = _problems(
        [
            ("gap.csv", SHA_A, 1), ("gap.csv", SHA_A, 3),
            ("repeat.csv", SHA_A, 1), ("repeat.csv", SHA_A, 1),
            ("late_start.csv", SHA_A, 2),
            ("two_hashes.csv", SHA_A, 1), ("two_hashes.csv", SHA_B, 2),
            ("no_hash.csv", None, 1),
            (None, SHA_A, 1),
            ("fine.csv", SHA_A, 1),
        ]
    )
    found = problems["_source_file"].tolist()
    assert found == ["gap.csv", "late_start.csv", "no_hash.csv", "repeat.csv", "two_hashes.csv", None]


def test_repeated_pairs_and_rows_from_the_future_are_counted():
    from churn_assets.core.silver.quality import repeated_pairs_sql, rows_at_or_after_snapshot_sql

    with duckdb.connect() as connection:
        connection.execute(
            """create table f as select * from (values
                (date '2024-07-01', 'A', timestamp '2024-01-01', timestamp '2024-06-30 23:59:59'),
                (date '2024-07-01', 'A', timestamp '2024-01-01', timestamp '2024-07-01 00:00:00'),
                (date '2024-07-01', 'B', timestamp '2024-07-02', timestamp '2024-07-02'),
                (date '2024-08-01', 'A', timestamp '2024-01-01', timestamp '2024-07-15')
            ) t(snapshot_date, customer_id, first_order_ts, last_order_ts)"""
        )
        assert connection.execute(repeated_pairs_sql("f", ("snapshot_date", "customer_id"))).fetchall() == [(1,)]
        assert connection.execute(rows_at_or_after_snapshot_sql("f")).fetchall() == [(2,)]
