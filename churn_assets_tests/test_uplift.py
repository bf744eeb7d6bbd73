"""The uplift model, its Qini curve and its out-of-time test, on hand-built and simulated contacts."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from churn_assets.core.silver.features import FEATURE_COLUMNS
from churn_assets.core.gold.plan import DEFAULT_ACTIONS, Action, action_options
from churn_assets.core.gold.plan_effects import scaled_to_segments
from churn_assets.core.gold.uplift import fit_uplift_model, uplift_matrix
from churn_assets.core.gold.uplift_validation import (
    MIN_TEST_CONTROLS,
    auuc,
    gain_interval,
    qini_curve,
    random_auuc,
    validate_out_of_time,
)

S = date(2025, 6, 1)
VOUCHER, EMAIL, REWARD = (a.name for a in DEFAULT_ACTIONS)


def test_qini_curve_and_auuc_match_a_hand_computed_example():
    # ranked: treated stayer, control churner, treated churner, control churner
    curve = qini_curve(np.array([4, 3, 2, 1]), np.array([1, 0, 1, 0], bool), np.array([0, 1, 1, 1]))
    # at each cut: control churners x treated / controls - treated churners
    assert curve["retained"].tolist() == [0, 0, 1, 1, 1]
    assert curve["share"].tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert auuc(curve, treated_count=2) == pytest.approx((0.125 + 0.25 + 0.25) / 2)
    assert random_auuc(curve, treated_count=2) == pytest.approx(0.25)


def test_a_perfect_ranking_has_a_larger_auuc_than_its_reverse():
    rng = np.random.default_rng(0)
    n = 4000
    responsive = rng.random(n) < 0.3
    treated = rng.random(n) < 0.5
    churned = (rng.random(n) < np.where(treated & responsive, 0.1, 0.5)).astype(int)
    good = auuc(qini_curve(responsive.astype(float), treated, churned), int(treated.sum()))
    bad = auuc(qini_curve(-responsive.astype(float), treated, churned), int(treated.sum()))
    assert good > random_auuc(qini_curve(responsive.astype(float), treated, churned), int(treated.sum())) > bad


def _contacts(rng, campaigns: int, per_campaign: int, control_share: float = 0.3) -> pd.DataFrame:
    """Randomised contacts in which the voucher works only for frequent buyers (within every
    segment), the email for no one and the reward only for vips."""
    n = campaigns * per_campaign
    frame = pd.DataFrame({c: rng.normal(size=n) for c in FEATURE_COLUMNS})
    frame["segment"] = rng.choice(["consumer", "vip"], n)
    frame["marketing_opt_in"] = True
    frame["frequency"] = rng.integers(1, 20, n).astype(float)
    frame["campaign"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.repeat(np.arange(campaigns) * 31, per_campaign), "D")
    frame["customer_id"] = [str(i) for i in range(n)]
    frame["action"] = rng.choice([VOUCHER, EMAIL, REWARD], n)
    frame["is_control"] = rng.random(n) < control_share
    base = 0.6 - 0.02 * frame["frequency"]
    effect = np.select(
        [frame["action"] == VOUCHER, frame["action"] == REWARD],
        [np.where(frame["frequency"] > 10, 0.8, 0.0), np.where(frame["segment"] == "vip", 0.5, 0.0)], 0.0,
    )
    p = np.where(frame["is_control"], base, base * (1 - effect))
    frame["churned"] = (rng.random(n) < p).astype(int)
    return frame


def test_the_uplift_model_finds_who_an_action_moves():
    contacts = _contacts(np.random.default_rng(1), campaigns=4, per_campaign=3000)
    learner = fit_uplift_model(contacts, DEFAULT_ACTIONS, seed=0)
    probe = contacts.head(400).copy()
    uplift = learner.uplift(probe, DEFAULT_ACTIONS)
    frequent = probe["frequency"].to_numpy() > 10
    # true: about 0.24 for the frequent buyers, none for the others; a logistic model smooths the step
    assert uplift[frequent, 0].mean() > uplift[~frequent, 0].mean() + 0.1
    assert abs(uplift[:, 1].mean()) < 0.08  # the email moves no one


def test_out_of_time_the_model_wins_where_effects_vary_inside_segments_and_the_plan_uses_it_only_there():
    contacts = _contacts(np.random.default_rng(2), campaigns=4, per_campaign=3000)
    validation = validate_out_of_time(contacts, DEFAULT_ACTIONS, S, prior_sd=0.15, segment_sd=0.1, seed=0).table.set_index("action")
    assert (validation["test_campaigns"] == 1).all() and (validation["test_controls"] >= MIN_TEST_CONTROLS).all()
    voucher = validation.loc[VOUCHER]
    assert voucher["uses_uplift"], voucher["reason"]
    assert voucher["auuc_uplift"] > voucher["auuc_segments"] and voucher["auuc_uplift"] > voucher["auuc_random"]
    # the reward's effect is the segment's: the segment estimates rank as well, so the model is not
    # needed; either way the table says why
    assert validation.loc[REWARD, "reason"].startswith("AUUC")

    customers = contacts.head(50).assign(churn_probability=0.5, expected_value=100.0, avg_order_value=20.0)
    uplift, words = uplift_matrix(contacts, customers, DEFAULT_ACTIONS, {VOUCHER}, seed=0)
    assert np.isfinite(uplift[:, 0]).all() and np.isnan(uplift[:, 1:]).all() and VOUCHER in words
    options = action_options(customers, DEFAULT_ACTIONS, uplift)
    assert options.saved[:, 0] == pytest.approx(uplift[:, 0] * 100.0)
    assert options.saved[:, 2] == pytest.approx(action_options(customers, DEFAULT_ACTIONS).saved[:, 2])


def test_without_a_campaign_to_test_on_no_action_uses_the_model_and_the_table_says_why():
    contacts = _contacts(np.random.default_rng(3), campaigns=1, per_campaign=2000)
    table = validate_out_of_time(contacts, DEFAULT_ACTIONS, S, prior_sd=0.15, segment_sd=0.1, seed=0).table
    assert not table["uses_uplift"].any()
    assert table["reason"].str.contains("1 matured campaign").all()
    empty = validate_out_of_time(contacts.head(0), DEFAULT_ACTIONS, S, prior_sd=0.15, segment_sd=0.1, seed=0).table
    assert len(empty) == len(DEFAULT_ACTIONS) and not empty["uses_uplift"].any()


def test_a_ranking_no_better_than_its_baseline_is_never_used():
    rng = np.random.default_rng(4)
    treated, churned = rng.random(500) < 0.8, (rng.random(500) < 0.4).astype(int)
    score = rng.random(500)
    assert gain_interval(score, score, treated, churned, seed=0) == (0.0, 0.0)
    low, high = gain_interval(score, rng.random(500), treated, churned, seed=0)
    assert low < 0 < high  # two random rankings: the interval straddles zero


def test_the_plan_takes_whom_from_the_model_and_how_much_from_the_measured_effects():
    customers = pd.DataFrame({
        "segment": ["vip", "vip", "consumer", "consumer", "consumer"], "churn_probability": [0.5, 0.5, 0.4, 0.4, 0.4],
    })
    voucher = Action("voucher", fixed_cost=1.0, effect=0.2, effect_by_segment={"consumer": -0.1})
    raw = np.array([[0.3], [0.1], [0.2], [0.1], [0.3]])
    scaled = scaled_to_segments(raw, customers, (voucher,))
    # vips: mean churn prevented 0.5 x 0.2 = 0.1, the model's order kept
    assert scaled[:2, 0] == pytest.approx([0.15, 0.05])
    # a segment the measured effect says it harms gets the measured estimate, whatever the model says
    assert scaled[2:, 0] == pytest.approx([-0.04, -0.04, -0.04])
