"""Out-of-time metrics of churn scores: ranking, calibration, lift and the profit of acting on them."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)


def evaluate(
    churned: np.ndarray, probability: np.ndarray, threshold: float, value: np.ndarray | None = None,
    contact_cost: float = 0.0, action_effect: float = 0.0,
) -> dict[str, float]:
    """Out-of-sample metrics of churn probabilities against realised labels."""
    predicted = probability >= threshold
    metrics = {
        "roc_auc": roc_auc_score(churned, probability),
        "pr_auc": average_precision_score(churned, probability),
        "brier": brier_score_loss(churned, probability),
        "log_loss": log_loss(churned, np.clip(probability, 1e-6, 1 - 1e-6), labels=[0, 1]),
        "accuracy": accuracy_score(churned, predicted),
        "precision": precision_score(churned, predicted, zero_division=0),
        "recall": recall_score(churned, predicted, zero_division=0),
        "f1": f1_score(churned, predicted, zero_division=0),
        "top_decile_lift": top_decile_lift(churned, probability),
        "base_rate": float(np.mean(churned)),
    }
    if value is not None:
        metrics.update(retention_profit(churned, probability, value, contact_cost, action_effect))
    return {k: float(v) for k, v in metrics.items()}

def ranking_metrics(churned: np.ndarray, score: np.ndarray, probability: bool = True) -> dict[str, float]:
    """ROC-AUC, PR-AUC and top-decile lift of a score; Brier too when it is a probability."""
    metrics = {
        "roc_auc": float(roc_auc_score(churned, score)),
        "pr_auc": float(average_precision_score(churned, score)),
        "top_decile_lift": top_decile_lift(churned, score),
    }
    if probability:
        metrics["brier"] = float(brier_score_loss(churned, score))
    return metrics

def top_decile_lift(churned: np.ndarray, score: np.ndarray) -> float:
    """Churn rate among the 10% highest scores divided by the overall churn rate."""
    churned = np.asarray(churned)
    top = np.argsort(-np.asarray(score), kind="stable")[: max(1, len(churned) // 10)]
    base = churned.mean()
    return float(churned[top].mean() / base) if base > 0 else float("nan")

def retention_profit(
    churned: np.ndarray, probability: np.ndarray, value: np.ndarray, contact_cost: float, action_effect: float
) -> dict[str, float]:
    """Profit of contacting every customer whose expected saving exceeds the contact cost.

    Expected: what the model believes (probability x effect x value - cost); realised: the same
    with the true label in place of the probability, so a miscalibrated model is caught.
    """
    saving = action_effect * np.asarray(value, dtype=float)
    target = np.asarray(probability) * saving > contact_cost
    return {
        "plan_customers": float(target.sum()),
        "plan_expected_profit": float((probability * saving - contact_cost)[target].sum()),
        "plan_realised_profit": float((np.asarray(churned) * saving - contact_cost)[target].sum()),
    }

def risk_segments(probability: np.ndarray, medium_from: float, high_from: float) -> np.ndarray:
    """Low / Medium / High by calibrated probability cut-offs."""
    return np.select(
        [probability >= high_from, probability >= medium_from], ["High", "Medium"], default="Low"
    ).astype(object)
