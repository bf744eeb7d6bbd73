"""Learned action effects: each action's relative churn reduction per customer segment, measured
on every campaign matured by a snapshot and shrunk toward the catalogue's assumption.

The measured effect of a cell (action x customer segment, pooled over campaigns) is 1 - treated
churn / control churn, with the variance of the delta method on the log relative risk. The cells
are combined in a normal hierarchy (``learned_effects``): an action's effect around the
catalogue's (sd ``prior_sd``), a segment's around its action's (sd ``segment_sd``). A cell with few
controls borrows from its action's other segments and the catalogue; a cell with many follows its
measurement. Controls are randomised within each campaign and action at one share, so pooled
counts compare like with like.
"""
from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pandera.pandas as pandera
from scipy.stats import norm

from churn_assets.core.gold.plan import Action
from churn_assets.core.tables import SILVER_CAMPAIGN_CONTACTS, SILVER_CHURN_LABELS, SILVER_CUSTOMER_FEATURES

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
        from {SILVER_CAMPAIGN_CONTACTS} c
        join {SILVER_CHURN_LABELS} l on l.snapshot_date = c.snapshot_date and l.customer_id = c.customer_id
        left join {SILVER_CUSTOMER_FEATURES} f on f.snapshot_date = c.snapshot_date and f.customer_id = c.customer_id
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


def learned_effects(
    cells: pd.DataFrame, catalogue: tuple[Action, ...], snapshot: date, prior_sd: float, segment_sd: float, alpha: float = 0.05
) -> pd.DataFrame:
    """One row per catalogue action and customer segment seen in ``cells`` (``matured_contacts_sql``):
    the measured effect with its interval, the catalogue's prior, the action's effect pooled over
    its segments, and the segment's shrunk ``effect`` with its interval (the prior alone where
    nothing was measured).

    A normal hierarchy: an action's effect varies around the catalogue's with sd ``prior_sd``, a
    segment's around its action's with sd ``segment_sd`` (offset by the catalogue's own segment
    effect); each cell's measurement is normal with its delta-method variance. A segment's
    posterior takes its action's effect as learned from the other segments as its prior, so no
    measurement counts twice."""
    segments = sorted(set(cells["segment"])) if len(cells) else []
    z = norm.ppf(1 - alpha / 2)
    rows = []
    for action in catalogue:
        counts = {s: _cell_counts(cells, action.name, s) for s in segments}
        measured = {s: measured_effect(int(c["treated"]), int(c["treated_churned"]), int(c["controls"]), int(c["controls_churned"]))
                    for s, c in counts.items()}
        offset = {s: float(action.effect_by_segment.get(s, action.effect)) - action.effect for s in segments}
        pooled, _ = _action_effect(action.effect, prior_sd, segment_sd, measured, offset)
        for segment in segments:
            value, variance = measured[segment]
            others = {s: m for s, m in measured.items() if s != segment}
            mean, spread = _action_effect(action.effect, prior_sd, segment_sd, others, offset)
            effect, sd = _normal_posterior(mean + offset[segment], spread + segment_sd**2, value, variance)
            interval = z * math.sqrt(variance) if not math.isinf(variance) else math.nan
            c = counts[segment]
            rows.append({
                "snapshot_date": pd.Timestamp(snapshot), "action": action.name, "segment": segment,
                "campaigns": int(c["campaigns"]), "treated": int(c["treated"]), "controls": int(c["controls"]),
                "measured_effect": value, "measured_low": value - interval, "measured_high": value + interval,
                "prior_effect": action.effect + offset[segment], "pooled_effect": pooled,
                "effect": effect, "effect_low": effect - z * sd, "effect_high": effect + z * sd,
            })
    return pd.DataFrame(rows, columns=list(action_effects_schema().columns))


def _cell_counts(cells: pd.DataFrame, action: str, segment: str) -> pd.Series:
    row = cells[(cells["action"] == action) & (cells["segment"] == segment)]
    if len(row):
        return row.iloc[0]
    return pd.Series({"campaigns": 0, "treated": 0, "controls": 0, "treated_churned": 0, "controls_churned": 0})


def _action_effect(prior: float, prior_sd: float, segment_sd: float, measured: dict, offset: dict) -> tuple[float, float]:
    """The action's effect (mean, variance) given the catalogue's and the segments' ``measured``
    (effect, variance) pairs: each segment's measurement less its offset is the action's effect
    plus the segment's own deviation (variance ``segment_sd**2``)."""
    precision, weighted = 1 / prior_sd**2, prior / prior_sd**2
    for segment, (value, variance) in measured.items():
        if not math.isinf(variance):
            weight = 1 / (segment_sd**2 + variance)
            precision, weighted = precision + weight, weighted + weight * (value - offset[segment])
    return weighted / precision, 1 / precision


def _normal_posterior(prior: float, prior_variance: float, value: float, variance: float) -> tuple[float, float]:
    """Posterior mean and sd of a normal prior updated by one normal measurement (none if its variance is infinite)."""
    precision = 1 / prior_variance + (0.0 if math.isinf(variance) else 1 / variance)
    mean = (prior / prior_variance + (0.0 if math.isinf(variance) else value / variance)) / precision
    return mean, math.sqrt(1 / precision)


def learned_catalogue(catalogue: tuple[Action, ...], effects: pd.DataFrame) -> tuple[Action, ...]:
    """The catalogue with each action's effect per segment replaced by the learned one; segments
    without one take the action's pooled effect, offset as the catalogue offsets them."""
    learned = []
    for action in catalogue:
        rows = effects[effects["action"] == action.name]
        if rows.empty:
            learned.append(action)
            continue
        # a segment no campaign reached takes the action's pooled effect, offset as in the catalogue
        shift = float(rows["pooled_effect"].iloc[0]) - action.effect
        by_segment = {**{s: e + shift for s, e in action.effect_by_segment.items()}, **dict(zip(rows["segment"], rows["effect"].astype(float)))}
        learned.append(dataclasses.replace(action, effect=action.effect + shift, effect_by_segment=by_segment))
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
        "each action shrunk toward the catalogue's effect and each segment toward its action's"
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
            "pooled_effect": pandera.Column(float, description="The action's effect learned over all its segments, shrunk toward the catalogue's"),
            "effect": pandera.Column(float, description="Shrunk toward the prior: what a measured-effect plan uses"),
            "effect_low": pandera.Column(float),
            "effect_high": pandera.Column(float),
        },
        name="action_effects", unique=["snapshot_date", "action", "segment"], strict=True, ordered=True, coerce=True,
    )
