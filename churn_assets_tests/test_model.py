"""The model's rules on hand-built inputs: training window, metrics, champion gate, drift, reasons."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from churn_assets.core.ml.drift import drift_report, psi, reference_profile
from churn_assets.core.ml.explain import describe, scores_and_contributions, top_reasons, typical_values
from churn_assets.core.ml.candidates import NUMERIC_FEATURES, candidate_models, model_inputs
from churn_assets.core.ml.champion_gate import champion_decision
from churn_assets.core.ml.importance import importance_by_feature
from churn_assets.core.ml.model import metrics_table, train_and_select
from churn_assets.core.ml.metrics import retention_profit, risk_segments, top_decile_lift
from churn_assets.core.ml.training_window import NotEnoughHistory, labelled_features_sql, training_window

MONTHLY = [date(2024, m, 1) for m in range(1, 13)]


def test_training_uses_only_snapshots_whose_horizon_ended_by_s():
    window = training_window(date(2024, 9, 1), MONTHLY, horizon_days=90, training_months=12)
    # 2024-06-01 + 90 days = 2024-08-30 <= 2024-09-01; 2024-07-01 + 90 days = 2024-09-29 is after S
    assert window.validation == date(2024, 6, 1)
    assert window.train == (date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1), date(2024, 5, 1))
    for snapshot in (*window.train, window.validation):
        assert snapshot + timedelta(days=90) <= window.model_snapshot


def test_training_window_is_limited_to_recent_months():
    window = training_window(date(2024, 12, 1), MONTHLY, horizon_days=30, training_months=3)
    assert window.train == (date(2024, 9, 1), date(2024, 10, 1))
    assert window.validation == date(2024, 11, 1)


def test_too_little_history_says_what_is_missing():
    with pytest.raises(NotEnoughHistory, match=r"found \['2024-01-01'\]"):
        training_window(date(2024, 4, 1), MONTHLY, horizon_days=90, training_months=12)


def test_labelled_features_sample_is_seeded_and_bounded():
    import duckdb

    connection = duckdb.connect()
    connection.execute("create schema silver")
    connection.execute(
        "create table silver.customer_features as select timestamp '2024-01-01' + to_months(m) as snapshot_date, "
        "cast(c as varchar) as customer_id, c * 1.0 as recency_days from range(3) t(m), range(300) u(c)"
    )
    connection.execute("create table silver.churn_labels as select snapshot_date, customer_id, 1 as churned from silver.customer_features")
    snapshots = (date(2024, 1, 1), date(2024, 2, 1))

    def drawn(seed: int) -> list:
        sql = labelled_features_sql(snapshots, max_rows=100, seed=seed)
        return connection.execute(f"select snapshot_date, customer_id from ({sql})").fetchall()

    assert len(drawn(7)) == 100 and drawn(7) == drawn(7)
    assert drawn(8) != drawn(7)
    assert {str(s)[:10] for s, _ in drawn(7)} <= {"2024-01-01", "2024-02-01"}  # never the third month


def test_top_decile_lift_and_risk_segments():
    churned = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0] * 2)
    score = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1] * 2)
    assert top_decile_lift(churned, score) == pytest.approx(1 / 0.2)
    assert risk_segments(np.array([0.1, 0.3, 0.59, 0.6, 0.99]), 0.3, 0.6).tolist() == [
        "Low", "Medium", "Medium", "High", "High"
    ]


def test_retention_profit_counts_only_contacts_worth_their_cost():
    churned = np.array([1, 0, 1])
    probability = np.array([0.8, 0.9, 0.1])
    value = np.array([100.0, 100.0, 100.0])
    profit = retention_profit(churned, probability, value, contact_cost=5.0, action_effect=0.2)
    # saving 20 each; contacted: 0.8*20=16>5 and 0.9*20=18>5; not 0.1*20=2
    assert profit == {
        "plan_customers": 2.0,
        "plan_expected_profit": pytest.approx((16 - 5) + (18 - 5)),
        "plan_realised_profit": pytest.approx((20 - 5) + (0 - 5)),
    }


@pytest.mark.parametrize(
    ("champion_snapshot", "champion_auc", "auc", "promote", "passed", "words"),
    [
        (None, None, 0.8, True, True, "first champion"),
        (date(2024, 5, 1), 0.80, 0.85, True, True, "against the champion's 0.8000"),
        (date(2024, 5, 1), 0.80, 0.798, True, True, "tolerance 0.005"),
        (date(2024, 5, 1), 0.80, 0.70, False, False, "worse than the champion's 0.8000"),
        (date(2024, 9, 1), 0.99, 0.70, False, True, "trained for the later snapshot 2024-09-01"),
    ],
)
def test_champion_gate(champion_snapshot, champion_auc, auc, promote, passed, words):
    decision = champion_decision(date(2024, 6, 1), auc, champion_snapshot, champion_auc, tolerance=0.005)
    assert (decision.promote, decision.passed) == (promote, passed)
    assert words in decision.reason


def _inputs(rows: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.gamma(2.0, 10.0, rows) + shift for c in NUMERIC_FEATURES})
    frame["segment"] = rng.choice(["gold", "silver"], rows)
    return frame


def test_population_stability_is_near_zero_for_the_same_population_and_large_for_a_shift():
    reference = _inputs(5000)
    profile = reference_profile(reference, reference["recency_days"].to_numpy() / 100)
    same = drift_report(profile, _inputs(5000, seed=1), _inputs(5000, seed=1)["recency_days"].to_numpy() / 100)
    assert same.max() < 0.05
    moved = drift_report(profile, _inputs(5000, shift=15.0, seed=1), np.full(5000, 0.99))
    assert moved["recency_days"] > 0.2 and moved["churn_probability"] > 1.0
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_reasons_name_the_features_that_move_the_score_in_words():
    inputs = model_inputs(pd.DataFrame({
        **{c: [np.nan, np.nan] for c in NUMERIC_FEATURES},
        "recency_days": [200.0, 10.0],
        "orders_90d": [0.0, 4.0],
        "segment": [None, "gold"],
    }))
    typical = {**{c: None for c in NUMERIC_FEATURES}, "recency_days": 50.0, "orders_90d": 1.0, "segment": "gold"}

    def predict(x):  # a transparent score: old last orders raise risk, recent orders lower it
        return np.clip(0.3 + x["recency_days"].to_numpy() / 1000 - 0.05 * x["orders_90d"].to_numpy(), 0, 1)

    _, effects = scores_and_contributions(predict, inputs, typical)
    assert effects.loc[0, "recency_days"] == pytest.approx(0.15)
    assert effects.loc[1, "orders_90d"] == pytest.approx(-0.15)
    reasons = top_reasons(inputs, effects)
    assert reasons.loc[0, "reason_1"] == "last order 200 days ago (raises risk 15 pts)"
    assert reasons.loc[0, "reason_2"] == "0 orders in the last 90 days (raises risk 5 pts)"
    assert reasons.loc[1, "reason_1"] == "4 orders in the last 90 days (lowers risk 15 pts)"
    assert reasons.loc[1, "reason_2"] == "last order 10 days ago (lowers risk 4 pts)"
    assert reasons.loc[0, "reason_3"] is None  # segment does not move this score
    assert describe("days_since_last_session", np.nan) == "no web sessions"
    assert typical_values(inputs)["segment"] in {"gold", "unknown"}


def test_reasons_predict_only_rows_away_from_the_typical_value_and_only_for_the_named_features():
    inputs = model_inputs(pd.DataFrame({
        **{c: [np.nan] * 3 for c in NUMERIC_FEATURES},
        "recency_days": [50.0, 50.0, 90.0],
        "orders_90d": [1.0, 3.0, 1.0],
        "segment": ["gold"] * 3,
    }))
    typical = typical_values(inputs, ["recency_days", "orders_90d"])
    assert typical == {"recency_days": 50.0, "orders_90d": 1.0}
    predicted_rows = []

    def predict(x):
        predicted_rows.append(len(x))
        return 0.3 + x["recency_days"].to_numpy() / 1000 - 0.05 * x["orders_90d"].to_numpy()

    _, effects = scores_and_contributions(predict, inputs, typical)
    assert list(effects.columns) == ["recency_days", "orders_90d"]
    assert predicted_rows == [5]  # one call: every row, then only the row that differs per feature
    assert effects["recency_days"].tolist() == pytest.approx([0.0, 0.0, 0.04])
    assert effects["orders_90d"].tolist() == pytest.approx([0.0, -0.1, 0.0])


def test_a_logistic_models_coefficients_map_back_to_the_features_reasons_can_name():
    rng = np.random.default_rng(0)
    inputs = model_inputs(pd.DataFrame({
        **{c: rng.normal(size=200) for c in NUMERIC_FEATURES},
        "days_since_last_session": np.where(rng.random(200) < 0.3, np.nan, rng.normal(size=200)),
        "segment": rng.choice(["gold", "silver", "bronze"], size=200),
    }))
    churned = (inputs["recency_days"] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    pipeline = candidate_models(seed=0)["logistic_regression"].fit(inputs, churned)
    names = pipeline.named_steps["prepare"].get_feature_names_out()
    coefficients = pd.Series(pipeline.named_steps["model"].coef_[0], index=names)
    assert not set(coefficients.index) & set(inputs.columns)  # the pipeline renames every column
    by_feature = importance_by_feature(coefficients)
    assert by_feature.index[0] == "recency_days"
    assert set(by_feature.index) == set(inputs.columns)  # one-hot and missing-indicator columns fold back
    assert typical_values(inputs, list(by_feature.index[:8]))  # what the reasons of such a model use


def test_reasons_are_empty_rather_than_failing_when_fewer_features_than_reasons_can_be_named():
    inputs = model_inputs(pd.DataFrame({**{c: [1.0, 2.0] for c in NUMERIC_FEATURES}, "segment": ["gold", "gold"]}))
    _, effects = scores_and_contributions(lambda x: x["recency_days"].to_numpy() / 10, inputs, {"recency_days": 1.0})
    reasons = top_reasons(inputs, effects)
    assert reasons["reason_1"].tolist() == [None, "last order 2 days ago (raises risk 10 pts)"]
    assert reasons["reason_2"].tolist() == reasons["reason_3"].tolist() == [None, None]


def _labelled(rows: int, seed: int) -> pd.DataFrame:
    """Feature rows with a learnable label; loyalty points null everywhere, sessions constant."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.gamma(2.0, 10.0, rows) for c in NUMERIC_FEATURES})
    frame["frequency"] = 1 + rng.poisson(3, rows)
    frame["tenure_days"] = frame["recency_days"] + rng.gamma(2.0, 100.0, rows)
    frame["segment"] = rng.choice(["consumer", "vip"], rows)
    frame["loyalty_points"] = np.nan
    frame["sessions_30d"] = 0.0
    frame["churned"] = (frame["recency_days"] + rng.normal(0, 8, rows) > 20).astype(int)
    return frame


