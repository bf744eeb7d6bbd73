"""Point-in-time features and forward-looking labels: exact values on a hand-built history."""

from datetime import date, datetime

import duckdb
import pandas as pd
import pandera.pandas as pandera
import pytest

from churn_assets.core.silver.features import (
    customer_features_schema,
    customer_features_sql,
    customers_per_snapshot_sql,
    features_query,
)
from churn_assets.core.silver.labels import (
    churn_labels_schema,
    churn_labels_sql,
    horizon_observed,
    labels_query,
)
from churn_assets.core.schema_sql import SchemaViolation
from churn_assets.core.table_query import TableQuery, write_table_query

S = date(2024, 7, 1)


@pytest.fixture
def connection():
    with duckdb.connect() as connection:
        connection.execute(
            """create table tx as select *, amount < 0 as is_refund from (values
                ('O1', 'A', timestamp '2024-01-01 00:00:00', 100.0, 'home'),
                ('O2', 'A', timestamp '2024-03-01 00:00:00', 50.0, 'sports'),
                ('R1', 'A', timestamp '2024-03-05 00:00:00', -25.0, 'sports'),
                ('O3', 'A', timestamp '2024-06-01 00:00:00', 30.0, 'home'),
                ('O4', 'B', timestamp '2024-05-20 00:00:00', 10.0, 'home'),
                ('O5', 'B', timestamp '2024-07-01 00:00:00', 99.0, 'home'),
                ('O6', 'C', timestamp '2024-07-02 00:00:00', 5.0, 'home'),
                ('O7', 'D', timestamp '2024-06-30 23:59:59', 20.0, 'beauty'),
                ('O8', 'D', timestamp '2024-09-28 23:59:59', 20.0, 'beauty'),
                ('R2', 'E', timestamp '2024-06-10 00:00:00', -10.0, 'home')
            ) t(order_id, customer_id, order_ts, amount, product_category)"""
        )
        connection.execute(
            """create table customers as select * from (values
                ('A', '2023-12-31 00:00:00', 'vip', '120', 'true', 'c1.csv', 1, timestamp '2024-01-01'),
                ('A', '2023-12-31 00:00:00', 'consumer', '5', 'false', 'c0.csv', 1, timestamp '2023-12-31'),
                ('B', '2024-05-01 00:00:00', 'consumer', 'lots', 'maybe', 'c1.csv', 2, timestamp '2024-01-01')
            ) t(customer_id, signup_ts, segment, loyalty_points, marketing_opt_in, _source_file, _row_number, _ingested_at)"""
        )
        connection.execute(
            """create table sessions as select * from (values
                ('A', '2024-06-15 10:00:00'), ('A', '2024-06-29 10:00:00'), ('A', '2024-05-01 10:00:00'),
                ('A', '2024-07-01 00:00:00'), ('B', 'garbage')
            ) t(customer_id, session_ts)"""
        )
        yield connection


def _features(connection, **sources):
    frame = connection.execute(customer_features_sql(S, "tx", **sources)).df()
    return customer_features_schema().validate(frame).set_index("customer_id")


def test_every_feature_has_its_exact_value(connection):
    f = _features(connection, customers="customers", web_sessions="sessions")
    a = f.loc["A"]
    assert a["recency_days"] == 30.0
    assert a["frequency"] == 3
    assert a["monetary"] == 155.0  # 100 + 50 - 25 + 30: the refund is netted
    assert a["avg_order_value"] == 60.0
    assert a["tenure_days"] == 182.0
    assert (a["orders_30d"], a["orders_90d"], a["orders_180d"]) == (1, 1, 2)
    assert (a["spend_30d"], a["spend_90d"], a["spend_180d"]) == (30.0, 30.0, 55.0)
    assert a["spend_trend"] == 5.0  # last 90 days (30) minus the 90 before (50 - 25)
    assert a["mean_days_between_orders"] == 76.0  # gaps of 60 and 92 days
    assert a["std_days_between_orders"] == pytest.approx(22.627417, rel=1e-6)
    assert a["overdue_ratio"] == pytest.approx(30 / 76)
    assert a["distinct_categories"] == 2
    assert a["refund_share"] == pytest.approx(25 / 180)
    assert (a["segment"], a["loyalty_points"], a["marketing_opt_in"]) == ("vip", 120.0, True)  # newest file wins
    assert (a["sessions_30d"], a["days_since_last_session"]) == (2, 2)  # the session at S is not seen
    b = f.loc["B"]
    assert (b["frequency"], b["monetary"], b["recency_days"]) == (1, 10.0, 42.0)
    assert pd.isna(b["mean_days_between_orders"]) and pd.isna(b["overdue_ratio"])
    assert pd.isna(b["loyalty_points"]) and pd.isna(b["marketing_opt_in"])  # unparseable stays unknown
    assert b["sessions_30d"] == 0 and pd.isna(b["days_since_last_session"])
    assert f.loc["D", "recency_days"] == pytest.approx(1 / 86400)


