"""Point-in-time features and forward-looking labels: exact values on a hand-built history."""

from datetime import date, datetime

import duckdb
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pytest

from churn_assets.core.features import (
    churn_labels_schema,
    churn_labels_sql,
    customer_features_schema,
    customer_features_sql,
    features_by_snapshot,
    horizon_observed,
    labels_by_snapshot,
    refund_only_customers_sql,
    rows_per_snapshot,
)
from churn_assets.core.warehouse import query_validated

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


def test_customers_with_only_refunds_before_the_snapshot_are_counted(connection):
    counts = connection.execute(refund_only_customers_sql([date(2024, 6, 1), S], "tx")).df()
    # E's only row (2024-06-10) is a refund: left out at 2024-07-01, not yet seen at 2024-06-01
    assert counts["refund_only_customers"].tolist() == [0, 1]


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


def test_all_snapshots_come_back_as_one_validated_arrow_table(connection):
    connection.execute("create schema silver")
    connection.execute("create table silver.transactions as select * from tx")
    snapshots = [date(2024, 6, 1), S, date(2024, 8, 1)]
    features = features_by_snapshot(connection, snapshots)
    assert isinstance(features, pa.Table)
    assert features.column_names == list(customer_features_schema().columns)
    one_by_one = pd.concat(
        [connection.execute(customer_features_sql(s, "silver.transactions")).df() for s in snapshots],
        ignore_index=True,
    )
    assert features.num_rows == len(one_by_one) > 0
    assert rows_per_snapshot(features)["rows"].tolist() == one_by_one.groupby("snapshot_date").size().tolist()
    # the typed inputs were temporary: nothing of them is left on the connection
    assert not connection.execute("select * from duckdb_tables() where table_name like 'feature_%'").fetchall()
    labels, unobserved, _ = labels_by_snapshot(connection, snapshots, 90)
    assert unobserved == [date(2024, 8, 1)]  # the data runs through 2024-09-28
    assert labels.column_names == list(churn_labels_schema().columns)
    assert not connection.execute("select * from duckdb_tables() where table_name like 'label_%'").fetchall()
    by_snapshot = rows_per_snapshot(labels, "churned")
    assert by_snapshot["rows"].tolist() == [2, 3]  # A, B before June; A, B, D before July
    assert by_snapshot["churned_mean"].round(3).tolist() == [0.0, 0.333]


def test_each_piece_is_validated_before_it_becomes_arrow(connection):
    schema = customer_features_schema()
    good = customer_features_sql(S, "tx")
    with pytest.raises(pandera.errors.SchemaError, match="recency_days"):
        # a second piece whose recency breaks the schema's check (> 0) fails the whole table
        query_validated(connection, [good, f"select * replace (-1.0 as recency_days) from ({good})"], schema)
    with pytest.raises(ValueError, match="at least one query"):
        query_validated(connection, [], schema)


def test_pieces_take_the_types_pandera_coerced_to_and_keep_their_values():
    schema = pandera.DataFrameSchema(
        {
            "id": pandera.Column(pd.StringDtype("pyarrow")),
            "amount": pandera.Column(float, coerce=True),  # DuckDB hands over integers
            "flag": pandera.Column("boolean", nullable=True, coerce=True),
            "share": pandera.Column(float, coerce=True),  # text that parses as numbers
            # text pandas parses but Arrow's cast refuses: that piece is converted from pandas
            "padded": pandera.Column(float, coerce=True),
        },
        strict=True,
    )
    with duckdb.connect() as connection:
        table = query_validated(
            connection,
            [
                "select 'a' as id, 3 as amount, true as flag, '0.25' as share, '1' as padded",
                "select 'b' as id, 4 as amount, null::boolean as flag, '1e-3' as share, ' 7 ' as padded",
            ],
            schema,
        )
    assert table.schema.field("amount").type == pa.float64()
    assert table.schema.field("flag").type == pa.bool_()
    assert table.schema.field("share").type == pa.float64()
    assert table.to_pydict() == {
        "id": ["a", "b"], "amount": [3.0, 4.0], "flag": [True, None], "share": [0.25, 0.001], "padded": [1.0, 7.0],
    }


def test_timestamps_must_arrive_typed_while_other_columns_are_coerced(connection):
    schema = churn_labels_schema()
    labels = connection.execute(churn_labels_sql(S, 90, "tx")).df()
    narrowed = labels.astype({"orders_in_horizon": "int32"})
    assert schema.validate(narrowed)["orders_in_horizon"].dtype == "int64"
    with pytest.raises(pandera.errors.SchemaError, match="horizon_end"):
        schema.validate(labels.astype({"horizon_end": str}))
