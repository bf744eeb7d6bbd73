"""Silver transactions and quarantine: exact outcomes on hand-built bronze rows."""

import duckdb
import pandas as pd
import pytest

from churn_assets.core.ingestion.sources import TimestampRules
from churn_assets.core.silver.schemas import quarantine_schema, silver_transactions_schema
from churn_assets.core.silver.transactions import (
    classified_rows_sql,
    empty_bronze_transactions_sql,
    quarantine_sql,
    row_accounting_sql,
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
        ["a.csv", 10, 2, 0, 8, 0, 0],
        ["b.csv", 2, 1, 0, 0, 1, 0],
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


# An order-line export in the UCI Online Retail layout, already renamed to canonical columns:
# no amount, one row per invoice line, US dates, float customer ids, 'C' marks a cancellation.
LINES = [
    # order_id, customer_id, order_ts, quantity, unit_price, file, row
    ("536365", "17850.0", "12/1/2010 8:26", "6", "2.55", "u1.csv", 1),
    ("536365", "17850.0", "12/1/2010 8:26", "8", "3.39", "u1.csv", 2),
    ("536365", "17850.0", "12/1/2010 8:26", "2", "7.65", "u1.csv", 3),
    ("C536379", "14527.0", "12/1/2010 9:41", "-1", "27.50", "u1.csv", 4),
    ("536366", "17850.0", "12/1/2010 8:28", "six", "1.85", "u1.csv", 5),
    ("536366", "17850.0", "12/1/2010 8:28", "6", "1.85", "u1.csv", 6),
    ("536367", None, "12/1/2010 8:34", "32", "1.69", "u1.csv", 7),
    # the same export landed again, and one invoice changed in between
    ("536365", "17850.0", "12/1/2010 8:26", "6", "2.55", "u2.csv", 1),
    ("536365", "17850.0", "12/1/2010 8:26", "8", "3.39", "u2.csv", 2),
    ("536365", "17850.0", "12/1/2010 8:26", "2", "7.65", "u2.csv", 3),
    ("536366", "17850.0", "12/1/2010 8:28", "6", "1.95", "u2.csv", 4),
]
US_FORMAT = ("%m/%d/%Y %H:%M",)


@pytest.fixture
def order_lines():
    with duckdb.connect() as connection:
        connection.execute(f"create table bronze as select * from {empty_bronze_transactions_sql()}")
        connection.executemany(
            "insert into bronze (order_id, customer_id, order_ts, quantity, unit_price, _source_file, _row_number, "
            "_file_sha256, _ingested_at) values (?, ?, ?, ?, ?, ?, ?, 'x', '2011-01-01')",
            LINES,
        )
        classified = _classified_with("bronze", US_FORMAT)
        connection.execute(f"create table silver as {silver_transactions_sql(classified)}")
        connection.execute(f"create table quarantine as {quarantine_sql(classified)}")
        yield connection


def _classified_with(bronze: str, formats: tuple[str, ...], timezone: str = "UTC") -> str:
    return f"({classified_rows_sql(bronze, 50_000, TimestampRules(formats, timezone))})"


def test_order_lines_are_summed_into_orders_and_cancellations_into_refunds(order_lines):
    silver = silver_transactions_schema().validate(order_lines.execute("select * from silver").df())
    assert silver[["order_id", "customer_id", "amount", "quantity", "is_refund", "line_count"]].values.tolist() == [
        ["536365", "17850", 57.72, 16, False, 3],  # 6 x 2.55 + 8 x 3.39 + 2 x 7.65
        ["536366", "17850", 11.10, 6, False, 1],  # the unreadable line is quarantined, not summed
        ["C536379", "14527", -27.50, -1, True, 1],
    ]
    assert silver["order_ts"].tolist() == [
        pd.Timestamp("2010-12-01 08:26"), pd.Timestamp("2010-12-01 08:28"), pd.Timestamp("2010-12-01 09:41")
    ]
    assert silver[["_source_file", "_row_number"]].values.tolist() == [["u1.csv", 1], ["u1.csv", 6], ["u1.csv", 4]]


def test_order_lines_are_quarantined_line_by_line_and_duplicates_order_by_order(order_lines):
    quarantine = quarantine_schema().validate(order_lines.execute("select * from quarantine").df())
    assert quarantine[["_source_file", "_row_number", "reason"]].values.tolist() == [
        ["u1.csv", 5, "unparseable_amount"],
        ["u1.csv", 7, "missing_customer_id"],
        ["u2.csv", 1, "exact_duplicate"],  # every line of an order landed twice
        ["u2.csv", 2, "exact_duplicate"],
        ["u2.csv", 3, "exact_duplicate"],
        ["u2.csv", 4, "conflicting_duplicate"],  # 6 x 1.95 is not the 11.10 first landed
    ]
    row = quarantine.iloc[0]
    assert (row["quantity"], row["unit_price"]) == ("six", "1.85") and pd.isna(row["amount"])


def test_row_accounting_counts_merged_order_lines(order_lines):
    accounting = order_lines.execute(row_accounting_sql("bronze", "silver", "quarantine")).df()
    assert accounting.values.tolist() == [
        # file, bronze, silver, merged lines, quarantined, dropped duplicates, unaccounted
        ["u1.csv", 7, 3, 2, 2, 0, 0],
        ["u2.csv", 4, 0, 0, 1, 3, 0],
    ]


def test_timestamps_in_other_formats_need_the_setting(order_lines):
    quarantine = order_lines.execute(quarantine_sql(_classified_with("bronze", ()))).df()
    reasons = quarantine.set_index(["_source_file", "_row_number"])["reason"]
    assert len(reasons) == len(LINES)
    assert reasons.drop(("u1.csv", 7)).eq("unparseable_order_ts").all()  # row 7 fails earlier, on its id


def test_times_with_an_offset_become_utc_and_the_same_instant_relanded_is_an_exact_duplicate():
    """10:00+02:00 is 08:00 UTC; the same order re-exported as 08:00Z is the same order, not a
    conflicting one; a bare date's '-05' is a day, not an offset; times without offset are UTC."""
    rows = [
        ("T1", "1", "2024-03-05T10:00:00+02:00", "10", None, "a.csv", 1),
        ("T2", "2", "2024-03-05 10:00:00-0500", "10", None, "a.csv", 2),
        ("T3", "3", "2024-03-05", "10", None, "a.csv", 3),
        ("T4", "4", "2024-03-05 10:00:00", "10", None, "a.csv", 4),
        ("T1", "1", "2024-03-05T08:00:00Z", "10", None, "b.csv", 1),
    ]
    silver, quarantine = _silver_and_quarantine(rows, "amount, quantity")
    assert silver["order_ts"].to_dict() == {
        "T1": pd.Timestamp("2024-03-05 08:00:00"), "T2": pd.Timestamp("2024-03-05 15:00:00"),
        "T3": pd.Timestamp("2024-03-05 00:00:00"), "T4": pd.Timestamp("2024-03-05 10:00:00"),
    }
    assert quarantine[["_source_file", "reason"]].values.tolist() == [["b.csv", "exact_duplicate"]]


def test_times_without_an_offset_are_taken_in_the_configured_time_zone():
    """CHURN_TIMEZONE=Europe/Berlin: a naive 10:00 in March is 09:00 UTC, in July 08:00 UTC; a
    time with its own offset keeps it, a space before the offset or not; a date is midnight in
    Berlin; 02:30 on the night clocks go back, which happens twice, is the first of the two."""
    rows = [
        ("Z1", "1", "2024-03-05 10:00:00", "10", None, "a.csv", 1),
        ("Z2", "2", "2024-07-05 10:00:00", "10", None, "a.csv", 2),
        ("Z3", "3", "2024-07-05T10:00:00Z", "10", None, "a.csv", 3),
        ("Z4", "4", "2024-07-05", "10", None, "a.csv", 4),
        ("Z5", "5", "2024-07-05 10:00:00 -0500", "10", None, "a.csv", 5),
        ("Z6", "6", "2024-10-27 02:30:00", "10", None, "a.csv", 6),
        ("Z7", "7", "2024-10-27 03:30:00", "10", None, "a.csv", 7),
    ]
    silver, _ = _silver_and_quarantine(rows, "amount, quantity", timezone="Europe/Berlin")
    assert silver["order_ts"].to_dict() == {
        "Z1": pd.Timestamp("2024-03-05 09:00:00"), "Z2": pd.Timestamp("2024-07-05 08:00:00"),
        "Z3": pd.Timestamp("2024-07-05 10:00:00"), "Z4": pd.Timestamp("2024-07-04 22:00:00"),
        "Z5": pd.Timestamp("2024-07-05 15:00:00"), "Z6": pd.Timestamp("2024-10-27 00:30:00"),
        "Z7": pd.Timestamp("2024-10-27 02:30:00"),
    }


def test_a_quantity_beyond_32_bits_quarantines_its_line_and_stops_no_other_file():
    """Order lines: a line whose quantity a 32-bit integer cannot hold is quarantined with its
    reason; an invoice whose valid lines sum past it keeps its exact amount; the rest reaches silver."""
    rows = [
        # order_id, customer_id, order_ts, quantity, unit_price, file, row
        ("L1", "1", "2024-03-05 10:00:00", "3000000000", "0.000001", "big.csv", 1),
        ("L2", "2", "2024-03-05 10:00:00", "2000000000", "0.000001", "big.csv", 2),
        ("L2", "2", "2024-03-05 10:00:00", "2000000000", "0.000001", "big.csv", 3),
        ("L3", "3", "2024-03-06 10:00:00", "2", "5.00", "other.csv", 1),
    ]
    silver, quarantine = _silver_and_quarantine(rows, "quantity, unit_price")
    assert quarantine[["_source_file", "_row_number", "reason"]].values.tolist() == [["big.csv", 1, "quantity_out_of_range"]]
    assert silver.loc["L2", "amount"] == 4000.0 and pd.isna(silver.loc["L2", "quantity"])
    assert silver.loc["L3", "amount"] == 10.0 and silver.loc["L3", "quantity"] == 2


def _silver_and_quarantine(rows: list[tuple], value_columns: str, timezone: str = "UTC") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Silver (by order id) and quarantine of bronze ``rows``: (order_id, customer_id, order_ts,
    the two ``value_columns``, file, row)."""
    with duckdb.connect() as connection:
        connection.execute(f"create table bronze as select * from {empty_bronze_transactions_sql()}")
        connection.executemany(
            f"insert into bronze (order_id, customer_id, order_ts, {value_columns}, _source_file, _row_number, "
            f"_file_sha256, _ingested_at) values (?, ?, ?, ?, ?, ?, ?, 'x', '{INGESTED}')",
            rows,
        )
        classified = _classified_with("bronze", (), timezone)
        silver = connection.execute(silver_transactions_sql(classified)).df().set_index("order_id")
        return silver, connection.execute(quarantine_sql(classified)).df()
