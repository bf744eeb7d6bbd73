"""BG/NBD: the fit recovers the parameters of data simulated from the process itself, and its
predictions are calibrated on that data."""

import numpy as np
import pytest

from churn_assets.core.ml.btyd import BGNBD, BTYDFeatures, BTYDUnavailable, fit_bgnbd, log_likelihood, simulate_bgnbd


@pytest.mark.parametrize("truth", [BGNBD(r=0.6, alpha=40.0, a=0.8, b=3.0), BGNBD(r=1.5, alpha=90.0, a=2.2, b=6.0)])
def test_fit_recovers_known_parameters(truth):
    ages = np.random.default_rng(1).uniform(60, 540, 30_000)
    x, t_x, _ = simulate_bgnbd(truth, ages, seed=2)
    fitted = fit_bgnbd(x, t_x, ages)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=0.15), name


def test_probability_of_no_purchase_and_expected_purchases_match_the_simulation():
    truth = BGNBD(r=0.6, alpha=40.0, a=1.8, b=3.0)
    ages = np.random.default_rng(3).uniform(60, 540, 30_000)
    x, t_x, bought = simulate_bgnbd(truth, ages, seed=4, horizon_days=90)
    fitted = fit_bgnbd(x, t_x, ages)
    assert fitted.p_no_purchase(x, t_x, ages, 90).mean() == pytest.approx(1 - bought.mean(), abs=0.01)
    alive = fitted.p_alive(x, t_x, ages)
    assert ((alive > 0) & (alive <= 1)).all() and (alive[x == 0] == 1).all()
    # the quadrature agrees with the closed form (FHL eq. 10) wherever that is defined (a > 1)
    from scipy.special import hyp2f1

    ratio = (fitted.alpha + ages) / (fitted.alpha + ages + 90)
    closed = ((fitted.a + fitted.b + x - 1) / (fitted.a - 1)) * (
        1 - ratio ** (fitted.r + x) * hyp2f1(fitted.r + x, fitted.b + x, fitted.a + fitted.b + x - 1, 90 / (fitted.alpha + ages + 90))
    ) * alive
    assert np.allclose(fitted.expected_purchases(x, t_x, ages, 90), closed, rtol=1e-9)


def test_expected_purchases_stay_finite_below_a_equal_one():
    model = BGNBD(r=0.6, alpha=40.0, a=0.7, b=3.0)
    expected = model.expected_purchases(np.array([0.0, 1, 5]), np.array([0.0, 30, 200]), np.array([100.0, 100, 300]), 90)
    assert np.isfinite(expected).all() and (expected > 0).all()


def test_log_likelihood_matches_the_two_term_form():
    r, alpha, a, b = 0.7, 30.0, 1.2, 2.5
    from scipy.special import beta, gamma

    x, t_x, T = 3.0, 80.0, 200.0
    direct = beta(a, b + x) / beta(a, b) * gamma(r + x) * alpha**r / (gamma(r) * (alpha + T) ** (r + x)) + beta(
        a + 1, b + x - 1
    ) / beta(a, b) * gamma(r + x) * alpha**r / (gamma(r) * (alpha + t_x) ** (r + x))
    assert log_likelihood(np.array([r, alpha, a, b]), np.array([x]), np.array([t_x]), np.array([T]))[0] == pytest.approx(np.log(direct))


def test_too_few_repeat_buyers_say_why():
    with pytest.raises(BTYDUnavailable, match="5 of them with repeat purchases"):
        fit_bgnbd(np.zeros(100), np.zeros(100), np.full(100, 50.0))
    with pytest.raises(BTYDUnavailable):
        BTYDFeatures(90).fit(__import__("pandas").DataFrame({"frequency": [1.0] * 50, "tenure_days": 40.0, "recency_days": 40.0}))