def test_a_customer_row_holds_from_its_signup_until_a_newer_row_does(connection):
    # A newer file states A again with a signup after S: at S the older row still holds.
    connection.execute(
        "insert into customers values ('A', '2024-08-15 00:00:00', 'gold', '7', 'false', 'c2.csv', 1, timestamp '2024-02-01')"
    )
    assert _features(connection, customers="customers").loc["A", "segment"] == "vip"
    later = connection.execute(customer_features_sql(date(2024, 9, 1), "tx", customers="customers")).df()
    a = customer_features_schema().validate(later).set_index("customer_id").loc["A"]
    assert (a["segment"], a["loyalty_points"], a["marketing_opt_in"]) == ("gold", 7.0, False)


def test_money_is_summed_in_exact_cents(connection):
    connection.execute(
        "insert into tx values ('O9', 'F', timestamp '2024-06-01', 0.1, 'home', false), "
        "('O10', 'F', timestamp '2024-06-02', 0.2, 'home', false), ('R3', 'F', timestamp '2024-06-03', -0.3, 'home', true)"
    )
    f = _features(connection).loc["F"]
    # as doubles 0.1 + 0.2 - 0.3 is 5.55e-17, and 0.1 + 0.2 is 0.30000000000000004
    assert (f["monetary"], f["spend_30d"], f["spend_trend"]) == (0.0, 0.0, 0.0)
    assert f["refund_share"] == 1.0
    assert f["avg_order_value"] == 0.15


def test_only_customers_with_an_order_before_the_snapshot(connection):
    f = _features(connection)
    # C's first order is after S, B's order exactly at S is not seen, E only has a refund.
    assert sorted(f.index) == ["A", "B", "D"]
    assert (f["last_order_ts"] < datetime(2024, 7, 1)).all()
    assert (f["snapshot_date"] == datetime(2024, 7, 1)).all()


def test_an_order_of_amount_zero_is_a_purchase_without_revenue(connection):
    connection.execute(
        "insert into tx values ('O11', 'G', timestamp '2024-05-05', 0.0, 'home', false), "
        "('O12', 'D', timestamp '2024-07-10', 0.0, 'beauty', false)"
    )
    g = _features(connection).loc["G"]
    assert (g["frequency"], g["monetary"], g["avg_order_value"]) == (1, 0.0, 0.0)
    assert g["recency_days"] == (datetime(2024, 7, 1) - datetime(2024, 5, 5)).days
    labels = connection.execute(churn_labels_sql(S, 90, "tx")).df().set_index("customer_id")
    assert labels.loc["G", "churned"] == 1  # active before S, nothing in the horizon
    assert labels.loc["D", "orders_in_horizon"] == 2  # a free order in the horizon is activity


def test_customers_with_a_purchase_and_with_only_refunds_are_counted_per_snapshot(connection):
    counts = connection.execute(customers_per_snapshot_sql([date(2024, 6, 1), S], "tx")).df()
    # E's only row (2024-06-10) is a refund: left out at 2024-07-01, not yet seen at 2024-06-01
    assert counts["refund_only_customers"].tolist() == [0, 1]
    assert counts["customers"].tolist() == [2, 3]  # A, B before June; A, B, D before July


def test_missing_optional_sources_give_empty_columns(connection):
    f = _features(connection)
    assert f["segment"].isna().all() and f["loyalty_points"].isna().all()
    assert (f["sessions_30d"] == 0).all() and f["days_since_last_session"].isna().all()