def test_every_model_drops_a_feature_that_is_null_or_constant_in_its_training_rows():
    window = training_window(date(2024, 9, 1), MONTHLY, 90, 12)
    result = train_and_select(
        _labelled(3000, 1), _labelled(1500, 2), window, seed=0, threshold=0.5, contact_cost=5.0,
        action_effect=0.2, horizon_days=90, btyd_features=True,
    )
    assert set(result.candidates) == {
        "logistic_regression", "gradient_boosting", "logistic_regression_with_btyd", "gradient_boosting_with_btyd"
    }
    assert result.dropped_features == {
        "loyalty_points": "null in every training row", "sessions_30d": "the same value (0.0) in every training row"
    }
    assert "loyalty_points" not in result.features and "recency_days" in result.features
    for candidate in result.candidates.values():
        assert np.isfinite(candidate.validation_probability).all()
        assert candidate.metrics["roc_auc"] > 0.8
    assert set(result.references) == {"recency_only", "btyd_bgnbd", "rfm_logistic"}
    assert "brier" in result.references["btyd_bgnbd"] and "brier" not in result.references["recency_only"]
    table = metrics_table(result)
    assert {"rfm_logistic", "btyd_bgnbd", "recency_only"} <= set(table.columns)


def test_the_value_regression_drops_them_too():
    from churn_assets.core.gold.value import fit_value_model

    train, validation = _labelled(2000, 3), _labelled(800, 4)
    for frame in (train, validation):
        frame["retained"] = True
        frame["realised_value"] = frame["spend_180d"] * 1.1
    model = fit_value_model(train, validation, 180, seed=0)
    assert model.dropped_features["loyalty_points"] == "null in every training row"
    assert "loyalty_points" not in model.features
    assert np.isfinite(model.predict(validation) if model.method == "regression" else [0.0]).all()


