"""Raw history handed in by a caller: features by the warehouse's SQL, and errors that name the field."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from churn_assets.core.ml.champion import best_actions
from churn_assets.core.gold.plan import DEFAULT_ACTIONS, NO_ACTION
from churn_assets.core.silver.raw_history import ScoringError, history_features, parse_as_of

AS_OF = date(2025, 3, 1)


def _orders(customer="C1", amounts=(40.0, 60.0, -10.0), days=("2025-01-05", "2025-02-01", "2025-02-10")) -> pd.DataFrame:
    return pd.DataFrame({
        "order_id": [f"{customer}-{i}" for i in range(len(amounts))],
        "customer_id": customer,
        "order_ts": [f"{d} 10:00:00" for d in days],
        "amount": list(amounts),
    })


def _features(history: pd.DataFrame, as_of: date = AS_OF) -> pd.DataFrame:
    return history_features(history, as_of, max_abs_amount=1e6)


def test_features_count_only_rows_before_as_of_and_refunds_lower_net_spend():
    later = pd.concat([_orders(), _orders(amounts=(500.0,), days=("2025-03-01",)).assign(order_id="late")])
    (row,) = _features(later).to_dict("records")
    assert row["customer_id"] == "C1" and row["frequency"] == 2 and row["monetary"] == 90.0
    assert row["recency_days"] == pytest.approx(28 - 10 / 24)  # 2025-02-01 10:00 to 2025-03-01
    assert row["refund_share"] == pytest.approx(10 / 100)


def test_text_as_exported_and_typed_json_values_give_the_same_features():
    typed = pd.concat([_orders("1001"), _orders("1002", amounts=(25.5,), days=("2025-02-20",))], ignore_index=True)
    as_text = typed.astype(str)
    as_json = typed.assign(customer_id=typed["customer_id"].astype(float))  # an id sent as 1001.0
    expected = _features(as_text)
    pd.testing.assert_frame_equal(_features(typed), expected)
    pd.testing.assert_frame_equal(_features(as_json), expected)
    assert expected["customer_id"].tolist() == ["1001", "1002"]


def test_order_lines_with_quantity_and_unit_price_are_summed_into_orders():
    lines = pd.DataFrame({
        "order_id": ["536365", "536365", "C536366"], "customer_id": "17850",
        "order_ts": ["2025-01-10 08:26", "2025-01-10 08:26", "2025-01-12 09:00"],
        "quantity": ["6", "2", "1"], "unit_price": ["2.55", "3.39", "2.55"],
    })
    (row,) = _features(lines).to_dict("records")
    assert row["frequency"] == 1 and row["monetary"] == pytest.approx(6 * 2.55 + 2 * 3.39 - 2.55)


def test_customer_rows_and_sessions_join_by_source_and_a_later_customer_row_wins():
    history = pd.concat([
        _orders().assign(source="transactions"),
        pd.DataFrame({"source": "customers", "customer_id": "C1", "segment": ["regular", "vip"],
                      "marketing_opt_in": ["false", "true"], "loyalty_points": ["10", "250"]}),
        pd.DataFrame({"source": "web_sessions", "customer_id": "C1", "session_ts": ["2025-02-20 12:00", "2024-12-01 12:00"]}),
    ], ignore_index=True)
    (row,) = _features(history).to_dict("records")
    assert (row["segment"], row["marketing_opt_in"], row["loyalty_points"]) == ("vip", True, 250.0)
    assert row["sessions_30d"] == 1 and row["days_since_last_session"] == 9


def test_an_exact_repeat_is_dropped_as_the_warehouse_drops_it():
    orders = _orders()
    assert _features(pd.concat([orders, orders.head(1)])).equals(_features(orders))


@pytest.mark.parametrize(("history", "message"), [
    (_orders().drop(columns="order_ts"), "transactions rows: missing column order_ts; transactions rows need order_id"),
    (_orders().drop(columns="amount"), "transactions rows: missing column amount; "),
    (_orders().assign(colour="red"), "history: unknown columns ['colour']"),
    (_orders().assign(source="orders"), "source: unknown values ['orders']"),
    (pd.DataFrame({"source": ["customers"], "customer_id": ["C1"]}), "history: no transactions rows"),
    (_orders().head(0), "history: no rows"),
    (_orders().assign(amount=["12", "twelve", "3"]),
     "1 transactions row cannot be read: transactions row 2: unparseable_amount (order_id='C1-1', customer_id='C1', "
     "order_ts='2025-02-01 10:00:00', amount='twelve')"),
    (_orders().assign(order_ts=["2025-01-05", "yesterday", "2025-02-10"]), "transactions row 2: unparseable_order_ts"),
    (_orders().assign(customer_id=["C1", " ", "C1"]), "transactions row 2: missing_customer_id"),
    (_orders().assign(order_id="same"), "2 transactions rows cannot be read: transactions row 2: conflicting_duplicate"),
])
def test_history_that_cannot_be_scored_is_refused_naming_the_field(history, message):
    with pytest.raises(ScoringError, match=None) as refused:
        _features(history)
    assert message in str(refused.value)


def test_as_of_before_a_customers_first_order_is_refused_with_that_order():
    history = pd.concat([_orders("C1"), _orders("C2", amounts=(9.0,), days=("2025-04-02",))])
    with pytest.raises(ScoringError) as refused:
        _features(history)
    assert "as_of 2025-03-01: no order before it for 1 customer (first orders: 'C2' on 2025-04-02 10:00)" in str(refused.value)


def test_as_of_is_a_day():
    assert parse_as_of("2025-03-01") == parse_as_of("2025-03-01T00:00:00") == AS_OF
    assert parse_as_of(None) == parse_as_of("") == pd.Timestamp.now(tz="UTC").date()
    for bad, words in (("2025-03-01 12:30", "has a time of day"), ("soon", "is not a date")):
        with pytest.raises(ScoringError, match=words):
            parse_as_of(bad)


def test_best_action_is_the_most_net_value_the_customer_may_receive_or_none():
    features = pd.DataFrame({
        "avg_order_value": [50.0, 50.0, 50.0], "segment": ["vip", None, "regular"],
        "marketing_opt_in": pd.array([False, True, True], dtype="boolean"),
    })
    probability, value = np.array([0.8, 0.9, 0.005]), np.array([1000.0, 20.0, 1000.0])
    action, cost, net = best_actions(features, probability, value, DEFAULT_ACTIONS)
    # vip: voucher 0.8*0.3*1000 - 8.5 = 231.5 beats loyalty 0.8*0.25*1000 - 6 = 194; email needs opt-in
    assert action[0] == "discount_voucher" and cost[0] == pytest.approx(8.5) and net[0] == pytest.approx(231.5)
    assert action[1] == "win_back_email" and net[1] == pytest.approx(0.9 * 0.08 * 20 - 0.5)
    assert (action[2], cost[2], net[2]) == (NO_ACTION, 0.0, 0.0)
