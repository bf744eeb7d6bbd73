"""Learned action effects and plans valued under true effects, on hand-built numbers."""

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from churn_assets.core.gold.action_effects import learned_catalogue, learned_effects, measured_effect, plan_catalogue
from churn_assets.core.gold.oracle import true_options
from churn_assets.core.gold.plan import DEFAULT_ACTIONS, Action

S = date(2025, 6, 1)


def test_measured_effect_is_one_minus_the_relative_risk_with_the_delta_method_variance():
    # treated 20 of 100 churn, controls 40 of 100: RR 0.5; var(log RR) = 1/20 - 1/100 + 1/40 - 1/100
    effect, variance = measured_effect(100, 20, 100, 40)
    assert effect == pytest.approx(0.5)
    assert variance == pytest.approx(0.25 * (1 / 20 - 1 / 100 + 1 / 40 - 1 / 100))
    assert math.isnan(measured_effect(100, 0, 100, 40)[0])  # no churner among the treated: not measurable


def _cells(*rows: dict) -> pd.DataFrame:
    """Cells of the voucher, vip unless a row says otherwise."""
    return pd.DataFrame([{"action": "discount_voucher", "segment": "vip", "campaigns": 3, **row} for row in rows])


def test_a_lone_cell_is_shrunk_toward_the_catalogue_by_precision():
    cells = _cells(dict(treated=100, controls=100, treated_churned=20, controls_churned=40))
    effects = learned_effects(cells, DEFAULT_ACTIONS, S, prior_sd=0.1, segment_sd=0.05).set_index(["action", "segment"])
    voucher = effects.loc[("discount_voucher", "vip")]
    variance = 0.25 * (1 / 20 - 1 / 100 + 1 / 40 - 1 / 100)
    # no other segment: the prior is the catalogue's 0.30, with the action's and the segment's variance
    precision = 1 / (0.1**2 + 0.05**2) + 1 / variance
    assert voucher["prior_effect"] == 0.30
    assert voucher["effect"] == pytest.approx((0.30 / 0.0125 + 0.5 / variance) / precision)
    assert voucher["effect_high"] - voucher["effect"] == pytest.approx(1.959964 * math.sqrt(1 / precision), abs=1e-6)
    assert voucher["measured_low"] == pytest.approx(0.5 - 1.959964 * math.sqrt(variance), abs=1e-6)
    pooled_precision = 1 / 0.01 + 1 / (0.0025 + variance)
    assert voucher["pooled_effect"] == pytest.approx((0.30 / 0.01 + 0.5 / (0.0025 + variance)) / pooled_precision)
    # an action never tried in the segment keeps its prior, vip's own where the catalogue has one
    loyalty = effects.loc[("loyalty_reward", "vip")]
    assert (loyalty["controls"], loyalty["effect"]) == (0, 0.25) and math.isnan(loyalty["measured_effect"])
    # a looser prior lets the measurement pull further
    looser = learned_effects(cells, DEFAULT_ACTIONS, S, prior_sd=1.0, segment_sd=0.05).set_index(["action", "segment"])
    assert 0.30 < voucher["effect"] < looser.loc[("discount_voucher", "vip"), "effect"] < 0.5


def test_a_segment_with_few_controls_borrows_from_its_action_s_other_segments_never_from_itself():
    many = dict(segment="consumer", treated=4000, controls=4000, treated_churned=900, controls_churned=1000)  # 0.10
    few = dict(treated=40, controls=40, treated_churned=4, controls_churned=16)  # 0.75, a wide interval
    effects = learned_effects(_cells(many, few), DEFAULT_ACTIONS, S, prior_sd=0.15, segment_sd=0.05)
    voucher = effects[effects["action"] == "discount_voucher"].set_index("segment")
    consumer_variance = 0.81 * (1 / 900 - 1 / 4000 + 1 / 1000 - 1 / 4000)
    # vip's prior: the action's effect from the catalogue and the consumers alone, plus the segment's spread
    precision = 1 / 0.15**2 + 1 / (0.05**2 + consumer_variance)
    action = (0.30 / 0.15**2 + 0.10 / (0.05**2 + consumer_variance)) / precision
    vip_variance = 0.0625 * (1 / 4 - 1 / 40 + 1 / 16 - 1 / 40)
    prior_variance = 1 / precision + 0.05**2
    expected = (action / prior_variance + 0.75 / vip_variance) / (1 / prior_variance + 1 / vip_variance)
    assert voucher.loc["vip", "effect"] == pytest.approx(expected)
    vip = voucher.loc["vip"]
    assert vip["effect"] - action < vip["measured_effect"] - vip["effect"]  # most of the way to the action's effect
    assert abs(voucher.loc["consumer", "effect"] - 0.10) < 0.05  # enough controls to stay near its measurement
    # a segment no campaign reached takes the action's pooled effect in a learned catalogue
    catalogue = learned_catalogue(DEFAULT_ACTIONS, effects)
    assert catalogue[0].effect == pytest.approx(voucher["pooled_effect"].iloc[0])
    assert catalogue[0].effects(np.array(["small_business"]))[0] == pytest.approx(voucher["pooled_effect"].iloc[0])


