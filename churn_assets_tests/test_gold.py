"""Gold on hand-built tables: value evaluation, the plan's rows, the views and the summary."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from churn_assets.core.gold.retention import plan_with_baselines, retention_actions_frame, retention_actions_schema
from churn_assets.core.gold.plan import DEFAULT_ACTIONS, action_options, solve_plan
from churn_assets.core.gold.summary import VIEWS, create_views_sql, retention_summary_sql
from churn_assets.core.gold.value import evaluate_value, run_rate_value
from churn_assets.settings import Settings

S = pd.Timestamp("2025-03-01")
CUSTOMERS = pd.DataFrame({
    "snapshot_date": [S] * 4,
    "customer_id": ["a", "b", "c", "d"],
    "churn_probability": [0.9, 0.5, 0.1, 0.7],
    "risk_segment": ["High", "Medium", "Low", "High"],
    "expected_value": [200.0, 100.0, 300.0, 10.0],
    "segment": ["vip", "new", "vip", "new"],
    "marketing_opt_in": [True, True, False, True],
    "avg_order_value": [40.0, 20.0, 60.0, 10.0],
})


def test_value_error_and_rank_correlation():
    realised = np.array([100.0, 0.0, 50.0, 10.0])
    assert evaluate_value(realised, realised) == {"total_error_pct": 0.0, "mae": 0.0, "spearman": 1.0, "customers": 4.0}
    worse = evaluate_value(realised, np.array([80.0, 20.0, 60.0, 0.0]))
    assert worse["total_error_pct"] == pytest.approx(0.0) and worse["mae"] == pytest.approx(15.0)
    features = pd.DataFrame({"spend_180d": [90.0, -5.0]})
    assert run_rate_value(features, 360).tolist() == [180.0, 0.0]  # scaled, never negative


def test_plan_rows_carry_priority_control_and_reason():
    options = action_options(CUSTOMERS, DEFAULT_ACTIONS)
    solution = solve_plan(options, budget=100.0)
    control = (solution.choice >= 0) & (CUSTOMERS["customer_id"] == "d").to_numpy()  # d held out of the plan
    assert control.any()
    frame = retention_actions_schema().validate(retention_actions_frame(CUSTOMERS, options, solution.choice, control))
    assert len(frame) == int((solution.choice >= 0).sum())  # every selected customer, treated or held out
    acted = frame[~frame["is_control"]]
    assert acted["priority"].tolist() == list(range(1, len(acted) + 1))
    assert acted["expected_net_value"].is_monotonic_decreasing and (acted["expected_net_value"] > 0).all()
    # a: discount voucher saves 0.9 x 0.30 x 200 = 54 for 1 + 0.15 x 40 = 7
    first = acted.iloc[0]
    assert (first["customer_id"], first["action"], first["cost"], first["expected_saved_revenue"]) == ("a", "discount_voucher", 7.0, 54.0)
    assert first["reason"] == "90% churn risk x 30% effect x 200 value - 7.00 cost"
    (held,) = frame[frame["is_control"]].itertuples()
    would = DEFAULT_ACTIONS[solution.choice[3]].name
    assert (held.customer_id, held.action, held.cost, held.expected_net_value, pd.isna(held.priority)) == ("d", would, 0.0, 0.0, True)
    assert held.reason.startswith("control group, held out at random; would get: 70% churn risk")


def test_the_control_group_comes_from_the_customers_the_plan_selected():
    many = pd.concat(
        [CUSTOMERS.assign(customer_id=CUSTOMERS["customer_id"] + str(k)) for k in range(25)], ignore_index=True
    )
    outcome = plan_with_baselines(many, Settings(budget=1000.0, control_share=0.2, seed=1))
    selected = outcome.solution.choice >= 0
    assert outcome.control.any() and not (outcome.control & ~selected).any()
    treated = outcome.choices["optimised plan"]
    assert ((treated >= 0) == (selected & ~outcome.control)).all()
    assert outcome.comparison.loc["optimised plan", "spend"] < outcome.solution.spend  # controls cost nothing
    assert set(outcome.power.columns) >= {"selected", "controls", "share_for_80pct_power", "detectable_effect", "net_value_forgone"}
    assert outcome.power["controls"].sum() == outcome.control.sum()


def test_baselines_are_compared_at_the_plans_spend():
    outcome = plan_with_baselines(CUSTOMERS, Settings(budget=10.0, control_share=0.0))
    table = outcome.comparison
    assert table.loc["optimised plan", "spend"] <= 10.0
    for baseline in ("rules (seed)", "highest risk first"):
        assert table.loc[baseline, "spend"] <= table.loc["optimised plan", "spend"] + 1e-9
        assert table.loc[baseline, "expected_net_value"] <= table.loc["optimised plan", "expected_net_value"] + 1e-9
    assert outcome.curve_png.startswith(b"\x89PNG")


def test_views_and_summary_return_the_expected_numbers():
    with duckdb.connect() as connection:
        connection.execute("create schema gold")
        value = CUSTOMERS[["snapshot_date", "customer_id", "churn_probability", "risk_segment", "expected_value"]].copy()
        value["revenue_at_risk"] = value["churn_probability"] * value["expected_value"]
        value["value_method"] = "run_rate"
        connection.execute("create table gold.customer_value as select * from value")
        plan = pd.DataFrame({
            "snapshot_date": [S] * 3, "customer_id": ["a", "b", "d"],
            "action": ["discount_voucher", "win_back_email", "no_action"], "cost": [7.0, 0.5, 0.0],
            "expected_saved_revenue": [54.0, 4.0, 0.0], "expected_net_value": [47.0, 3.5, 0.0],
            "priority": [1, 2, None], "is_control": [False, False, True], "risk_segment": ["High", "Medium", "High"],
            "reason": ["r1", "r2", "control"],
        })
        connection.execute("create table gold.retention_actions as select * from plan")
        for statement in create_views_sql():
            connection.execute(statement)
        high = connection.execute("select customers, revenue_at_risk from gold.high_risk_customers").fetchall()
        assert high == [(2, pytest.approx(0.9 * 200 + 0.7 * 10))]
        by_segment = connection.execute(
            "select risk_segment, customers, revenue_at_risk from gold.revenue_at_risk_by_segment"
        ).fetchall()
        assert by_segment == [("High", 2, 187.0), ("Low", 1, 30.0), ("Medium", 1, 50.0), ("Total", 4, 267.0)]
        ranked = connection.execute("select priority, customer_id from gold.retention_priorities").fetchall()
        assert ranked == [(1, "a"), (2, "b")]  # the control customer is not in the ranked plan
        summary = connection.execute(retention_summary_sql("2025-03-01")).df()
    assert summary["risk_segment"].tolist() == ["High", "Medium", "Low", "Total"]
    total = summary.iloc[-1]
    assert (total["customers"], total["customers_acted_on"], total["control_customers"]) == (4, 2, 1)
    assert (total["spend"], total["expected_net_value"], total["revenue_at_risk"]) == (7.5, 50.5, 267.0)
    assert set(VIEWS) == {"high_risk_customers", "revenue_at_risk_by_segment", "retention_priorities"}


def test_customers_a_running_campaign_measures_are_left_out_of_every_policy():
    many = pd.concat(
        [CUSTOMERS.assign(customer_id=CUSTOMERS["customer_id"] + str(k)) for k in range(25)], ignore_index=True
    )
    excluded = many["customer_id"].str.startswith("a").to_numpy()  # a is the best customer to act on
    outcome = plan_with_baselines(many, Settings(budget=1000.0, control_share=0.2, seed=1), plot=False, excluded=excluded)
    assert not (outcome.solution.choice[excluded] >= 0).any() and not outcome.control[excluded].any()
    for choice in outcome.choices.values():
        assert not (choice[excluded] >= 0).any()
    free = plan_with_baselines(many, Settings(budget=1000.0, control_share=0.2, seed=1), plot=False)
    assert (free.solution.choice[excluded] >= 0).any()  # without the exclusion they would be chosen
