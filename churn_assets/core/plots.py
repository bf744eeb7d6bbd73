"""Evaluation plots of a training result, as matplotlib figures and PNG bytes.

matplotlib and the curve functions are imported when a figure is drawn, not when the module is:
every process that loads the definitions would otherwise pay about a second for them.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churn_assets.core.ml.model import TrainingResult

if TYPE_CHECKING:
    import matplotlib.pyplot as plt


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt

    return plt


def evaluation_figures(result: TrainingResult, recency_days: np.ndarray, importance: pd.Series) -> dict[str, plt.Figure]:
    """ROC, precision-recall, calibration, cumulative lift and feature importance figures."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    y = result.validation_churned
    scores = {name: c.validation_probability for name, c in result.candidates.items()}
    figures = {}

    fig, ax = _figure(f"ROC, out-of-time ({result.window.validation})")
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(*_thin(fpr, tpr), label=f"{name} ({result.candidates[name].metrics['roc_auc']:.3f})")
    fpr, tpr, _ = roc_curve(y, recency_days)
    ax.plot(*_thin(fpr, tpr), "--", label=f"recency only ({result.recency_only['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    figures["roc"] = _finish(fig, ax)

    fig, ax = _figure("Precision-recall, out-of-time")
    for name, p in scores.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(*_thin(recall, precision), label=name)
    ax.axhline(y.mean(), ls=":", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision")
    figures["precision_recall"] = _finish(fig, ax)

    fig, ax = _figure("Calibration, out-of-time")
    for name, p in scores.items():
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, "o-", label=name)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate")
    figures["calibration"] = _finish(fig, ax)

    fig, ax = _figure("Cumulative gains, out-of-time")
    share = np.arange(1, len(y) + 1) / len(y)
    for name, p in {**scores, "recency only": recency_days}.items():
        found = np.cumsum(y[np.argsort(-np.asarray(p), kind="stable")]) / max(y.sum(), 1)
        ax.plot(*_thin(share, found), "--" if name == "recency only" else "-", label=name)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="random")
    ax.set(xlabel="share of customers contacted (highest risk first)", ylabel="share of churners reached")
    figures["lift"] = _finish(fig, ax)

    top = importance.head(15)[::-1]
    fig, ax = _pyplot().subplots(figsize=(6, 4.5), dpi=80)
    ax.barh(top.index, top.to_numpy(), color=["tab:red" if v > 0 else "tab:blue" for v in top])
    ax.set_title(f"{result.chosen}: {top.name or 'importance'}")
    fig.tight_layout()
    figures["importance"] = fig
    return figures


def _thin(x: np.ndarray, y: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` evenly spaced points of a curve, first and last kept: a 400-pixel plot
    shows no more, and drawing every one of 800,000 customers' points took seconds."""
    if len(x) <= points:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
    return x[keep], y[keep]


def _figure(title: str):
    fig, ax = _pyplot().subplots(figsize=(5, 4), dpi=80)
    ax.set_title(title)
    return fig, ax


def _finish(fig, ax):
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def png_bytes(fig: plt.Figure) -> bytes:
    """The figure as PNG, then closed so long runs do not pile up figures."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    _pyplot().close(fig)
    return buffer.getvalue()


def spend_curve_figure(curve: pd.DataFrame, budget: float, spend: float, value: float) -> plt.Figure:
    """Expected net value against spend, from nothing to the unconstrained plan, with the budget."""
    fig, ax = _figure("Spend vs expected net value")
    ax.plot(*_thin(curve["spend"].to_numpy(), curve["expected_net_value"].to_numpy()), label="best plan at each spend")
    ax.axvline(budget, ls="--", color="grey", label=f"budget {budget:,.0f}")
    ax.plot([spend], [value], "o", color="tab:red", label=f"plan: {value:,.0f} for {spend:,.0f}")
    ax.set(xlabel="spend", ylabel="expected net value")
    return _finish(fig, ax)


def qini_figure(curves: dict[str, dict[str, pd.DataFrame]], note: str) -> plt.Figure:
    """Per action, the Qini curves of each targeting policy on the held-out campaigns, beside random."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 4), dpi=80, squeeze=False)
    for ax, (action, by_policy) in zip(axes[0], curves.items()):
        for policy, curve in by_policy.items():
            ax.plot(*_thin(curve["share"].to_numpy(), curve["retained"].to_numpy()), label=policy)
        end = next(iter(by_policy.values()))["retained"].iloc[-1]
        ax.plot([0, 1], [0, end], ":", color="grey", label="random")
        ax.set(title=action, xlabel="share targeted (best first)", ylabel="customers retained")
        ax.legend(loc="best", fontsize=7)
    fig.suptitle(f"Qini curves, out-of-time: {note}", fontsize=9)
    fig.tight_layout()
    return fig
