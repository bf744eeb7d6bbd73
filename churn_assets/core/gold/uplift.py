"""A per-customer uplift model learned from randomised campaign contacts.

An X-learner on scikit-learn: churn models for the controls (pooled over actions: a control is
not contacted, whatever action it kept) and per action for its treated customers impute each
contact's churn prevented, which two ridge regressions learn from the customers' features; their
blend, weighted toward the one learned on the scarcer controls, is a customer's uplift of the
action (the churn it prevents). A plan uses it only for the actions where its out-of-time test
(``uplift_validation``) shows it beats the segment estimates there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churn_assets.core.silver.features import FEATURE_COLUMNS
from churn_assets.core.ml.candidates import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    candidate_models,
    informative_features,
    model_inputs,
)
from churn_assets.core.gold.plan import Action
from churn_assets.core.tables import SILVER_CAMPAIGN_CONTACTS, SILVER_CHURN_LABELS, SILVER_CUSTOMER_FEATURES

TEXT = pd.StringDtype("pyarrow")
MIN_GROUP_ROWS = 20  # a learner needs this many rows, with both outcomes, to be fitted at all
# A few thousand contacts carry only a compact model: on the default sample these inputs ranked
# customers by their true uplift better than all the churn model's features (benchmarks/README.md).
UPLIFT_FEATURES = ("recency_days", "frequency", "monetary", "tenure_days", "orders_90d", "marketing_opt_in", "segment")


def matured_contacts_sql(snapshot: date, horizon_days: int) -> str:
    """Every contact of the campaigns whose churn horizon ended by ``snapshot``: campaign, action,
    control or not, churned, and the customer's features at the campaign's snapshot."""
    last = snapshot - timedelta(days=horizon_days)
    features = ", ".join(f"f.{c}" for c in FEATURE_COLUMNS)
    return f"""
        select c.snapshot_date as campaign, c.customer_id, c.action, c.is_control, l.churned, {features}
        from {SILVER_CAMPAIGN_CONTACTS} c
        join {SILVER_CHURN_LABELS} l on l.snapshot_date = c.snapshot_date and l.customer_id = c.customer_id
        join {SILVER_CUSTOMER_FEATURES} f on f.snapshot_date = c.snapshot_date and f.customer_id = c.customer_id
        where c.snapshot_date <= date '{last.isoformat()}'
        order by c.snapshot_date, c.customer_id
    """


@dataclass
class XLearner:
    """The fitted models: the churn ``outcome`` models (controls and, per action, its treated), and
    per action the two ``effect`` models of churn prevented, weighted by the ``treated_share``.
    Actions with too few treated customers to learn from are ``skipped``, with why."""

    effect: dict[str, tuple[object, object]]
    treated_share: dict[str, float]
    features: list[str]
    skipped: dict[str, str] = field(default_factory=dict)

    def uplift(self, customers: pd.DataFrame, actions: tuple[Action, ...]) -> np.ndarray:
        """Churn prevented per customer (row) and action (column); nan for an action without a model."""
        inputs = model_inputs(customers)
        columns = []
        for action in actions:
            if action.name not in self.effect:
                columns.append(np.full(len(inputs), np.nan))
                continue
            from_controls, from_treated = self.effect[action.name]
            g = self.treated_share[action.name]
            columns.append(g * from_controls.predict(inputs) + (1 - g) * from_treated.predict(inputs))
        return np.column_stack(columns) if columns else np.zeros((len(inputs), 0))


def outcome_model(features: list[str], seed: int):
    # regularised logistic regression: a campaign's controls are a few hundred rows, too few for boosting
    return clone(candidate_models(seed, features)["logistic_regression"])


def _effect_model(features: list[str]) -> Pipeline:
    numeric = [c for c in features if c in NUMERIC_FEATURES]
    categorical = [c for c in features if c in CATEGORICAL_FEATURES]
    return Pipeline([
        ("prepare", ColumnTransformer([
            ("numbers", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
        ])),
        ("model", Ridge(alpha=10.0)),
    ])


def fit_uplift_model(contacts: pd.DataFrame, actions: tuple[Action, ...], seed: int) -> XLearner:
    """The X-learner (Kunzel et al. 2019) on ``contacts`` (``matured_contacts_sql`` rows): suited to
    groups of very different sizes, as a campaign's few controls and many treated. Raises
    ValueError saying why when the controls cannot carry a model."""
    features, _ = informative_features(contacts, UPLIFT_FEATURES)
    if not features:
        raise ValueError(f"none of {', '.join(UPLIFT_FEATURES)} varies across the contacts")
    inputs = model_inputs(contacts)
    churned = contacts["churned"].to_numpy(int)
    control = contacts["is_control"].to_numpy(bool)
    reason = _unfit_reason(churned[control])
    if reason:
        raise ValueError(f"the controls {reason}")
    untreated = outcome_model(features, seed).fit(inputs[control], churned[control])
    effect, share, skipped = {}, {}, {}
    for action in actions:
        rows = ~control & (contacts["action"].to_numpy(object) == action.name)
        reason = _unfit_reason(churned[rows])
        if reason:
            skipped[action.name] = f"its treated customers {reason}"
            continue
        treated = outcome_model(features, seed).fit(inputs[rows], churned[rows])
        # churn prevented, imputed: for the treated against the untreated model, for the controls against the treated one
        from_treated = _effect_model(features).fit(inputs[rows], untreated.predict_proba(inputs[rows])[:, 1] - churned[rows])
        from_controls = _effect_model(features).fit(inputs[control], churned[control] - treated.predict_proba(inputs[control])[:, 1])
        effect[action.name] = (from_controls, from_treated)
        share[action.name] = float(rows.sum() / (rows.sum() + control.sum()))
    return XLearner(effect, share, features, skipped)


def _unfit_reason(churned: np.ndarray) -> str | None:
    if len(churned) < MIN_GROUP_ROWS:
        return f"are {len(churned)} rows, fewer than {MIN_GROUP_ROWS}"
    if churned.min() == churned.max():
        return "all have the same outcome"
    return None


def uplift_matrix(contacts: pd.DataFrame, customers: pd.DataFrame, actions: tuple[Action, ...], validated: set[str], seed: int) -> tuple[np.ndarray, str]:
    """The churn each customer's action would prevent, by the T-learner fitted on all matured
    ``contacts``, for the ``validated`` actions (nan elsewhere: the segment estimates hold), and
    in words what was used."""
    if not validated:
        return np.full((len(customers), len(actions)), np.nan), "no action's uplift model beat the segment estimates out-of-time"
    try:
        learner = fit_uplift_model(contacts, actions, seed)
    except ValueError as exc:
        return np.full((len(customers), len(actions)), np.nan), f"no uplift model: {exc}"
    uplift = learner.uplift(customers, actions)
    used = [a.name for a in actions if a.name in validated and a.name in learner.effect]
    uplift[:, [j for j, a in enumerate(actions) if a.name not in used]] = np.nan
    return uplift, f"uplift model for {', '.join(used) or 'no action'} ({len(contacts):,} contacts)"
