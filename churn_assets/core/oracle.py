"""Scoring a retention plan against the generator's latent truth, beside an oracle plan.

Only for generated data: the truth says who really drops out within the churn horizon and what
each customer would really spend over the value horizon if retained. The plan is judged by what
its actions would realise under that truth; the oracle plan is solved on the truth itself, with
the same actions, costs, eligibility, control group and budget.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from churn_assets.core.gold import plan_with_baselines
from churn_assets.core.plan import action_options, solve_plan, totals


def truth_at_snapshot(truth: pd.DataFrame, snapshot: date, horizon_days: int, value_days: int) -> pd.DataFrame:
    """customer_id (text), drops (1 when the latent dropout falls before S + horizon) and
    true_value (latent purchase rate x mean order value over the value horizon)."""
    end = pd.Timestamp(snapshot + timedelta(days=horizon_days))
    return pd.DataFrame({
        "customer_id": truth["customer_id"].astype(str),
        "drops": (truth["dropout_ts"] < end).astype(float),
        "true_value": truth["purchase_rate_per_year"] * value_days / 365.0 * truth["mean_order_value"],
    })


def compare_with_oracle(customers: pd.DataFrame, truth: pd.DataFrame, settings) -> pd.DataFrame:
    """Per policy at the same budget: spend, net value the model expects, and net value realised
    under the truth; plus the oracle plan. ``customers`` as for ``plan_with_baselines``."""
    outcome = plan_with_baselines(customers, settings)
    known = customers.merge(truth, on="customer_id", how="left", validate="one_to_one")
    if known["drops"].isna().any():
        raise ValueError(f"{int(known['drops'].isna().sum())} customers are missing from the truth file")
    truthful = known.assign(churn_probability=known["drops"], expected_value=known["true_value"])
    real = action_options(truthful, settings.action_catalogue)
    # the oracle spends what the plan spends on its treated customers, never on its controls
    treated_spend = totals(outcome.choices["optimised plan"], outcome.options)["spend"]
    oracle = solve_plan(real, treated_spend, excluded=outcome.control)
    rows = {}
    for name, choice in {**outcome.choices, "oracle (knows the truth)": oracle.choice}.items():
        expected = totals(choice, outcome.options)
        realised = totals(choice, real)
        rows[name] = {
            "customers": expected["customers"],
            "spend": expected["spend"],
            "expected_net_value": expected["expected_net_value"] if name in outcome.choices else np.nan,
            "realised_net_value": realised["expected_net_value"],
            "realised_saved_revenue": realised["expected_saved_revenue"],
        }
    table = pd.DataFrame(rows).T
    table["share_of_oracle"] = table["realised_net_value"] / table.loc["oracle (knows the truth)", "realised_net_value"]
    return table