def test_labels_look_only_forward(connection):
    labels = churn_labels_schema().validate(connection.execute(churn_labels_sql(S, 90, "tx")).df())
    by_customer = labels.set_index("customer_id")
    # A: nothing in [S, S+90). B: the order exactly at S counts for the label. D: 2024-09-28 is
    # inside the horizon (it ends 2024-09-29). C was not active before S; E never ordered.
    assert by_customer["churned"].to_dict() == {"A": 1, "B": 0, "D": 0}
    assert by_customer.loc["B", "orders_in_horizon"] == 1
    assert (labels["horizon_end"] == datetime(2024, 9, 29)).all()


def test_horizon_must_be_observed_before_labels_exist():
    assert horizon_observed(S, 90, datetime(2024, 9, 28, 12))  # the horizon's last day is in the data
    assert not horizon_observed(S, 90, datetime(2024, 9, 27, 23))
    assert not horizon_observed(S, 90, None)


def test_a_snapshot_before_any_data_has_no_rows(connection):
    assert connection.execute(customer_features_sql(date(2023, 1, 1), "tx")).df().empty
    assert connection.execute(churn_labels_sql(date(2023, 1, 1), 90, "tx")).df().empty


def test_all_snapshots_are_written_inside_the_warehouse_and_checked_there(connection):
    connection.execute("create schema silver")
    connection.execute("create table silver.transactions as select * from tx")
    snapshots = [date(2024, 6, 1), S, date(2024, 8, 1)]
    query, counts = features_query(connection, snapshots)
    written = write_table_query(connection, "silver.customer_features", query)
    one_by_one = pd.concat(
        [connection.execute(customer_features_sql(s, "silver.transactions")).df() for s in snapshots],
        ignore_index=True,
    )
    assert written.rows_per_select == tuple(one_by_one.groupby("snapshot_date").size()) == tuple(counts["customers"])
    stored = connection.execute("select * from silver.customer_features order by snapshot_date, customer_id").df()
    assert list(stored.columns) == list(customer_features_schema().columns)
    pd.testing.assert_frame_equal(stored, one_by_one, check_dtype=False)
    # 11 columns not null, recency > 0, six counts >= 0 and one key: all pass
    assert len(written.checks) == 19 and not any(written.checks.values())
    # the typed inputs were temporary: nothing of them is left on the connection
    assert not connection.execute("select * from duckdb_tables() where table_name like 'feature_%'").fetchall()
    labels, unobserved, _ = labels_query(connection, snapshots, 90)
    assert unobserved == [date(2024, 8, 1)]  # the data runs through 2024-09-28
    written = write_table_query(connection, "silver.churn_labels", labels)
    assert not connection.execute("select * from duckdb_tables() where table_name like 'label_%'").fetchall()
    by_snapshot = written.summaries["churn_rate_per_snapshot"]
    assert by_snapshot["rows"].tolist() == [2, 3]  # A, B before June; A, B, D before July
    assert by_snapshot["churn_rate"].round(3).tolist() == [0.0, 0.333]


def test_a_snapshot_that_breaks_the_schema_fails_the_write(connection):
    good = customer_features_sql(S, "tx")
    bad = TableQuery(customer_features_schema(), selects=(good, f"select * replace (-1.0 as recency_days) from ({good})"))
    with pytest.raises(SchemaViolation, match=r"row\(s\) break recency_days: greater_than; .* break unique"):
        write_table_query(connection, "features", bad)
    extra = TableQuery(customer_features_schema(), selects=(f"select *, 1 as surprise from ({good})",))
    with pytest.raises(SchemaViolation, match="does not have: \\['surprise'\\]"):
        write_table_query(connection, "features_extra", extra)


def test_timestamps_must_arrive_typed_while_other_columns_are_coerced(connection):
    schema = churn_labels_schema()
    labels = connection.execute(churn_labels_sql(S, 90, "tx")).df()
    narrowed = labels.astype({"orders_in_horizon": "int32"})
    assert schema.validate(narrowed)["orders_in_horizon"].dtype == "int64"
    with pytest.raises(pandera.errors.SchemaError, match="horizon_end"):
        schema.validate(labels.astype({"horizon_end": str}))
