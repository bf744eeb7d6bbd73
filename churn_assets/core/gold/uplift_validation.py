"""The uplift model's out-of-time test: validated on the newest matured campaigns it never saw, by
the Qini curve and the area under it (AUUC), against the segment estimates, "highest churn risk
first" and random targeting, with bootstrap intervals of its gain.

Qini and AUUC are a few lines of numpy here: scikit-uplift, the library that has them, has had no
release since 2022 and predates the pinned scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.gold.action_effects import UNKNOWN_SEGMENT, learned_catalogue, learned_effects
from churn_assets.core.gold.plan import Action
from churn_assets.core.gold.uplift import TEXT, fit_uplift_model, outcome_model
from churn_assets.core.ml.candidates import informative_features, model_inputs

MIN_TEST_CONTROLS = 100  # fewer controls than this and a Qini curve is mostly noise
BOOTSTRAP_RESAMPLES = 400
POLICIES = ("uplift model", "segment estimates", "highest risk first", "random")


def qini_curve(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> pd.DataFrame:
    """Customers retained by treating the highest-``score`` share of a randomised sample (the
    Qini curve, churn prevented): at each cut, control churners scaled to the treated count
    minus treated churners. Ties are broken by sample order."""
    retained = _retained(np.asarray(score, float), np.asarray(treated, bool), np.asarray(churned))
    return pd.DataFrame({"share": np.linspace(0, 1, len(retained)), "retained": retained})


def _retained(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> np.ndarray:
    """The Qini curve's heights, from 0 at no one treated: numpy only, as the bootstrap calls it thousands of times."""
    order = np.argsort(-score, kind="stable")
    t, y = treated[order], churned[order].astype(float)
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    return np.concatenate([[0.0], np.where(n_c > 0, np.cumsum(y * ~t) * n_t / np.maximum(n_c, 1), 0.0) - np.cumsum(y * t)])


def auuc(curve: pd.DataFrame, treated_count: int) -> float:
    """Area under a Qini curve per treated customer (trapezoids over the targeted share)."""
    if treated_count == 0:
        return math.nan
    return float(np.trapezoid(curve["retained"], curve["share"]) / treated_count)


def random_auuc(curve: pd.DataFrame, treated_count: int) -> float:
    """AUUC of random targeting: the straight line to the curve's end."""
    return float(curve["retained"].iloc[-1] / 2 / treated_count) if treated_count else math.nan


@dataclass
class Validation:
    """The out-of-time test: one row per action (``uplift_validation_schema``), and per action
    the Qini curve of each ranked policy."""

    table: pd.DataFrame
    curves: dict[str, dict[str, pd.DataFrame]]
    note: str


def validate_out_of_time(
    contacts: pd.DataFrame, actions: tuple[Action, ...], snapshot: date, prior_sd: float, segment_sd: float, seed: int
) -> Validation:
    """Learn from all but the newest matured campaigns and test on the newest ones (at least
    ``MIN_TEST_CONTROLS`` controls): per action, the AUUC of ranking by the uplift model, by the
    segment estimates learned on the same campaigns (churn risk x effect), by churn risk alone,
    and at random. ``uses_uplift`` where the model beats the segment estimates: the 95% bootstrap
    interval of its AUUC gain over them lies above zero."""
    campaigns = sorted(contacts["campaign"].unique()) if len(contacts) else []
    test_from = _test_campaigns(contacts, campaigns)
    if test_from is None:
        return _without_test(actions, snapshot, f"{len(campaigns)} matured campaign(s) cannot give both a campaign to learn "
                             f"from and newer ones with {MIN_TEST_CONTROLS} controls to test on")
    train, test = contacts[contacts["campaign"] < test_from], contacts[contacts["campaign"] >= test_from]
    try:
        learner = fit_uplift_model(train, actions, seed)
        # churn risk as the churn model sees it: every informative feature
        risk_model = outcome_model(informative_features(train)[0], seed).fit(model_inputs(train), train["churned"].to_numpy(int))
    except ValueError as exc:
        return _without_test(actions, snapshot, f"no uplift model: {exc}")
    learned = _learned_on(train, actions, snapshot, prior_sd, segment_sd)
    risk = risk_model.predict_proba(model_inputs(test))[:, 1]
    uplift = learner.uplift(test, actions)
    rows, curves = [], {}
    for j, action in enumerate(actions):
        mine = (test["action"] == action.name).to_numpy()
        cell = test[mine]
        treated, churned = ~cell["is_control"].to_numpy(bool), cell["churned"].to_numpy(int)
        segment = cell["segment"].astype(object).where(cell["segment"].notna(), UNKNOWN_SEGMENT).to_numpy()
        scores = {
            "uplift model": uplift[mine, j],
            "segment estimates": risk[mine] * learned[j].effects(segment),
            "highest risk first": risk[mine],
        }
        row = {"snapshot_date": pd.Timestamp(snapshot), "action": action.name, "test_campaigns": len(campaigns) - campaigns.index(test_from),
               "train_contacts": int((train["action"] == action.name).sum()), "test_treated": int(treated.sum()),
               "test_controls": int((~treated).sum())}
        if action.name not in learner.effect or treated.all() or not treated.any():
            why = learner.skipped.get(action.name, "the test campaigns have no treated or no control customer of it")
            rows.append({**row, **_no_auuc(), "uses_uplift": False, "reason": f"not tested: {why}"})
            continue
        curves[action.name] = {name: qini_curve(s, treated, churned) for name, s in scores.items()}
        found = {name: auuc(c, int(treated.sum())) for name, c in curves[action.name].items()}
        found["random"] = random_auuc(curves[action.name]["uplift model"], int(treated.sum()))
        low, high = gain_interval(scores["uplift model"], scores["segment estimates"], treated, churned, seed)
        beats = low > 0
        rows.append({**row, **{_column(n): v for n, v in found.items()}, "auuc_gain_low": low, "auuc_gain_high": high,
                     "uses_uplift": bool(beats), "reason": (
            f"AUUC {found['uplift model']:.4f} against the segment estimates' {found['segment estimates']:.4f}: the gain's "
            f"95% interval [{low:+.4f}, {high:+.4f}] {'is above zero' if beats else 'reaches zero or below'}"
        )})
    note = f"learned from {campaigns.index(test_from)} campaign(s), tested on the {len(campaigns) - campaigns.index(test_from)} newest"
    return Validation(_table(rows), curves, note)


