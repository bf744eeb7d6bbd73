"""How big the control group must be: the power of the treated-against-control churn comparison
per risk segment, what the planned holdout can detect and the expected value it forgoes.

The comparison is a two-sided two-proportion z-test with unpooled variances (the normal
approximation a read-out of churn rates uses); scipy gives the normal quantiles and the roots.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import norm

from churn_assets.core.gold.plan import Options

POWER = 0.8
ALPHA = 0.05


def comparison_power(p_control: float, p_treated: float, n_control: float, n_treated: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided test at level ``alpha`` to tell churn rates ``p_control`` and ``p_treated`` apart."""
    if n_control <= 0 or n_treated <= 0:
        return 0.0
    se = math.sqrt(p_control * (1 - p_control) / n_control + p_treated * (1 - p_treated) / n_treated)
    if se == 0:
        return 1.0 if p_control != p_treated else 0.0
    z, critical = abs(p_control - p_treated) / se, norm.ppf(1 - alpha / 2)
    return float(norm.cdf(z - critical) + norm.cdf(-z - critical))


def share_for_power(p_control: float, effect: float, customers: int, power: float = POWER, alpha: float = ALPHA) -> float | None:
    """Smallest control share of ``customers`` that detects a relative churn reduction ``effect``
    with ``power``; None when no split of them can."""
    if customers < 2 or effect <= 0 or not 0 < p_control < 1:
        return None
    p_treated = p_control * (1 - effect)
    v_control, v_treated = p_control * (1 - p_control), p_treated * (1 - p_treated)
    # the share of least variance; power falls on either side of it
    best = min(0.5, math.sqrt(v_control) / (math.sqrt(v_control) + math.sqrt(v_treated)))

    def gap(share: float) -> float:
        return comparison_power(p_control, p_treated, share * customers, (1 - share) * customers, alpha) - power

    smallest = 1 / customers
    if gap(best) < 0:
        return None
    return smallest if gap(smallest) >= 0 else float(brentq(gap, smallest, best))


def detectable_effect(p_control: float, n_control: int, n_treated: int, power: float = POWER, alpha: float = ALPHA) -> float | None:
    """Smallest relative churn reduction the comparison detects with ``power``; None when even a
    reduction to zero churn is out of reach."""
    if n_control < 1 or n_treated < 1 or not 0 < p_control < 1:
        return None

    def gap(effect: float) -> float:
        return comparison_power(p_control, p_control * (1 - effect), n_control, n_treated, alpha) - power

    return None if gap(1.0) < 0 else float(brentq(gap, 1e-9, 1.0))


def holdout_power(
    customers: pd.DataFrame, options: Options, choice: np.ndarray, control: np.ndarray, planned_share: float
) -> pd.DataFrame:
    """Per risk segment of the customers ``choice`` selects: churn without action, the assumed
    relative effect of their actions, the control share 80% power needs, the power and the
    smallest effect the planned holdout gives, and the expected net value the controls forgo."""
    selected = np.flatnonzero(choice >= 0)
    p = customers["churn_probability"].to_numpy(float)[selected]
    value = customers["expected_value"].to_numpy(float)[selected]
    saved = options.saved[selected, choice[selected]]
    net = options.net[selected, choice[selected]]
    held = control[selected]
    segments = customers["risk_segment"].to_numpy()[selected].astype(str)
    rows = {}
    for segment in pd.unique(segments):
        mine = segments == segment
        p_control = float(p[mine].mean())
        # expected churn if all were treated: p - churn prevented (saved / value); an uplift model's
        # estimate of the churn prevented may exceed the churn model's p, hence the clip
        prevented = np.divide(saved[mine], value[mine], out=np.zeros(mine.sum()), where=value[mine] > 0)
        treated_churn = float(np.clip(p[mine] - prevented, 0.0, 1.0).mean())
        effect = 1 - treated_churn / p_control if p_control > 0 else 0.0
        n, n_control = int(mine.sum()), int(held[mine].sum())
        needed = share_for_power(p_control, effect, n)
        detectable = detectable_effect(p_control, n_control, n - n_control)
        rows[segment] = {
            "selected": n,
            "controls": n_control,
            "churn_without_action": round(p_control, 4),
            "assumed_effect": round(effect, 4),
            "share_for_80pct_power": None if needed is None else round(needed, 4),
            "power_at_planned_share": round(comparison_power(
                p_control, p_control * (1 - effect), round(planned_share * n), n - round(planned_share * n)), 4),
            "detectable_effect": None if detectable is None else round(detectable, 4),
            "net_value_forgone": round(float(net[mine & held].sum()), 2),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("risk_segment")
