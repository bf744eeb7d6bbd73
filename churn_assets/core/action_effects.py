"""Learned action effects: each action's relative churn reduction per customer segment, measured
on every campaign matured by a snapshot and shrunk toward the catalogue's assumption.

The measured effect of a cell (action x customer segment, pooled over campaigns) is 1 - treated
churn / control churn, with the variance of the delta method on the log relative risk. It is
combined with the catalogue's effect as a normal prior of standard deviation ``prior_sd``
(normal-normal conjugate shrinkage): a cell with few controls stays near the assumption, a cell
with many follows its measurement. Controls are randomised within each campaign and action at
one share, so pooled counts compare like with like.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pandera.pandas as pandera
from scipy.stats import norm

from churn_assets.core.plan import Action

TEXT = pd.StringDtype("pyarrow")
UNKNOWN_SEGMENT = "unknown"


def matured_contacts_sql(snapshot: date, horizon_days: int) -> str:
    """Per action and customer segment: treated and control contacts, and how many churned, over
    every campaign whose churn horizon ended by ``snapshot`` (the contacts a plan for that
    snapshot may learn from, as a model for it may only learn from such labels)."""
    last = snapshot - timedelta(days=horizon_days)
    return f"""
        select c.action, coalesce(f.segment, '{UNKNOWN_SEGMENT}') as segment,
               count(distinct c.snapshot_date) as campaigns,
               count(*) filter (where not c.is_control) as treated,
               count(*) filter (where c.is_control) as controls,
               coalesce(sum(l.churned) filter (where not c.is_control), 0) as treated_churned,
               coalesce(sum(l.churned) filter (where c.is_control), 0) as controls_churned
        from silver.campaign_contacts c
        join silver.churn_labels l on l.snapshot_date = c.snapshot_date and l.customer_id = c.customer_id
        left join silver.customer_features f on f.snapshot_date = c.snapshot_date and f.customer_id = c.customer_id
        where c.snapshot_date <= date '{last.isoformat()}'
        group by 1, 2 order by 1, 2
    """


def measured_effect(treated: int, treated_churned: int, controls: int, controls_churned: int) -> tuple[float, float]:
    """The relative churn reduction and its variance; (nan, inf) when a group has no churner."""
    if not (treated_churned and controls_churned):
        return math.nan, math.inf
    ratio = (treated_churned / treated) / (controls_churned / controls)
    log_variance = 1 / treated_churned - 1 / treated + 1 / controls_churned - 1 / controls
    return 1 - ratio, ratio**2 * log_variance


def learned_effects(cells: pd.DataFrame, catalogue: tuple[Action, ...], snapshot: date, prior_sd: float, alpha: float = 0.05) -> pd.DataFrame:
    """One row per catalogue action and customer segment seen in ``cells`` (``matured_contacts_sql``):
    the measured effect with its interval, the catalogue's prior, and the shrunk ``effect`` with
    its interval (the prior alone where nothing was measured)."""
    segments = sorted(set(cells["segment"])) if len(cells) else []
    z = norm.ppf(1 - alpha / 2)
    rows = []
    for action in catalogue:
        for segment in segments:
            row = cells[(cells["action"] == action.name) & (cells["segment"] == segment)]
            counts = row.iloc[0] if len(row) else pd.Series({
                "campaigns": 0, "treated": 0, "controls": 0, "treated_churned": 0, "controls_churned": 0
            })
            measured, variance = measured_effect(
                int(counts["treated"]), int(counts["treated_churned"]), int(counts["controls"]), int(counts["controls_churned"])
            )
            prior = float(action.effect_by_segment.get(segment, action.effect))
            precision = 1 / prior_sd**2 + (0.0 if math.isinf(variance) else 1 / variance)
            effect = (prior / prior_sd**2 + (0.0 if math.isinf(variance) else measured / variance)) / precision
            sd = math.sqrt(1 / precision)
            spread = z * math.sqrt(variance) if not math.isinf(variance) else math.nan
            rows.append({
                "snapshot_date": pd.Timestamp(snapshot), "action": action.name, "segment": segment,
                "campaigns": int(counts["campaigns"]), "treated": int(counts["treated"]), "controls": int(counts["controls"]),
                "measured_effect": measured, "measured_low": measured - spread, "measured_high": measured + spread,
                "prior_effect": prior, "effect": effect, "effect_low": effect - z * sd, "effect_high": effect + z * sd,
            })
    return pd.DataFrame(rows, columns=list(action_effects_schema().columns))


def learned_catalogue(catalogue: tuple[Action, ...], effects: pd.DataFrame) -> tuple[Action, ...]:
    """The catalogue with each action's effect per segment replaced by the learned one; segments
    without a learned effect keep the catalogue's."""
    learned = []
    for action in catalogue:
        rows = effects[effects["action"] == action.name]
        by_segment = {**action.effect_by_segment, **dict(zip(rows["segment"], rows["effect"].astype(float)))}
        learned.append(dataclasses.replace(action, effect_by_segment=by_segment))
    return tuple(learned)


def plan_catalogue(catalogue: tuple[Action, ...], effects: pd.DataFrame, source: str) -> tuple[tuple[Action, ...], str]:
    """The actions a plan uses under effect ``source`` ('measured' or 'assumed'), and in words
    which effects those are and why."""
    if source == "assumed":
        return catalogue, "assumed: CHURN_EFFECT_SOURCE is 'assumed', so the catalogue's effects"
    measured = effects[effects["controls"] > 0]
    if measured.empty:
        return catalogue, "assumed: no campaign had matured by this snapshot, so the catalogue's effects"
    contacts = int(measured["treated"].sum() + measured["controls"].sum())
    return learned_catalogue(catalogue, effects), (
        f"measured: {contacts:,} contacts of {int(measured['campaigns'].max())} matured campaign(s), "
        "each action and segment shrunk toward the catalogue's effect"
    )


def effects_in_words(effects: pd.DataFrame) -> pd.DataFrame:
    """The learned effects as a small table for a person: assumed, measured and used, per cell."""
    shown = effects[["action", "segment", "controls", "prior_effect", "measured_effect", "effect"]].copy()
    for column in ("prior_effect", "measured_effect", "effect"):
        shown[column] = np.where(shown[column].isna(), "-", shown[column].map("{:.1%}".format))
    return shown.rename(columns={"prior_effect": "assumed", "measured_effect": "measured", "effect": "used"})


def action_effects_schema() -> pandera.DataFrameSchema:
    optional = dict(nullable=True)
    return pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]", description="The plan month these effects are for"),
            "action": pandera.Column(TEXT),
            "segment": pandera.Column(TEXT, description="Customer segment; 'unknown' without a customers file"),
            "campaigns": pandera.Column("int64", pandera.Check.ge(0), description="Matured campaigns with contacts in this cell"),
            "treated": pandera.Column("int64", pandera.Check.ge(0)),
            "controls": pandera.Column("int64", pandera.Check.ge(0)),
            "measured_effect": pandera.Column(float, description="1 - treated churn / control churn, pooled", **optional),
            "measured_low": pandera.Column(float, description="95% interval (delta method)", **optional),
            "measured_high": pandera.Column(float, **optional),
            "prior_effect": pandera.Column(float, description="The catalogue's assumed effect"),
            "effect": pandera.Column(float, description="Shrunk toward the prior: what a measured-effect plan uses"),
            "effect_low": pandera.Column(float),
            "effect_high": pandera.Column(float),
        },
        name="action_effects", unique=["snapshot_date", "action", "segment"], strict=True, ordered=True, coerce=True,
    )