def test_the_plan_uses_measured_effects_only_where_a_campaign_matured():
    measured = learned_effects(_cells(dict(treated=100, controls=100, treated_churned=50, controls_churned=40)), DEFAULT_ACTIONS, S, 0.1, 0.05)
    catalogue, words = plan_catalogue(DEFAULT_ACTIONS, measured, "measured")
    voucher, email = {a.name: a for a in catalogue}["discount_voucher"], {a.name: a for a in catalogue}["win_back_email"]
    assert voucher.effect_by_segment["vip"] < voucher.effect < 0.30  # other segments take the action's pooled effect
    assert email.effects(np.array(["vip", "consumer"])) == pytest.approx([0.08, 0.08])  # nothing measured: the catalogue's
    assert words.startswith("measured: 200 contacts of 3 matured campaign(s)")
    assert plan_catalogue(DEFAULT_ACTIONS, measured, "assumed") == (DEFAULT_ACTIONS, "assumed: CHURN_EFFECT_SOURCE is 'assumed', so the catalogue's effects")
    none = learned_effects(pd.DataFrame(columns=["action", "segment"]), DEFAULT_ACTIONS, S, 0.1, 0.05)
    assert plan_catalogue(DEFAULT_ACTIONS, none, "measured")[0] is DEFAULT_ACTIONS
    assert learned_catalogue(DEFAULT_ACTIONS, none) == DEFAULT_ACTIONS


def test_true_options_save_would_be_churners_and_lose_sleeping_dogs():
    known = pd.DataFrame({
        "customer_id": ["a", "b", "c"], "drops": [1.0, 0.0, 1.0], "true_value": [100.0, 200.0, 50.0],
        "segment": ["vip", "vip", "consumer"], "marketing_opt_in": [True, True, False], "avg_order_value": [20.0, 20.0, 10.0],
        "effect_discount_voucher": [0.4, -0.1, 0.2], "effect_win_back_email": [0.0, 0.3, 0.0], "effect_loyalty_reward": [0.6, 0.0, 0.1],
    })
    options, known_effects = true_options(known, DEFAULT_ACTIONS)
    assert known_effects
    # a drops: a voucher saves 0.4 x 100 at 1 + 0.15 x 20; b stays: a voucher drives 0.1 of 200 away
    assert options.saved[0, 0] == pytest.approx(40.0) and options.net[0, 0] == pytest.approx(36.0)
    assert options.saved[1, 0] == pytest.approx(-20.0)
    assert options.saved[1, 1] == pytest.approx(0.0)  # an email to a stayer: nothing to save
    assert options.net[2, 1] == -np.inf  # no email without opt-in, whatever the truth
    without, known_effects = true_options(known.drop(columns=["effect_discount_voucher"]), DEFAULT_ACTIONS)
    assert not known_effects and without.saved[0, 0] == pytest.approx(1.0 * 0.30 * 100)  # the catalogue's, as before


def test_a_learned_catalogue_may_hold_a_harmful_effect():
    harmful = learned_catalogue(
        (Action("call", fixed_cost=1.0, effect=0.2),),
        pd.DataFrame({"action": ["call"], "segment": ["vip"], "effect": [-0.1], "pooled_effect": [0.2]}),
    )
    assert harmful[0].effects(np.array(["vip", "consumer"])).tolist() == [-0.1, 0.2]
