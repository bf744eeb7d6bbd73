"""``churn-assets report``: a month's plans and the learned effects judged against the generator's truth."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from churn_assets.core.silver.campaign_contacts import in_running_campaign
from churn_assets.core.sample.campaign_history import CampaignDesign
from churn_assets.core.errors import ChurnError
from churn_assets.core.gold.retention import plan_customers_sql
from churn_assets.core.gold.oracle import compare_with_oracle, truth_at_snapshot
from churn_assets.core.gold.plan import action_options
from churn_assets.core.gold.plan_effects import PlanEffects, model_uplift, plan_effects
from churn_assets.core.warehouse import query_frame, table_exists
from churn_assets.core.tables import GOLD_CUSTOMER_VALUE

MIN_CONTROLS = 30  # a cell with fewer controls has too wide an interval to say much about coverage
MEASURED, UPLIFT, ASSUMED = "measured effects", "uplift model", "assumed effects"
SOURCES = {MEASURED: "measured", UPLIFT: "uplift", ASSUMED: "assumed"}


@dataclass
class PlanReport:
    snapshot: str
    customers: int
    left_out: int  # scored customers the truth does not cover
    effect_source: str
    policies: pd.DataFrame
    coverage: pd.DataFrame  # per action and segment: the learned effects beside the true ones
    qini: pd.DataFrame  # per action: rankings judged by the true uplift, see ``qini_against_truth``
    notes: list[str] = field(default_factory=list)

    @property
    def plan_share_of_oracle(self) -> float:
        return float(self.policies["share_of_oracle"].iloc[0])

    def over_assumed(self, name: str) -> float | None:
        """Realised net value of the plan with effects ``name`` over the one with assumed effects, at equal spend."""
        rows = self.policies.index
        learned, assumed = f"optimised plan ({name})", f"optimised plan ({ASSUMED})"
        if learned not in rows or assumed not in rows:
            return None
        return float(self.policies.loc[learned, "realised_net_value"] / self.policies.loc[assumed, "realised_net_value"])

    @property
    def learned_over_assumed(self) -> float | None:
        return self.over_assumed(MEASURED)

    @property
    def effect_ci_coverage(self) -> float | None:
        """Share of the cells with enough controls whose measured 95% interval holds the true effect."""
        judged = self.coverage[self.coverage["enough_controls"]] if len(self.coverage) else self.coverage
        return float(judged["covered"].mean()) if len(judged) else None

    def as_dict(self) -> dict:
        def plain(value):
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

        return {
            "snapshot": self.snapshot,
            "customers": self.customers,
            "customers_left_out": self.left_out,
            "effect_source": self.effect_source,
            "plan_share_of_oracle": plain(self.plan_share_of_oracle),
            "learned_over_assumed_realised_value": plain(self.learned_over_assumed),
            "uplift_over_assumed_realised_value": plain(self.over_assumed(UPLIFT)),
            "effect_ci_coverage": plain(self.effect_ci_coverage),
            "effect_cells_judged": int(self.coverage["enough_controls"].sum()) if len(self.coverage) else 0,
            "policies": {name: {k: plain(float(v)) for k, v in row.items()} for name, row in self.policies.iterrows()},
            "effects": [{k: plain(v) for k, v in row.items()} for row in self.coverage.to_dict("records")],
            "uplift_qini_vs_truth": [{k: plain(v) for k, v in row.items()} for row in self.qini.to_dict("records")],
            "notes": self.notes,
        }


def plan_report(connection, raw_truth: pd.DataFrame, settings, snapshot: str | None = None) -> PlanReport:
    """The plan of ``snapshot`` (default the newest valued one) with measured and with assumed
    effects, both baselines and the oracle, valued under the truth, and the coverage of the true
    effects by the learned ones. Raises ``ChurnError`` saying what is missing."""
    if not table_exists(connection, "gold", "customer_value"):
        raise ChurnError("no plan yet; run `churn-assets run` first")
    snapshot = snapshot or str(connection.execute(f"select max(snapshot_date) from {GOLD_CUSTOMER_VALUE}").fetchall()[0][0])[:10]
    customers = query_frame(connection, plan_customers_sql(snapshot))
    if customers.empty:
        raise ChurnError(f"no scored customers for snapshot {snapshot}")
    truth = truth_at_snapshot(raw_truth, date.fromisoformat(snapshot), settings.churn_horizon_days, settings.value_horizon_days)
    covered = customers["customer_id"].isin(truth["customer_id"])
    left_out = int((~covered).sum())
    if left_out and covered.mean() < 0.5:
        raise ChurnError(
            f"{left_out:,} of {len(customers):,} customers of snapshot {snapshot} are not in the truth file: their "
            "data was not generated into this home (landed by hand, or its truth replaced); generate into a fresh "
            "home, or land only generated data"
        )
    customers = customers[covered].reset_index(drop=True)
    plans = {name: plan_effects(connection, customers, snapshot, settings, source) for name, source in SOURCES.items()}
    built = next(name for name, source in SOURCES.items() if source == settings.effect_source)
    in_words = plans[built].source
    if plans[UPLIFT].uplift is None:  # without the model the uplift plan is the measured one
        built = MEASURED if built == UPLIFT else built
        del plans[UPLIFT]
    if plans[MEASURED].catalogue is settings.action_catalogue:  # nothing measured yet
        built = ASSUMED
        plans = {ASSUMED: plans[ASSUMED]}
    order = [built, *(name for name in plans if name != built)]
    running = in_running_campaign(connection, customers, snapshot, settings.churn_horizon_days)
    policies = compare_with_oracle(
        customers, truth, settings, {n: plans[n].catalogue for n in order}, running,
        {n: plans[n].uplift for n in order if plans[n].uplift is not None},
    )
    notes = []
    if not any(c.startswith("effect_") for c in truth.columns):
        notes.append("the truth has no true action effects (generated before campaigns): plans are valued with the catalogue's")
    effects = plans[built].effects
    qini = qini_against_truth(connection, customers, truth, snapshot, settings, plans.get(MEASURED), notes)
    coverage = effect_coverage(effects, raw_truth, date.fromisoformat(snapshot), settings.churn_horizon_days, notes)
    return PlanReport(snapshot, len(customers), left_out, in_words, policies, coverage, qini, notes)


def effect_coverage(effects: pd.DataFrame, raw_truth: pd.DataFrame, snapshot: date, horizon_days: int, notes: list[str]) -> pd.DataFrame:
    """Per learned cell (action x segment): the true relative churn reduction over the same
    matured contacts, from each contact's two potential outcomes in the truth, and whether the
    measured and the shrunk 95% intervals hold it."""
    if effects.empty or "contact_churn_if_treated" not in raw_truth:
        return pd.DataFrame(columns=["enough_controls", "covered"])
    if horizon_days != CampaignDesign.horizon_days:
        notes.append(f"the truth's potential outcomes are for a {CampaignDesign.horizon_days}-day horizon, "
                     f"not CHURN_HORIZON_DAYS={horizon_days}: effect coverage is not judged")
        return pd.DataFrame(columns=["enough_controls", "covered"])
    last = pd.Timestamp(snapshot - timedelta(days=horizon_days))
    contacted = raw_truth[raw_truth["campaign_snapshot"].notna() & (raw_truth["campaign_snapshot"] <= last)]
    true = contacted.groupby(["contact_action", "segment"]).agg(
        churn_if_treated=("contact_churn_if_treated", "mean"), churn_if_control=("contact_churn_if_control", "mean")
    )
    true["true_effect"] = 1 - true["churn_if_treated"] / true["churn_if_control"]
    cells = effects.merge(true.reset_index(), left_on=["action", "segment"], right_on=["contact_action", "segment"], how="inner")
    cells["enough_controls"] = cells["controls"] >= MIN_CONTROLS
    cells["covered"] = (cells["measured_low"] <= cells["true_effect"]) & (cells["true_effect"] <= cells["measured_high"])
    cells["shrunk_covered"] = (cells["effect_low"] <= cells["true_effect"]) & (cells["true_effect"] <= cells["effect_high"])
    return cells[["action", "segment", "treated", "controls", "true_effect", "measured_effect", "measured_low", "measured_high",
                  "effect", "effect_low", "effect_high", "prior_effect", "enough_controls", "covered", "shrunk_covered"]]



RANKINGS = ("uplift model", "segment estimates", "highest risk first")


def qini_against_truth(
    connection, customers: pd.DataFrame, truth: pd.DataFrame, snapshot: str, settings, measured: PlanEffects | None, notes: list[str]
) -> pd.DataFrame:
    """Per action, over the customers who may receive it: the area under the curve of true churn
    prevented (from the truth's per-customer effects) when targeting best first by the uplift
    model (fitted for every action), by the segment estimates (churn risk x measured effect) and
    by churn risk, beside random and the truth's own order; ``qini_share`` is each ranking's gain
    over random as a share of the truth's."""
    if measured is None or not any(c.startswith("effect_") for c in truth.columns):
        return pd.DataFrame(columns=["action", "customers", "ranking", "auuc", "qini_share"])
    catalogue = measured.catalogue
    uplift, words = model_uplift(connection, customers, snapshot, settings, catalogue, {a.name for a in catalogue})
    if not np.isfinite(uplift).any():
        notes.append(f"Qini against the truth not judged: {words}")
        return pd.DataFrame(columns=["action", "customers", "ranking", "auuc", "qini_share"])
    known = customers.merge(truth, on="customer_id", how="left", validate="one_to_one")
    eligible = np.isfinite(action_options(customers, catalogue).net)
    segment_uplift = action_options(customers.assign(expected_value=1.0), catalogue).saved
    drops = known["drops"].to_numpy(float)
    rows = []
    for j, action in enumerate(catalogue):
        mine = eligible[:, j] & np.isfinite(uplift[:, j])
        effect = known[f"effect_{action.name}"].to_numpy(float)[mine]
        true = drops[mine] * np.clip(effect, 0, None) - (1 - drops[mine]) * np.clip(-effect, 0, None)
        scores = {"uplift model": uplift[mine, j], "segment estimates": segment_uplift[mine, j],
                  "highest risk first": customers["churn_probability"].to_numpy(float)[mine], "truth": true}
        found = {name: _true_auuc(score, true) for name, score in scores.items()}
        found["random"] = float(true.sum() / 2 / len(true)) if len(true) else math.nan
        best = found["truth"] - found["random"]
        for name, area in found.items():
            rows.append({"action": action.name, "customers": int(mine.sum()), "ranking": name, "auuc": area,
                         "qini_share": (area - found["random"]) / best if best > 0 else math.nan})
    return pd.DataFrame(rows)


def _true_auuc(score: np.ndarray, true: np.ndarray) -> float:
    """Area under cumulative true churn prevented, targeting by ``score`` best first, per customer."""
    if not len(true):
        return math.nan
    gained = np.concatenate([[0.0], np.cumsum(true[np.argsort(-score, kind="stable")])])
    return float(np.trapezoid(gained, np.linspace(0, 1, len(gained))) / len(true))
