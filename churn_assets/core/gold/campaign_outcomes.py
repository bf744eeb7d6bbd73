"""What a campaign really did: treated against control churn per action and risk segment, priced.

The control group is a randomised holdout within each stratum, so the difference of churn rates
is an unbiased estimate of the action's effect on the customers it was given to. Intervals and
tests come from scipy: Wilson score intervals combined by Newcombe's method for the difference,
the relative-risk interval for the relative effect, Fisher's exact test for the p-value and a
chi-square test for a sample-ratio mismatch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pandera.pandas as pandera
from scipy.stats import binomtest, chisquare, fisher_exact
from scipy.stats.contingency import relative_risk

from churn_assets.core.gold.plan import Action, action_options
from churn_assets.core.tables import (
    GOLD_CUSTOMER_VALUE,
    SILVER_CAMPAIGN_CONTACTS,
    SILVER_CHURN_LABELS,
    SILVER_CUSTOMER_FEATURES,
)

ALPHA = 0.05
SRM_ALPHA = 0.001  # a sample-ratio test is run on every campaign: only a clear mismatch fails it
ALL = "all"
TEXT = pd.StringDtype("pyarrow")


def campaign_customers_sql(snapshot: str, scored: bool = True, featured: bool = True) -> str:
    """Every valid contact of the campaign of ``snapshot`` (YYYY-MM-DD) with its churn label, and
    the churn probability, risk segment, value and plan inputs the customer had at the snapshot
    (unknown without a ``scored`` month in gold.customer_value or ``featured`` in silver)."""
    value = (
        GOLD_CUSTOMER_VALUE if scored
        else "(select null::date as snapshot_date, null::varchar as customer_id, null::double as churn_probability, "
        "null::varchar as risk_segment, null::double as expected_value)"
    )
    features = (
        SILVER_CUSTOMER_FEATURES if featured
        else "(select null::date as snapshot_date, null::varchar as customer_id, null::varchar as segment, "
        "null::boolean as marketing_opt_in, null::double as avg_order_value)"
    )
    return f"""
        select c.customer_id, c.action, c.is_control, c.cost as landed_cost, l.churned,
               v.churn_probability, coalesce(v.risk_segment, 'unscored') as risk_segment,
               coalesce(v.expected_value, 0) as expected_value,
               f.segment, f.marketing_opt_in, f.avg_order_value
        from {SILVER_CAMPAIGN_CONTACTS} c
        left join {SILVER_CHURN_LABELS} l on l.snapshot_date = c.snapshot_date and l.customer_id = c.customer_id
        left join {value} v on v.snapshot_date = c.snapshot_date and v.customer_id = c.customer_id
        left join {features} f on f.snapshot_date = c.snapshot_date and f.customer_id = c.customer_id
        where c.snapshot_date = date '{snapshot}'
        order by c.customer_id
    """


def wilson_interval(cases: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (nan, nan) without observations."""
    if n == 0:
        return math.nan, math.nan
    ci = binomtest(int(cases), int(n)).proportion_ci(1 - alpha, method="wilson")
    return float(ci.low), float(ci.high)


