"""``churn-assets report``: a month's plans and the learned effects judged against the generator's truth."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from churn_assets.core.action_effects import plan_catalogue
from churn_assets.core.campaign_contacts import in_running_campaign
from churn_assets.core.campaign_history import CampaignDesign
from churn_assets.core.errors import ChurnError
from churn_assets.core.gold import plan_customers_sql
from churn_assets.core.oracle import compare_with_oracle, truth_at_snapshot
from churn_assets.core.warehouse import query_frame, table_exists

MIN_CONTROLS = 30  # a cell with fewer controls has too wide an interval to say much about coverage
MEASURED, ASSUMED = "measured effects", "assumed effects"


@dataclass
class PlanReport:
    snapshot: str
    customers: int
    left_out: int  # scored customers the truth does not cover
    effect_source: str
    policies: pd.DataFrame
    coverage: pd.DataFrame  # per action and segment: the learned effects beside the true ones
    notes: list[str] = field(default_factory=list)

    @property
    def plan_share_of_oracle(self) -> float:
        return float(self.policies["share_of_oracle"].iloc[0])

    @property
    def learned_over_assumed(self) -> float | None:
        """Realised net value of the plan with measured effects over the one with assumed effects, at equal spend."""
        rows = self.policies.index
        measured, assumed = f"optimised plan ({MEASURED})", f"optimised plan ({ASSUMED})"
        if measured not in rows or assumed not in rows:
            return None
        return float(self.policies.loc[measured, "realised_net_value"] / self.policies.loc[assumed, "realised_net_value"])

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
            "effect_ci_coverage": plain(self.effect_ci_coverage),
            "effect_cells_judged": int(self.coverage["enough_controls"].sum()) if len(self.coverage) else 0,
            "policies": {name: {k: plain(float(v)) for k, v in row.items()} for name, row in self.policies.iterrows()},
            "effects": [{k: plain(v) for k, v in row.items()} for row in self.coverage.to_dict("records")],
            "notes": self.notes,
        }


def plan_report(connection, raw_truth: pd.DataFrame, settings, snapshot: str | None = None) -> PlanReport:
    """The plan of ``snapshot`` (default the newest valued one) with measured and with assumed
    effects, both baselines and the oracle, valued under the truth, and the coverage of the true
    effects by the learned ones. Raises ``ChurnError`` saying what is missing."""
    if not table_exists(connection, "gold", "customer_value"):
        raise ChurnError("no plan yet; run `churn-assets run` first")
    snapshot = snapshot or str(connection.execute("select max(snapshot_date) from gold.customer_value").fetchall()[0][0])[:10]
    customers = query_frame(connection, plan_customers_sql(snapshot))
    if customers.empty:
        raise ChurnError(f"no scored customers for snapshot {snapshot}")
    effects = (
        query_frame(connection, f"select * from gold.action_effects where snapshot_date = date '{snapshot}'")
        if table_exists(connection, "gold", "action_effects") else pd.DataFrame(columns=["controls"])
    )
    catalogue, source = plan_catalogue(settings.action_catalogue, effects, settings.effect_source)
    catalogues = {ASSUMED: settings.action_catalogue}
    if catalogue is not settings.action_catalogue:
        catalogues = {MEASURED: catalogue, **catalogues}
    truth = truth_at_snapshot(raw_truth, date.fromisoformat(snapshot), settings.churn_horizon_days, settings.value_horizon_days)
    covered = customers["customer_id"].isin(truth["customer_id"])
    left_out = int((~covered).sum())
    if left_out and covered.mean() < 0.5:
        raise ChurnError(
            f"{left_out:,} of {len(customers):,} customers of snapshot {snapshot} are not in the truth file: their "
            "data was not generated into this home (landed by hand, or its truth replaced); generate into a fresh "
            "home, or land only generated data"
        )
    running = in_running_campaign(connection, customers, snapshot, settings.churn_horizon_days)
    policies = compare_with_oracle(
        customers[covered].reset_index(drop=True), truth, settings, catalogues, running[covered.to_numpy()]
    )
    notes = []
    if not any(c.startswith("effect_") for c in truth.columns):
        notes.append("the truth has no true action effects (generated before campaigns): plans are valued with the catalogue's")
    coverage = effect_coverage(effects, raw_truth, date.fromisoformat(snapshot), settings.churn_horizon_days, notes)
    return PlanReport(snapshot, int(covered.sum()), left_out, source, policies, coverage, notes)


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

