"""Silver transactions and quarantine: exact outcomes on hand-built bronze rows."""

import duckdb
import pandas as pd
import pytest

from churn_assets.core.silver import (
    classified_rows_sql,
    empty_bronze_transactions_sql,
    quarantine_schema,
    quarantine_sql,
    row_accounting_sql,
    silver_transactions_schema,
    silver_transactions_sql,
)

INGESTED = "2025-01-01 00:00:00"
ROWS = [
    # order_id, customer_id, order_ts, amount, quantity, file, row
    ("O1", "42", "2024-01-05 10:00:00", "10.00", "2", "a.csv", 1),
    ("O2", "43.0", "2024-01-06", "-5.5", None, "a.csv", 2),            # refund; float-looking id
    ("O2", "43", "2024-01-06", "7", None, "a.csv", 3),                 # same id, other content
    (None, "1", "2024-01-01", "1", None, "a.csv", 4),
    ("O3", " ", "2024-01-01", "1", None, "a.csv", 5),
    ("O4", "1", "31/02/2024 25:61", "1", None, "a.csv", 6),
    ("O5", "1", "2099-01-01 00:00:00", "1", None, "a.csv", 7),
    ("O6", "1", "2024-01-01", "12,5O EUR", None, "a.csv", 8),
    ("O7", "1", "2024-01-01", "9999999", None, "a.csv", 9),
    ("O8", "1", "2024-01-01", "nan", None, "a.csv", 10),
    ("O1", "42", "2024-01-05 10:00:00", "10.00", "2", "b.csv", 1),    # same order landed again
    ("O9", "7", "2024-12-31T23:59:59", " 3.456 ", "1.0", "b.csv", 2),
]


def _classified(bronze: str, max_abs_amount: float) -> str:
    return f"({classified_rows_sql(bronze, max_abs_amount)})"


@pytest.fixture
def connection():
    with duckdb.connect() as connection:
        connection.execute(
            f"create table bronze as select * from {empty_bronze_transactions_sql()}"
        )
        connection.executemany(
            "insert into bronze (order_id, customer_id, order_ts, amount, quantity, _source_file, _row_number, "
            f"_file_sha256, _ingested_at) values (?, ?, ?, ?, ?, ?, ?, 'x', '{INGESTED}')",
            ROWS,
        )
        yield connection


def test_valid_rows_are_typed_and_deduplicated(connection):
    silver = silver_transactions_schema().validate(
        connection.execute(silver_transactions_sql(_classified("bronze", 50_000))).df()
    )
    assert silver["order_id"].tolist() == ["O1", "O2", "O9"]
    assert silver["customer_id"].tolist() == ["42", "43", "7"]
    assert silver["order_ts"].tolist() == [
        pd.Timestamp("2024-01-05 10:00:00"), pd.Timestamp("2024-01-06"), pd.Timestamp("2024-12-31 23:59:59")
    ]
    assert silver["amount"].tolist() == [10.0, -5.5, 3.46]
    assert silver["is_refund"].tolist() == [False, True, False]
    assert silver["quantity"].tolist() == [2, pd.NA, 1]
    assert silver[["_source_file", "_row_number"]].values.tolist() == [["a.csv", 1], ["a.csv", 2], ["b.csv", 2]]


def test_every_rejected_row_is_quarantined_with_its_reason(connection):
    quarantine = quarantine_schema().validate(connection.execute(quarantine_sql(_classified("bronze", 50_000))).df())
    reasons = {(f, r): reason for f, r, reason in quarantine[["_source_file", "_row_number", "reason"]].values}
    assert reasons == {
        ("a.csv", 3): "conflicting_duplicate",
        ("a.csv", 4): "missing_order_id",
        ("a.csv", 5): "missing_customer_id",
        ("a.csv", 6): "unparseable_order_ts",
        ("a.csv", 7): "future_order_ts",
        ("a.csv", 8): "unparseable_amount",
        ("a.csv", 9): "amount_out_of_range",
        ("a.csv", 10): "unparseable_amount",
        ("b.csv", 1): "exact_duplicate",
    }
    raw = quarantine.set_index("_row_number").loc[8]
    assert raw["amount"] == "12,5O EUR"  # quarantined rows keep the values as landed


def test_the_amount_limit_comes_from_settings(connection):
    quarantine = connection.execute(quarantine_sql(_classified("bronze", 5.0))).df()
    out_of_range = quarantine.loc[quarantine["reason"] == "amount_out_of_range", "order_id"]
    assert sorted(out_of_range) == ["O1", "O1", "O2", "O2", "O7"]


def test_row_accounting_reconciles_every_file(connection):
    connection.execute(f"create table silver as {silver_transactions_sql(_classified('bronze', 50_000))}")
    connection.execute(f"create table quarantine as {quarantine_sql(_classified('bronze', 50_000))}")
    accounting = connection.execute(row_accounting_sql("bronze", "silver", "quarantine")).df()
    assert accounting.values.tolist() == [
        ["a.csv", 10, 2, 8, 0, 0],
        ["b.csv", 2, 1, 0, 1, 0],
    ]
    connection.execute("delete from quarantine where _row_number = 4")  # a lost row shows up
    lost = connection.execute(row_accounting_sql("bronze", "silver", "quarantine")).df()
    assert lost.set_index("_source_file").loc["a.csv", "unaccounted"] == 1


def test_no_bronze_yet_gives_empty_typed_tables():
    with duckdb.connect() as connection:
        silver = connection.execute(silver_transactions_sql(_classified(empty_bronze_transactions_sql(), 50_000))).df()
        quarantine = connection.execute(quarantine_sql(_classified(empty_bronze_transactions_sql(), 50_000))).df()
    assert len(silver_transactions_schema().validate(silver)) == 0
    assert len(quarantine_schema().validate(quarantine)) == 0