def difference_interval(control_cases: int, controls: int, treated_cases: int, treated: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Interval of control churn minus treated churn (the absolute uplift): Newcombe's hybrid
    score method (his method 10) on the two Wilson intervals."""
    if controls == 0 or treated == 0:
        return math.nan, math.nan
    p_c, p_t = control_cases / controls, treated_cases / treated
    low_c, high_c = wilson_interval(control_cases, controls, alpha)
    low_t, high_t = wilson_interval(treated_cases, treated, alpha)
    d = p_c - p_t
    return d - math.hypot(p_c - low_c, high_t - p_t), d + math.hypot(high_c - p_c, p_t - low_t)


def relative_interval(control_cases: int, controls: int, treated_cases: int, treated: int, alpha: float = ALPHA) -> tuple[float, float, float]:
    """The relative uplift 1 - (treated churn / control churn) with its interval (from the
    relative risk's log interval); nan when either group has no churner."""
    if not (controls and treated and control_cases and treated_cases):
        return math.nan, math.nan, math.nan
    result = relative_risk(int(treated_cases), int(treated), int(control_cases), int(controls))
    ci = result.confidence_interval(1 - alpha)
    return 1 - float(result.relative_risk), 1 - float(ci.high), 1 - float(ci.low)


def uplift_p_value(control_cases: int, controls: int, treated_cases: int, treated: int) -> float:
    """Two-sided Fisher exact test that treated and control churn alike; nan for an empty group."""
    if controls == 0 or treated == 0:
        return math.nan
    table = [[treated_cases, treated - treated_cases], [control_cases, controls - control_cases]]
    return float(fisher_exact(table).pvalue)


def sample_ratio_mismatch(treated: np.ndarray, controls: np.ndarray, control_share: float) -> tuple[float, float]:
    """Chi-square statistic and p-value of the hypothesis that ``control_share`` of the
    customers were held out: over all strata together (one degree of freedom) and stratum by
    stratum (one per stratum); the smaller p-value wins, so either a global or a local mismatch
    shows. (0, 1) when there is nothing to test."""
    treated, controls = np.asarray(treated, float), np.asarray(controls, float)
    keep = (treated + controls) > 0
    if not keep.any() or not 0 < control_share < 1:
        return 0.0, 1.0
    pooled = _split_test(np.array([treated[keep].sum()]), np.array([controls[keep].sum()]), control_share)
    strata = _split_test(treated[keep], controls[keep], control_share)
    return min(pooled, strata, key=lambda result: result[1])


def _split_test(treated: np.ndarray, controls: np.ndarray, control_share: float) -> tuple[float, float]:
    n = treated + controls
    observed = np.concatenate([controls, treated])
    expected = np.concatenate([control_share * n, (1 - control_share) * n])
    # each stratum's split is one degree of freedom: the expected counts are fixed, not fitted
    result = chisquare(observed, expected, ddof=len(n) - 1)
    return float(result.statistic), float(result.pvalue)


def with_money(customers: pd.DataFrame, catalogue: tuple[Action, ...]) -> pd.DataFrame:
    """``customers`` (``campaign_customers_sql``) with each treated contact's ``cost`` (as landed,
    else the catalogue's) and ``expected_saved_revenue`` (the catalogue's assumed effect x churn
    probability x value: what a plan under the catalogue expected); both 0 for controls."""
    names = [a.name for a in catalogue]
    column = customers["action"].map({name: j for j, name in enumerate(names)}).to_numpy()
    options = action_options(
        customers.assign(churn_probability=customers["churn_probability"].fillna(0.0)), catalogue
    )
    rows = np.arange(len(customers))
    treated = ~customers["is_control"].to_numpy(bool)
    catalogue_cost = options.cost[rows, column] if len(customers) else np.zeros(0)
    cost = customers["landed_cost"].to_numpy(float, na_value=np.nan)
    cost = np.where(np.isnan(cost), catalogue_cost, cost)
    saved = options.saved[rows, column] if len(customers) else np.zeros(0)
    return customers.assign(cost=np.where(treated, cost, 0.0), expected_saved_revenue=np.where(treated, saved, 0.0))


def _measured(group: pd.DataFrame) -> dict:
    """One outcome row's figures for the contacts in ``group``."""
    labelled = group[group["churned"].notna()]
    control = labelled["is_control"].to_numpy(bool)
    churned = labelled["churned"].to_numpy(int)
    n_c, n_t = int(control.sum()), int((~control).sum())
    k_c, k_t = int(churned[control].sum()), int(churned[~control].sum())
    p_c = k_c / n_c if n_c else math.nan
    p_t = k_t / n_t if n_t else math.nan
    low, high = difference_interval(k_c, n_c, k_t, n_t)
    relative, rel_low, rel_high = relative_interval(k_c, n_c, k_t, n_t)
    treated_rows = group[~group["is_control"].to_numpy(bool)]
    value = float(treated_rows["expected_value"].sum())
    cost = float(treated_rows["cost"].sum())
    uplift = p_c - p_t
    revenue = uplift * value
    return {
        "treated": n_t, "controls": n_c, "unlabelled": int(group["churned"].isna().sum()),
        "churn_treated": p_t, "churn_control": p_c,
        "uplift": uplift, "uplift_low": low, "uplift_high": high,
        "relative_uplift": relative, "relative_uplift_low": rel_low, "relative_uplift_high": rel_high,
        "p_value": uplift_p_value(k_c, n_c, k_t, n_t),
        "incremental_customers": uplift * n_t,
        "incremental_revenue": revenue, "incremental_revenue_low": low * value, "incremental_revenue_high": high * value,
        "cost": cost,
        "incremental_net_value": revenue - cost,
        "roi": (revenue - cost) / cost if cost > 0 else math.nan,
        "expected_saved_revenue": float(treated_rows["expected_saved_revenue"].sum()),
    }


def outcomes_table(customers: pd.DataFrame, snapshot: str) -> pd.DataFrame:
    """One row per action and risk segment of the campaign's contacts (``with_money``), and a
    total row (action and risk segment 'all'), in ``campaign_outcomes_schema`` columns."""
    rows = [
        {"action": action, "risk_segment": segment, **_measured(group)}
        for (action, segment), group in customers.groupby(["action", "risk_segment"], sort=True)
    ]
    rows.append({"action": ALL, "risk_segment": ALL, **_measured(customers)})
    frame = pd.DataFrame(rows)
    frame.insert(0, "snapshot_date", pd.Timestamp(snapshot))
    ratio = frame["incremental_revenue"] / frame["expected_saved_revenue"]
    frame["calibration"] = ratio.where(frame["expected_saved_revenue"] > 0)
    return frame


def campaign_outcomes_schema() -> pandera.DataFrameSchema:
    share = pandera.Check.in_range(0, 1)
    optional = dict(nullable=True)

    def rate(text):
        return pandera.Column(float, share, description=text, **optional)

    def money(text):
        return pandera.Column(float, description=text, **optional)

    return pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]", description="The campaign: its plan's snapshot"),
            "action": pandera.Column(TEXT, description="'all' on the campaign's total row"),
            "risk_segment": pandera.Column(TEXT, description="At the snapshot; 'unscored' without a prediction"),
            "treated": pandera.Column("int64", pandera.Check.ge(0), description="Labelled treated contacts"),
            "controls": pandera.Column("int64", pandera.Check.ge(0), description="Labelled controls"),
            "unlabelled": pandera.Column("int64", pandera.Check.ge(0), description="Contacts without a churn label"),
            "churn_treated": rate("Churn rate of the treated over the horizon"),
            "churn_control": rate("Churn rate of the controls"),
            "uplift": money("Control churn - treated churn (absolute, > 0: the action retained)"),
            "uplift_low": money("95% interval (Newcombe)"),
            "uplift_high": money("95% interval (Newcombe)"),
            "relative_uplift": money("1 - treated churn / control churn"),
            "relative_uplift_low": money("95% interval (relative risk)"),
            "relative_uplift_high": money("95% interval (relative risk)"),
            "p_value": rate("Fisher exact test, two-sided"),
            "incremental_customers": money("Uplift x treated: customers retained by the action"),
            "incremental_revenue": money("Uplift x the treated customers' value over the value horizon"),
            "incremental_revenue_low": money("95% interval"),
            "incremental_revenue_high": money("95% interval"),
            "cost": pandera.Column(float, pandera.Check.ge(0), description="Treated contacts' cost: landed, else the catalogue's"),
            "incremental_net_value": money("Incremental revenue - cost"),
            "roi": money("Incremental net value / cost"),
            "expected_saved_revenue": pandera.Column(float, description="What the catalogue's assumed effects promised"),
            "calibration": money("Measured incremental revenue / expected saved revenue"),
        },
        name="campaign_outcomes", unique=["snapshot_date", "action", "risk_segment"], strict=True, ordered=True, coerce=True,
    )