@pytest.mark.parametrize(("churned", "words"), [
    (0, "single class"),
    ("few", "a model needs at least 10 of each"),
])
def test_data_a_model_cannot_learn_from_says_why(churned, words):
    train = _labelled(400, 5)
    train["churned"] = 0 if churned == 0 else (np.arange(len(train)) < 4).astype(int)
    with pytest.raises(NotEnoughHistory, match=words):
        train_and_select(train, _labelled(200, 6), training_window(date(2024, 9, 1), MONTHLY, 90, 12),
                         seed=0, threshold=0.5, contact_cost=5.0, action_effect=0.2)


def test_a_few_hundred_customers_still_train():
    result = train_and_select(
        _labelled(300, 7), _labelled(150, 8), training_window(date(2024, 9, 1), MONTHLY, 90, 12),
        seed=0, threshold=0.5, contact_cost=5.0, action_effect=0.2,
    )
    assert result.best.metrics["roc_auc"] > 0.7


def test_the_root_cause_of_a_joblib_worker_error_is_the_workers_own_error():
    from joblib import Parallel, delayed

    from churn_assets.core.errors import root_cause

    def fails(_):
        raise ValueError("window shape cannot be larger than input array shape")

    with pytest.raises(ValueError) as caught:
        Parallel(n_jobs=2, backend="loky")(delayed(fails)(i) for i in range(2))
    assert type(caught.value.__cause__).__name__ == "_RemoteTraceback"
    assert root_cause(caught.value) == "ValueError: window shape cannot be larger than input array shape"
    try:
        try:
            raise OSError("No space left on device")
        except OSError as inner:
            raise RuntimeError("Current transaction is aborted") from inner
    except RuntimeError as outer:
        assert root_cause(outer) == "OSError: No space left on device"
