"""Top reasons for each customer's churn score, in plain words.

Model-agnostic: a feature's contribution is how much the score moves when that one feature is set
to its typical training value (median, or most common category). It needs only ``predict_proba``,
so it explains the logistic and the boosted model alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from churn_assets.core.ml.candidates import CATEGORICAL_FEATURES, NUMERIC_FEATURES

_PHRASES: dict[str, Callable[[object], str]] = {
    "recency_days": lambda v: f"last order {v:.0f} days ago",
    "frequency": lambda v: f"{v:.0f} orders in total",
    "monetary": lambda v: f"net spend {v:,.0f}",
    "avg_order_value": lambda v: f"average order {v:,.2f}",
    "tenure_days": lambda v: f"customer for {v:.0f} days",
    "orders_30d": lambda v: f"{v:.0f} orders in the last 30 days",
    "orders_90d": lambda v: f"{v:.0f} orders in the last 90 days",
    "orders_180d": lambda v: f"{v:.0f} orders in the last 180 days",
    "spend_30d": lambda v: f"spent {v:,.0f} in the last 30 days",
    "spend_90d": lambda v: f"spent {v:,.0f} in the last 90 days",
    "spend_180d": lambda v: f"spent {v:,.0f} in the last 180 days",
    "spend_trend": lambda v: f"spend {'down' if v < 0 else 'up'} {abs(v):,.0f} on the 90 days before",
    "mean_days_between_orders": lambda v: f"usually orders every {v:.0f} days",
    "std_days_between_orders": lambda v: f"days between orders vary by {v:.0f}",
    "overdue_ratio": lambda v: f"{v:.1f}x their usual gap since the last order",
    "distinct_categories": lambda v: f"buys in {v:.0f} categories",
    "refund_share": lambda v: f"{v:.0%} of spend refunded",
    "segment": lambda v: f"segment {v}",
    "loyalty_points": lambda v: f"{v:,.0f} loyalty points",
    "marketing_opt_in": lambda v: "opted in to marketing" if v >= 0.5 else "not opted in to marketing",
    "sessions_30d": lambda v: f"{v:.0f} web sessions in the last 30 days",
    "days_since_last_session": lambda v: f"last web session {v:.0f} days ago",
}
_MISSING = {
    "mean_days_between_orders": "only one order so far",
    "std_days_between_orders": "too few orders for a rhythm",
    "overdue_ratio": "only one order so far",
    "days_since_last_session": "no web sessions",
    "segment": "segment unknown",
}


# Features a reason may name: the model's most important ones. Each costs one prediction over
# the rows whose value is not already typical, and a top-three reason rarely comes from further down.
REASON_FEATURES = 8


def typical_values(inputs: pd.DataFrame, features: list[str] | None = None) -> dict[str, object]:
    """Median of each numeric feature and most common category, from the training inputs; only
    for ``features`` when given (the ones reasons may name)."""
    typical: dict[str, object] = {
        c: float(inputs[c].median()) if inputs[c].notna().any() else None for c in NUMERIC_FEATURES
    }
    for column in CATEGORICAL_FEATURES:
        typical[column] = str(inputs[column].mode().iloc[0])
    kept = typical if features is None else {k: v for k, v in typical.items() if k in features}
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in kept.items()}


def describe(feature: str, value: object) -> str:
    """One feature value in plain words."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "unknown":
        return _MISSING.get(feature, f"no {feature.replace('_', ' ')} data")
    return _PHRASES[feature](value)


def scores_and_contributions(
    predict: Callable[[pd.DataFrame], np.ndarray], inputs: pd.DataFrame, typical: dict[str, object]
) -> tuple[np.ndarray, pd.DataFrame]:
    """``predict(inputs)``, and per customer and feature in ``typical`` the score minus the score
    with that one feature set to its typical value (zero where the value already is the typical
    one, without predicting).

    The rows and every feature's changed rows are scored together, in batches of
    ``PREDICT_ROWS``: a predict call has a fixed cost (about 10 ms for the calibrated boosted
    model) that one customer would otherwise pay once per feature."""
    features = [f for f in (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES) if typical.get(f) is not None]
    changed, where = [inputs], []
    for feature in features:
        differs = (inputs[feature] != typical[feature]).to_numpy()  # a missing value differs too
        if differs.any():
            rows = inputs[differs].copy()
            rows[feature] = typical[feature]
            changed.append(rows)
            where.append((feature, differs))
    scores = _predict_in_batches(predict, changed)
    base = scores[: len(inputs)]
    effects = {feature: np.zeros(len(inputs)) for feature in features}
    start = len(inputs)
    for feature, differs in where:
        count = int(differs.sum())
        effects[feature][differs] = base[differs] - scores[start:start + count]
        start += count
    return base, pd.DataFrame(effects, index=inputs.index)


PREDICT_ROWS = 100_000


def _predict_in_batches(predict: Callable[[pd.DataFrame], np.ndarray], frames: list[pd.DataFrame]) -> np.ndarray:
    """``predict`` over the rows of ``frames`` in order, at most ``PREDICT_ROWS`` rows a call."""
    scores, batch, size = [], [], 0
    for frame in [*frames, None]:
        if frame is None or (batch and size + len(frame) > PREDICT_ROWS):
            if batch:
                scores.append(predict(pd.concat(batch, ignore_index=True)))
            batch, size = [], 0
        if frame is not None:
            batch.append(frame)
            size += len(frame)
    return np.concatenate(scores) if scores else np.array([])


def top_reasons(inputs: pd.DataFrame, effects: pd.DataFrame, count: int = 3) -> pd.DataFrame:
    """``count`` reason columns: the features that move each score most, worded with direction."""
    values = effects.to_numpy()
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :count]
    columns = {name: inputs[name].to_numpy(dtype=object) for name in effects.columns}
    names = effects.columns.to_numpy()
    rows = np.arange(len(values))
    reasons = {}
    for k in range(count):
        if k >= values.shape[1]:  # a model with fewer explainable features than reasons asked for
            reasons[f"reason_{k + 1}"] = [None] * len(values)
            continue
        picked = order[:, k]
        effect = values[rows, picked]
        reasons[f"reason_{k + 1}"] = [
            # under half a point: not a reason worth reading
            None if abs(e) < 0.005 else
            f"{describe(names[p], columns[names[p]][r])} ({'raises' if e > 0 else 'lowers'} risk {abs(e) * 100:.0f} pts)"
            for r, p, e in zip(rows, picked, effect)
        ]
    return pd.DataFrame(reasons, index=inputs.index)
