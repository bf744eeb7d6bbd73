"""Silver campaign contacts and their quarantine: exact outcomes on hand-built bronze rows."""

import duckdb
import pandas as pd
import pytest

from churn_assets.core.silver.campaign_contacts import (
    CONTACT_QUARANTINE_REASONS,
    contact_accounting_sql,
    contact_quarantine_schema,
    contacts_and_quarantine,
    empty_bronze_contacts_sql,
    silver_contacts_schema,
)

ACTIONS = ("discount_voucher", "win_back_email", "loyalty_reward")
ORDERS = [("1", "2024-01-05"), ("2", "2024-03-05")]  # customer 2 first ordered after February's snapshot
ROWS = [
    # campaign_id, customer_id, action, contacted_at, is_control, cost, file, row
    ("2024-02-01", "1", "discount_voucher", "2024-02-02 10:00", "false", None, "a.csv", 1),
    ("2024-02-01", "1", "discount_voucher", "2024-02-02 10:00", "false", None, "a.csv", 2),
    ("2024-02-01", "2", "discount_voucher", "2024-02-02 10:00", "false", None, "a.csv", 3),
    ("2024-02-15", "1", "discount_voucher", "2024-02-16", "false", None, "a.csv", 4),
    ("2024-02-01", " ", "discount_voucher", "2024-02-02", "false", None, "a.csv", 5),
    ("2024-03-01", "1", "sms", "2024-03-02", "true", None, "a.csv", 6),
    ("2024-03-01", "1", "Win_Back_Email", "", "true", "x", "a.csv", 7),
    ("2024-03-01", "1.0", " win_back_email", "", "True", "", "b.csv", 1),  # a control never contacted
    ("2024-04-01", "1", "loyalty_reward", "2024-03-30", "0", "1.5", "b.csv", 2),
    ("2024-05-01", "1", "loyalty_reward", "", "no", "1.5", "b.csv", 3),
    ("2024-06-01", "1", "loyalty_reward", "2024-06-01", "maybe", "1.5", "b.csv", 4),
    ("2024-07-01", "1", "loyalty_reward", "2099-06-01", "1", "1.5", "b.csv", 5),
    ("2024-08-01", "1", "loyalty_reward", "2024-08-03T09:00:00Z", "yes", "2.25", "b.csv", 6),
    ("2024-03-01", "1", "win_back_email", "2024-03-02", "false", None, "c.csv", 1),  # again, in a later file
]
EXPECTED_REASONS = {
    ("a.csv", 2): "duplicate_contact",
    ("a.csv", 3): "customer_not_in_plan",
    ("a.csv", 4): "campaign_id_not_a_snapshot",
    ("a.csv", 5): "missing_customer_id",
    ("a.csv", 6): "unknown_action",
    ("a.csv", 7): "unparseable_cost",
    ("b.csv", 2): "contact_before_snapshot",
    ("b.csv", 3): "unparseable_contacted_at",
    ("b.csv", 4): "unparseable_is_control",
    ("b.csv", 5): "future_contacted_at",
    ("c.csv", 1): "duplicate_contact",
}


@pytest.fixture
def connection():
    with duckdb.connect() as connection:
        connection.execute(f"create table bronze as select * from {empty_bronze_contacts_sql()}")
        connection.executemany(
            "insert into bronze (campaign_id, customer_id, action, contacted_at, is_control, cost, _source_file, "
            "_row_number, _file_sha256, _ingested_at) values (?, ?, ?, ?, ?, ?, ?, ?, 'x', '2025-01-01')",
            ROWS,
        )
        connection.execute("create table orders as select customer_id, cast(order_ts as timestamp) as order_ts from "
                           "(values " + ", ".join(f"('{c}', '{t}')" for c, t in ORDERS) + ") v(customer_id, order_ts)")
        yield connection


def test_every_row_reaches_silver_or_the_quarantine_with_its_reason(connection):
    contacts, quarantine, _ = contacts_and_quarantine(connection, "bronze", "orders", ACTIONS)
    contacts = silver_contacts_schema().validate(contacts)
    contact_quarantine_schema().validate(quarantine)
    reasons = {(f, r): reason for f, r, reason in quarantine[["_source_file", "_row_number", "reason"]].itertuples(index=False)}
    assert reasons == EXPECTED_REASONS
    assert set(EXPECTED_REASONS.values()) == set(CONTACT_QUARANTINE_REASONS)
    assert contacts[["_source_file", "_row_number"]].apply(tuple, axis=1).tolist() == [("a.csv", 1), ("b.csv", 1), ("b.csv", 6)]


