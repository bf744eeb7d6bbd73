"""Scoring retention plans against the generator's latent truth, beside an oracle plan.

Only for generated data: the truth says who really drops out within the churn horizon, what
each customer would really spend over the value horizon if retained, and how each customer
really responds to each action. A plan is judged by what its actions would realise under that
truth; the oracle plan is solved on the truth itself, with the same actions, costs, eligibility,
control group and spend.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from churn_assets.core.sample.campaign_history import ACTIONS
from churn_assets.core.gold.retention import plan_with_baselines
from churn_assets.core.gold.plan import Options, action_options, solve_plan, totals, within_spend

ORACLE = "oracle (knows the truth)"


def truth_at_snapshot(truth: pd.DataFrame, snapshot: date, horizon_days: int, value_days: int) -> pd.DataFrame:
    """customer_id (text), drops (1 when the latent dropout falls before S + horizon), true_value
    (latent purchase rate x mean order value over the value horizon) and, when the truth has them,
    each action's true effect (``effect_<action>``)."""
    end = pd.Timestamp(snapshot + timedelta(days=horizon_days))
    return pd.DataFrame({
        "customer_id": truth["customer_id"].astype(str),
        # the dropout as it came to be, past campaigns' responses included: the world a plan at S acts in
        "drops": (truth["dropout_ts"] < end).astype(float),
        "true_value": truth["purchase_rate_per_year"] * value_days / 365.0 * truth["mean_order_value"],
        **{f"effect_{a}": truth[f"effect_{a}"] for a in ACTIONS if f"effect_{a}" in truth},
    })


def true_options(known: pd.DataFrame, catalogue) -> tuple[Options, bool]:
    """Every customer's options valued under the truth, and whether the true effects were known.

    With true effects, an action saves a would-be churner with probability equal to a positive
    effect and drives a stayer away with probability equal to a negative one, as the generator's
    customers respond; without them (a truth generated before campaigns), the catalogue's."""
    truthful = known.assign(churn_probability=known["drops"], expected_value=known["true_value"])
    options = action_options(truthful, catalogue)
    columns = [f"effect_{a.name}" for a in catalogue]
    if not all(c in known for c in columns):
        return options, False
    effect = known[columns].to_numpy(float)
    drops, value = known[["drops"]].to_numpy(float), known[["true_value"]].to_numpy(float)
    saved = value * (drops * np.clip(effect, 0, None) - (1 - drops) * np.clip(-effect, 0, None))
    net = np.where(np.isfinite(options.net), saved - options.cost, -np.inf)
    return Options(options.actions, options.cost, saved, net), True


def compare_with_oracle(
    customers: pd.DataFrame, truth: pd.DataFrame, settings, catalogues: dict[str, tuple], excluded: np.ndarray | None = None,
    uplifts: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Per policy at the same treated spend: customers, spend, the net value it expects and the
    net value realised under the truth; plus the oracle plan. ``catalogues`` names the effects
    each optimised plan is solved with, the plan as built first; the baselines are those of the
    first; ``uplifts`` the uplift model's churn prevented for those that use it. ``customers`` and
    ``excluded`` as for ``plan_with_baselines`` (the oracle may not act on the excluded either)."""
    excluded = np.zeros(len(customers), dtype=bool) if excluded is None else excluded
    outcomes = {
        name: plan_with_baselines(customers, settings, plot=False, catalogue=c, excluded=excluded, uplift=(uplifts or {}).get(name))
        for name, c in catalogues.items()
    }
    known = customers.merge(truth, on="customer_id", how="left", validate="one_to_one")
    if known["drops"].isna().any():
        raise ValueError(f"{int(known['drops'].isna().sum())} customers are missing from the truth file")
    real, _ = true_options(known, settings.action_catalogue)
    # every policy spends what the cheapest optimised plan spends on its treated customers
    spend = min(totals(o.choices["optimised plan"], o.options)["spend"] for o in outcomes.values())
    first = next(iter(outcomes.values()))
    policies = {}
    for name, outcome in outcomes.items():
        choice = outcome.choices["optimised plan"]
        by_value = np.argsort(-np.where(choice >= 0, outcome.options.net[np.arange(len(choice)), choice], -np.inf), kind="stable")
        policies[f"optimised plan ({name})"] = (within_spend(choice, by_value, outcome.options, spend), outcome.options)
    by_risk = np.argsort(-customers["churn_probability"].to_numpy(), kind="stable")
    for name in ("rules (seed)", "highest risk first"):
        policies[name] = (within_spend(first.choices[name], by_risk, first.options, spend), first.options)
    rows = {}
    for name, (choice, options) in policies.items():
        expected, realised = totals(choice, options), totals(choice, real)
        rows[name] = {
            "customers": expected["customers"], "spend": expected["spend"],
            "expected_net_value": expected["expected_net_value"], "realised_net_value": realised["expected_net_value"],
        }
    oracle = solve_plan(real, spend, excluded=first.control | excluded).choice
    realised = totals(oracle, real)
    rows[ORACLE] = {"customers": realised["customers"], "spend": realised["spend"], "expected_net_value": np.nan,
                    "realised_net_value": realised["expected_net_value"]}
    table = pd.DataFrame(rows).T
    table["share_of_oracle"] = table["realised_net_value"] / table.loc[ORACLE, "realised_net_value"]
    return table