def gain_interval(
    score: np.ndarray, baseline: np.ndarray, treated: np.ndarray, churned: np.ndarray, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """95% bootstrap interval of AUUC(``score``) - AUUC(``baseline``), resampling the treated and
    the controls each with replacement (so both keep their sizes)."""
    rng = np.random.default_rng(seed)
    treated = np.asarray(treated, bool)
    groups = [np.flatnonzero(treated), np.flatnonzero(~treated)]
    gains = np.empty(resamples)
    for b in range(resamples):
        rows = np.concatenate([rng.choice(g, g.size) for g in groups])
        t, y = treated[rows], churned[rows]
        gains[b] = _auuc_of(score[rows], t, y) - _auuc_of(baseline[rows], t, y)
    low, high = np.percentile(gains, [2.5, 97.5])
    return float(low), float(high)


def _auuc_of(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> float:
    """``auuc(qini_curve(...))`` without building a frame."""
    retained = _retained(score, treated, churned)
    return float(np.trapezoid(retained, np.linspace(0, 1, len(retained))) / max(int(treated.sum()), 1))


def _test_campaigns(contacts: pd.DataFrame, campaigns: list) -> object | None:
    """The oldest campaign of the newest ones that together hold ``MIN_TEST_CONTROLS`` controls,
    leaving at least one older campaign to learn from; None when there is no such split."""
    if len(campaigns) < 2:
        return None
    controls = contacts[contacts["is_control"]].groupby("campaign").size()
    held = 0
    for k in range(len(campaigns) - 1, 0, -1):
        held += int(controls.get(campaigns[k], 0))
        if held >= MIN_TEST_CONTROLS:
            return campaigns[k]
    return None


def _learned_on(
    train: pd.DataFrame, actions: tuple[Action, ...], snapshot: date, prior_sd: float, segment_sd: float
) -> tuple[Action, ...]:
    """The actions with the effects learned on the training campaigns only, as a plan would use them."""
    frame = train.assign(segment=train["segment"].astype(object).where(train["segment"].notna(), UNKNOWN_SEGMENT))
    churned = frame["churned"].astype(int)
    # the training campaigns are already in memory (a subset of the matured ones); counted here, as
    # matured_contacts_sql counts all of them in the warehouse
    cells = frame.assign(
        treated_churned=churned.where(~frame["is_control"], 0), controls_churned=churned.where(frame["is_control"], 0),
        treated=(~frame["is_control"]).astype(int), controls=frame["is_control"].astype(int),
    ).groupby(["action", "segment"], as_index=False).agg(
        campaigns=("campaign", "nunique"), treated=("treated", "sum"), controls=("controls", "sum"),
        treated_churned=("treated_churned", "sum"), controls_churned=("controls_churned", "sum"),
    )
    return learned_catalogue(actions, learned_effects(cells, actions, snapshot, prior_sd, segment_sd))


def _column(policy: str) -> str:
    return "auuc_" + {"uplift model": "uplift", "segment estimates": "segments", "highest risk first": "risk", "random": "random"}[policy]


def _no_auuc() -> dict[str, float]:
    return {**{_column(p): math.nan for p in POLICIES}, "auuc_gain_low": math.nan, "auuc_gain_high": math.nan}


def _without_test(actions: tuple[Action, ...], snapshot: date, why: str) -> Validation:
    rows = [{"snapshot_date": pd.Timestamp(snapshot), "action": a.name, "test_campaigns": 0, "train_contacts": 0,
             "test_treated": 0, "test_controls": 0, **_no_auuc(), "uses_uplift": False, "reason": f"not tested: {why}"}
            for a in actions]
    return Validation(_table(rows), {}, why)


def _table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(uplift_validation_schema().columns))


def uplift_validation_schema() -> pandera.DataFrameSchema:
    auuc_column = dict(nullable=True, description="Area under the Qini curve per treated customer, on the test campaigns")
    return pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]", description="The plan month this validation is for"),
            "action": pandera.Column(TEXT),
            "test_campaigns": pandera.Column("int64", pandera.Check.ge(0), description="Newest matured campaigns held out"),
            "train_contacts": pandera.Column("int64", pandera.Check.ge(0), description="Contacts of this action learned from"),
            "test_treated": pandera.Column("int64", pandera.Check.ge(0)),
            "test_controls": pandera.Column("int64", pandera.Check.ge(0)),
            "auuc_uplift": pandera.Column(float, **auuc_column),
            "auuc_segments": pandera.Column(float, **auuc_column),
            "auuc_risk": pandera.Column(float, **auuc_column),
            "auuc_random": pandera.Column(float, **auuc_column),
            "auuc_gain_low": pandera.Column(float, nullable=True, description="95% bootstrap interval of the uplift model's AUUC minus the segment estimates'"),
            "auuc_gain_high": pandera.Column(float, nullable=True),
            "uses_uplift": pandera.Column(bool, description="The plan's 'uplift' source uses the model for this action"),
            "reason": pandera.Column(TEXT),
        },
        name="uplift_validation", unique=["snapshot_date", "action"], strict=True, ordered=True, coerce=True,
    )