def test_valid_contacts_are_typed(connection):
    contacts, _, _ = contacts_and_quarantine(connection, "bronze", "orders", ACTIONS)
    by_row = silver_contacts_schema().validate(contacts).set_index(["_source_file", "_row_number"])
    never_contacted = by_row.loc[("b.csv", 1)]
    assert never_contacted["customer_id"] == "1" and never_contacted["action"] == "win_back_email"
    assert bool(never_contacted["is_control"]) and pd.isna(never_contacted["contacted_at"]) and pd.isna(never_contacted["cost"])
    with_cost = by_row.loc[("b.csv", 6)]
    assert with_cost["contacted_at"] == pd.Timestamp("2024-08-03 09:00:00") and with_cost["cost"] == 2.25
    assert bool(with_cost["is_control"])


def test_quarantine_keeps_the_landed_values(connection):
    _, quarantine, _ = contacts_and_quarantine(connection, "bronze", "orders", ACTIONS)
    row = quarantine[(quarantine["_source_file"] == "a.csv") & (quarantine["_row_number"] == 6)].iloc[0]
    assert (row["action"], row["contacted_at"], row["is_control"]) == ("sms", "2024-03-02", "true")


def test_accounting_reconciles_and_shows_a_lost_row(connection):
    contacts, quarantine, _ = contacts_and_quarantine(connection, "bronze", "orders", ACTIONS)
    connection.register("silver", contacts)
    connection.register("quarantine", quarantine)
    accounting = connection.execute(contact_accounting_sql("bronze", "silver", "quarantine")).df()
    assert accounting["bronze_rows"].sum() == len(ROWS) and (accounting["unaccounted"] == 0).all()
    connection.register("silver", contacts.iloc[1:])
    accounting = connection.execute(contact_accounting_sql("bronze", "silver", "quarantine")).df().set_index("_source_file")
    assert accounting.loc["a.csv", "unaccounted"] == 1 and accounting.loc["b.csv", "unaccounted"] == 0


def test_nothing_landed_gives_empty_tables(connection):
    contacts, quarantine, _ = contacts_and_quarantine(connection, empty_bronze_contacts_sql(), "orders", ACTIONS)
    assert contacts.empty and quarantine.empty
    silver_contacts_schema().validate(contacts)


def test_each_campaign_has_a_fingerprint_that_changes_with_its_contacts(connection):
    _, _, before = contacts_and_quarantine(connection, "bronze", "orders", ACTIONS)
    assert set(before) == {"2024-02-01", "2024-03-01", "2024-08-01"}
    connection.execute("update bronze set action = 'discount_voucher' where _source_file = 'b.csv' and _row_number = 6")
    _, _, after = contacts_and_quarantine(connection, "bronze", "orders", ACTIONS)
    assert after["2024-08-01"] != before["2024-08-01"]
    assert {k: v for k, v in after.items() if k != "2024-08-01"} == {k: v for k, v in before.items() if k != "2024-08-01"}


def test_a_campaign_holds_its_customers_until_its_horizon_has_ended(connection):
    from churn_assets.core.silver.campaign_contacts import in_running_campaign

    connection.execute("create schema silver")
    connection.execute("create table silver.campaign_contacts as select * from (values "
                       "(date '2024-01-01', 'a'), (date '2024-02-01', 'b'), (date '2024-04-01', 'c')) v(snapshot_date, customer_id)")
    customers = pd.DataFrame({"customer_id": ["a", "b", "c", "d"]})
    # on 2024-04-01: a's campaign (horizon to 2024-03-30) has ended, b's runs to 2024-04-30, c's is this one
    assert in_running_campaign(connection, customers, "2024-04-01", 90).tolist() == [False, True, False, False]
    assert in_running_campaign(duckdb.connect(), customers, "2024-04-01", 90).tolist() == [False] * 4
