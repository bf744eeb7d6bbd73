"""Gold tables in plain pandas: schemas, the plan with its baselines, and the plan's rows."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.gold.plan import (
    Options,
    PlanSolution,
    action_options,
    hold_out,
    highest_risk_first,
    rule_policy,
    solve_plan,
    totals,
    within_spend,
)
from churn_assets.core.gold.holdout import holdout_power
from churn_assets.core.plots import png_bytes, spend_curve_figure
from churn_assets.core.tables import GOLD_CUSTOMER_VALUE, SILVER_CUSTOMER_FEATURES

TEXT = pd.StringDtype("pyarrow")


@dataclass
class PlanOutcome:
    solution: PlanSolution
    options: Options
    control: np.ndarray
    comparison: pd.DataFrame
    plan: pd.DataFrame
    curve_png: bytes
    solve_seconds: float
    choices: dict[str, np.ndarray]  # action index per customer (-1: none) of each policy; controls get none
    power: pd.DataFrame  # per risk segment, see ``holdout_power``


def plan_customers_sql(snapshot: str) -> str:
    """Everything the plan needs per scored customer of ``snapshot`` (YYYY-MM-DD)."""
    return f"""
        select v.*, f.segment, f.marketing_opt_in, f.avg_order_value
        from {GOLD_CUSTOMER_VALUE} v join {SILVER_CUSTOMER_FEATURES} f using (snapshot_date, customer_id)
        where v.snapshot_date = date '{snapshot}' order by v.customer_id
    """


def plan_with_baselines(
    customers: pd.DataFrame, settings, plot: bool = True, catalogue=None, excluded: np.ndarray | None = None,
    uplift: np.ndarray | None = None,
) -> PlanOutcome:
    """The optimised plan with its control group, and both baselines cut to the treated spend;
    with ``plot`` also the spend curve as PNG (else empty bytes). ``catalogue``: the actions with
    the effects to plan with (default the settings' catalogue); ``excluded``: customers no policy
    may act on (those a running campaign is still measuring); ``uplift``: churn prevented per
    customer and action by the uplift model, where it is used (see ``action_options``).

    The plan is solved first; the control group is then drawn from the customers it selected
    (``hold_out``), so treated against control compares like with like. Controls keep the action
    they would have received and cost nothing.

    ``customers``: customer_id, churn_probability, risk_segment, expected_value, segment,
    marketing_opt_in, avg_order_value, snapshot_date.
    """
    options = action_options(customers, catalogue or settings.action_catalogue, uplift)
    started = time.perf_counter()
    excluded = np.zeros(len(customers), dtype=bool) if excluded is None else np.asarray(excluded, dtype=bool)
    solution = solve_plan(options, settings.budget, excluded=excluded)
    seconds = time.perf_counter() - started
    control = hold_out(solution.choice, customers, options, settings.control_share, settings.seed)
    treated = np.where(control, -1, solution.choice)
    spend = totals(treated, options)["spend"]
    by_risk = np.argsort(-customers["churn_probability"].to_numpy(), kind="stable")
    by_risk = by_risk[~control[by_risk] & ~excluded[by_risk]]
    rules = within_spend(rule_policy(customers, options), by_risk, options, spend)
    riskiest = within_spend(highest_risk_first(customers, options), by_risk, options, spend)
    choices = {"optimised plan": treated, "rules (seed)": rules, "highest risk first": riskiest}
    comparison = pd.DataFrame({name: totals(choice, options) for name, choice in choices.items()}).T
    curve = png_bytes(spend_curve_figure(solution.curve, settings.budget, solution.spend, solution.net_value)) if plot else b""
    plan = retention_actions_frame(customers, options, solution.choice, control)
    power = holdout_power(customers, options, solution.choice, control, settings.control_share)
    return PlanOutcome(solution, options, control, comparison, plan, curve, seconds, choices, power)


def retention_actions_frame(
    customers: pd.DataFrame, options: Options, choice: np.ndarray, control: np.ndarray
) -> pd.DataFrame:
    """One row per customer the plan selected: treated (priority 1 = most net value) or held out
    as a control, which keeps the action it would have received at no cost and no expected value."""
    rows = np.flatnonzero(choice >= 0)
    j = choice[rows]
    held = control[rows]
    names = np.array([a.name for a in options.actions], dtype=object)
    would_cost, would_save = options.cost[rows, j], options.saved[rows, j]
    cost = np.where(held, 0.0, would_cost)
    saved = np.where(held, 0.0, would_save)
    net = saved - cost
    p = customers["churn_probability"].to_numpy()[rows]
    value = customers["expected_value"].to_numpy()[rows]
    effect = np.divide(would_save, p * value, out=np.zeros_like(would_save), where=(p * value) > 0)
    frame = pd.DataFrame({
        "snapshot_date": customers["snapshot_date"].to_numpy()[rows],
        "customer_id": customers["customer_id"].to_numpy()[rows],
        "action": names[j],
        "cost": cost.round(2),
        "expected_saved_revenue": saved.round(2),
        "expected_net_value": net.round(2),
        "priority": pd.array([pd.NA] * len(rows), dtype="Int64"),
        "is_control": held,
        "risk_segment": customers["risk_segment"].to_numpy()[rows],
        "reason": [
            f"{'control group, held out at random; would get: ' if h else ''}"
            f"{pr:.0%} churn risk x {e:.0%} effect x {v:,.0f} value - {c:,.2f} cost"
            for h, pr, e, v, c in zip(held, p, effect, value, would_cost)
        ],
    })
    acted = np.flatnonzero(~held)
    order = acted[np.argsort(-net[acted], kind="stable")]
    frame.loc[order, "priority"] = np.arange(1, len(acted) + 1)
    return frame.sort_values(["is_control", "priority", "customer_id"]).reset_index(drop=True)


def customer_value_schema() -> pandera.DataFrameSchema:
    return pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]"),
            "customer_id": pandera.Column(TEXT),
            "churn_probability": pandera.Column(float, pandera.Check.in_range(0, 1)),
            "risk_segment": pandera.Column(TEXT),
            "expected_value": pandera.Column(float, pandera.Check.ge(0), description="revenue over the value horizon if retained"),
            "revenue_at_risk": pandera.Column(float, pandera.Check.ge(0), description="churn probability x expected value"),
            "value_method": pandera.Column(TEXT),
        },
        name="customer_value", unique=["snapshot_date", "customer_id"], strict=True, ordered=True, coerce=True,
    )


def retention_actions_schema() -> pandera.DataFrameSchema:
    return pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]"),
            "customer_id": pandera.Column(TEXT),
            "action": pandera.Column(TEXT),
            "cost": pandera.Column(float, pandera.Check.ge(0)),
            "expected_saved_revenue": pandera.Column(float),
            "expected_net_value": pandera.Column(float),
            "priority": pandera.Column("Int64", nullable=True, description="1 = most expected net value; null for controls"),
            "is_control": pandera.Column(
                bool, description="held out at random from the selected customers: keeps its action, not contacted"
            ),
            "risk_segment": pandera.Column(TEXT),
            "reason": pandera.Column(TEXT),
        },
        name="retention_actions", unique=["snapshot_date", "customer_id"], strict=True, ordered=True, coerce=True,
    )
