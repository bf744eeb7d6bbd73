"""Drift between the data a model was trained on and the data it scores: population stability index."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_assets.core.ml.candidates import CATEGORICAL_FEATURES, NUMERIC_FEATURES

_FLOOR = 1e-4  # keeps the log finite for empty bins, the usual PSI convention


def reference_profile(inputs: pd.DataFrame, scores: np.ndarray, bins: int = 10) -> dict:
    """JSON-ready bin edges and shares of every feature and of the score in the training data."""
    profile = {name: _numeric_bins(inputs[name].to_numpy(dtype=float), bins) for name in NUMERIC_FEATURES}
    for name in CATEGORICAL_FEATURES:
        shares = inputs[name].astype(str).value_counts(normalize=True)
        profile[name] = {"categories": shares.index.tolist(), "shares": shares.tolist()}
    profile["churn_probability"] = _numeric_bins(np.asarray(scores, dtype=float), bins)
    return profile


def _numeric_bins(values: np.ndarray, bins: int) -> dict:
    present = values[~np.isnan(values)]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])) if len(present) else np.array([])
    return {"edges": edges.tolist(), "shares": _numeric_shares(values, edges).tolist()}


def _numeric_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares per bin (right-closed bins on the edges), plus a last bin for missing values."""
    missing = np.isnan(values)
    counts = np.bincount(np.searchsorted(edges, values[~missing], side="left"), minlength=len(edges) + 1)
    counts = np.append(counts, missing.sum())
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=float), _FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_report(profile: dict, inputs: pd.DataFrame, scores: np.ndarray) -> pd.Series:
    """PSI of each feature and of the score against ``profile``, largest first."""
    result = {}
    for name, reference in profile.items():
        if "categories" in reference:
            shares = inputs[name].astype(str).value_counts(normalize=True)
            categories = sorted(set(reference["categories"]) | set(shares.index))
            expected = [dict(zip(reference["categories"], reference["shares"])).get(c, 0.0) for c in categories]
            result[name] = psi(expected, [shares.get(c, 0.0) for c in categories])
            continue
        values = np.asarray(scores if name == "churn_probability" else inputs[name], dtype=float)
        result[name] = psi(reference["shares"], _numeric_shares(values, np.asarray(reference["edges"])))
    return pd.Series(result, name="psi").sort_values(ascending=False)
