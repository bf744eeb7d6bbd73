"""Holdout size by power, against hand-computed two-proportion figures."""

import math

import numpy as np
import pandas as pd
import pytest

from churn_assets.core.gold.holdout import comparison_power, detectable_effect, holdout_power, share_for_power
from churn_assets.core.gold.plan import DEFAULT_ACTIONS, action_options

# Churn 50% against 40%, two-sided 5%, 80% power, unpooled: n per arm = (1.959964 + 0.841621)^2 x
# (0.25 + 0.24) / 0.1^2 = 384.59.
N_PER_ARM = (1.959964 + 0.841621) ** 2 * (0.5 * 0.5 + 0.4 * 0.6) / 0.1**2


def test_power_of_the_textbook_case_is_eighty_percent():
    assert N_PER_ARM == pytest.approx(384.59, abs=0.01)
    assert comparison_power(0.5, 0.4, N_PER_ARM, N_PER_ARM) == pytest.approx(0.80, abs=1e-4)
    # a quarter of that sample: z = 0.1 / sqrt(0.49 / 96.15) = 1.4008, power = Phi(1.4008 - 1.96) = 0.288
    assert comparison_power(0.5, 0.4, N_PER_ARM / 4, N_PER_ARM / 4) == pytest.approx(0.288, abs=1e-3)
    assert comparison_power(0.5, 0.5, 1000, 1000) == pytest.approx(0.05, abs=1e-9)  # no effect: the test's level
    assert comparison_power(0.5, 0.4, 0, 100) == 0.0


def test_share_for_power_solves_the_textbook_variance_equation():
    # the control arm needs n_c with 0.25 / n_c + 0.24 / (N - n_c) = 0.49 / 384.59: just under
    # half of the textbook sample (the treated arm varies less), 201 of ten times it (2.6%)
    for n, expected in ((math.ceil(2 * N_PER_ARM), 0.488), (10 * math.ceil(2 * N_PER_ARM), 0.0261)):
        share = share_for_power(0.5, 0.2, n)
        n_control = share * n
        assert 0.25 / n_control + 0.24 / (n - n_control) == pytest.approx(0.49 / N_PER_ARM, rel=1e-3)
        assert share == pytest.approx(expected, abs=0.001)
    assert share_for_power(0.1, 0.05, 100) is None  # no split of 100 customers sees a 5% change of 10%
    assert share_for_power(0.5, 0.0, 1000) is None


def test_detectable_effect_of_the_textbook_sample_is_twenty_percent():
    assert detectable_effect(0.5, round(N_PER_ARM), round(N_PER_ARM)) == pytest.approx(0.2, abs=0.002)
    assert detectable_effect(0.5, 2, 2) is None
    assert detectable_effect(0.5, 0, 100) is None


def test_holdout_power_per_risk_segment():
    n = 400
    customers = pd.DataFrame({
        "churn_probability": 0.5, "expected_value": 100.0, "avg_order_value": 20.0, "segment": "new",
        "marketing_opt_in": True, "risk_segment": ["High"] * n,
    })
    options = action_options(customers, DEFAULT_ACTIONS)
    choice = np.zeros(n, dtype=int)  # the voucher: effect 30%
    control = np.arange(n) < 40
    table = holdout_power(customers, options, choice, control, planned_share=0.1)
    row = table.loc["High"]
    assert (row["selected"], row["controls"]) == (400, 40)
    assert (row["churn_without_action"], row["assumed_effect"]) == (0.5, 0.3)
    expected = comparison_power(0.5, 0.35, 40, 360)
    assert row["power_at_planned_share"] == pytest.approx(expected, abs=1e-4)
    assert row["net_value_forgone"] == pytest.approx(40 * (0.5 * 0.3 * 100 - (1 + 0.15 * 20)))
    assert 0 < row["share_for_80pct_power"] < 0.5 and 0.3 < row["detectable_effect"] < 1
