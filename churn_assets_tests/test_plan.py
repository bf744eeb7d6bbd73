"""The retention plan optimiser against brute force, and the rules around it."""

import itertools

import numpy as np
import pandas as pd
import pytest

from churn_assets.core.gold.plan import (
    DEFAULT_ACTIONS,
    Action,
    Options,
    action_options,
    actions_json,
    control_group,
    hold_out,
    highest_risk_first,
    parse_actions,
    rule_policy,
    solve_exact,
    solve_plan,
    totals,
    within_spend,
)


def _brute_force(options: Options, budget: float) -> float:
    n, k = options.net.shape
    best = 0.0
    for choice in itertools.product(range(-1, k), repeat=n):
        rows = [(i, j) for i, j in enumerate(choice) if j >= 0]
        if any(not np.isfinite(options.net[i, j]) for i, j in rows):
            continue
        if sum(options.cost[i, j] for i, j in rows) <= budget + 1e-9:
            best = max(best, sum(options.net[i, j] for i, j in rows))
    return best


def _random_options(rng, n=6, k=3) -> Options:
    cost = rng.uniform(1, 10, (n, k)).round(1)
    saved = rng.uniform(0, 15, (n, k)).round(1)
    net = saved - cost
    net[rng.random((n, k)) < 0.15] = -np.inf  # some customers are not eligible for some actions
    return Options(DEFAULT_ACTIONS, cost, saved, net)


@pytest.mark.parametrize("seed", range(25))
def test_optimiser_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    options = _random_options(rng)
    budget = float(rng.uniform(3, 30))
    optimum = _brute_force(options, budget)
    plan = solve_plan(options, budget)
    chosen = np.flatnonzero(plan.choice >= 0)
    assert plan.spend <= budget + 1e-9  # never over budget
    assert (options.net[chosen, plan.choice[chosen]] > 0).all()  # never a negative-value action
    assert plan.net_value <= optimum + 1e-9 <= plan.lp_bound + 1e-6  # the bound really bounds
    assert optimum - plan.net_value <= plan.gap + 1e-9  # the reported gap covers the shortfall
    exact_choice, exact_value = solve_exact(options, budget)
    assert exact_value == pytest.approx(optimum)
    assert totals(exact_choice, options)["spend"] <= budget + 1e-9


def test_unconstrained_budget_takes_every_best_positive_action():
    options = _random_options(np.random.default_rng(1), n=30)
    plan = solve_plan(options, budget=1e9)
    acted = plan.choice >= 0
    assert (acted == (options.net.max(axis=1) > 0)).all() and plan.gap == 0
    rows = np.flatnonzero(acted)
    assert (options.net[rows, plan.choice[rows]] == options.net[rows].max(axis=1)).all()  # ties: the cheaper
    assert plan.curve["expected_net_value"].iloc[-1] == pytest.approx(plan.net_value)


def test_ties_are_broken_deterministically():
    options = Options(DEFAULT_ACTIONS[:1], np.full((4, 1), 5.0), np.full((4, 1), 9.0), np.full((4, 1), 4.0))
    assert solve_plan(options, budget=10).choice.tolist() == [0, 0, -1, -1]


CUSTOMERS = pd.DataFrame({
    "customer_id": ["a", "b", "c", "d"],
    "churn_probability": [0.9, 0.5, 0.1, 0.8],
    "expected_value": [200.0, 100.0, 300.0, 50.0],
    "avg_order_value": [40.0, 20.0, 60.0, 10.0],
    "segment": ["vip", None, "vip", "new"],
    "marketing_opt_in": [True, False, True, None],
    "risk_segment": ["High", "Medium", "Low", "High"],
})


def test_options_price_cost_effect_and_eligibility():
    options = action_options(CUSTOMERS, DEFAULT_ACTIONS)
    # discount: 1 + 15% of 40 = 7; saves 0.9 x 0.30 x 200 = 54
    assert options.cost[0, 0] == pytest.approx(7.0) and options.saved[0, 0] == pytest.approx(54.0)
    # loyalty reward works better on the vip segment: 0.9 x 0.25 x 200 = 45
    assert options.saved[0, 2] == pytest.approx(45.0)
    # email only to opted-in customers
    assert np.isinf(options.net[1, 1]) and np.isinf(options.net[3, 1]) and np.isfinite(options.net[0, 1])


def test_baselines_follow_their_rules_and_are_cut_to_the_same_spend():
    options = action_options(CUSTOMERS, DEFAULT_ACTIONS)
    rules = rule_policy(CUSTOMERS, options)
    # a: High and value >= median -> discount; b: Medium but not opted in -> nothing; c: Low -> loyalty;
    # d: High but low value -> nothing
    assert rules.tolist() == [0, -1, 2, -1]
    risk_order = np.argsort(-CUSTOMERS["churn_probability"].to_numpy(), kind="stable")
    everyone = highest_risk_first(CUSTOMERS, options)
    capped = within_spend(everyone, risk_order, options, spend=9.5)
    assert capped.tolist() == [0, -1, -1, 0]  # a (7.0), then d (2.5); b (4.0) no longer fits
    assert totals(capped, options)["spend"] == pytest.approx(9.5)
    assert within_spend(everyone, risk_order, options, spend=9.0).tolist() == [0, -1, -1, -1]


def test_control_group_is_seeded_and_stratified():
    ids = pd.Series([f"c{i}" for i in range(2000)])
    segments = pd.Series(["High"] * 1000 + ["Medium"] * 600 + ["Low"] * 400)
    control = control_group(ids, segments, share=0.1, seed=7)
    assert control[:1000].sum() == 100 and control[1000:1600].sum() == 60 and control[1600:].sum() == 40
    assert (control == control_group(ids, segments, share=0.1, seed=7)).all()
    assert (control != control_group(ids, segments, share=0.1, seed=8)).any()


def test_hold_out_draws_within_each_risk_segment_and_action_of_the_selected_customers_only():
    n = 1200
    customers = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "risk_segment": ["High"] * 600 + ["Medium"] * 600,
    })
    options = action_options(pd.DataFrame({
        "churn_probability": 0.5, "expected_value": 100.0, "avg_order_value": 20.0, "segment": "new",
        "marketing_opt_in": True,
    }, index=range(n)), DEFAULT_ACTIONS)
    choice = np.tile([0, 1, -1], n // 3)  # voucher, email, nobody
    control = hold_out(choice, customers, options, share=0.1, seed=3)
    assert not control[choice < 0].any()
    for segment in ("High", "Medium"):
        mine = (customers["risk_segment"] == segment).to_numpy()
        for action in (0, 1):
            assert control[mine & (choice == action)].sum() == 20  # 10% of 200 in every stratum
    assert (control == hold_out(choice, customers, options, share=0.1, seed=3)).all()


def test_action_catalogue_round_trips_and_rejects_nonsense():
    assert parse_actions(actions_json(DEFAULT_ACTIONS)) == DEFAULT_ACTIONS
    with pytest.raises(ValueError, match="fields"):
        parse_actions('[{"name": "x", "price": 3}]')
    with pytest.raises(ValueError, match="unique"):
        parse_actions('[{"name": "x", "fixed_cost": 1}, {"name": "x", "fixed_cost": 2}]')
    with pytest.raises(ValueError, match="effects in"):
        parse_actions('[{"name": "x", "fixed_cost": 1, "effect": 2}]')
    with pytest.raises(ValueError, match="effect_by_segment must map"):
        parse_actions('[{"name": "x", "fixed_cost": 1, "effect_by_segment": ["vip", 0.3]}]')
    assert Action("x", 1.0).cost(np.array([np.nan]))[0] == 1.0
