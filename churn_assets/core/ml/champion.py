"""The registered churn model as a self-contained scorer: raw history in, probability, risk,
reasons and the best retention action out.

``score_history`` is the contract. The registry stores it as the MLflow pyfunc of
``champion_model.py``, so ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` run exactly
what ``churn-assets score`` runs. No Dagster and no MLflow here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd

from churn_assets.core.ml.explain import scores_and_contributions, top_reasons
from churn_assets.core.ml.candidates import model_inputs
from churn_assets.core.ml.metrics import risk_segments
from churn_assets.core.gold.plan import NO_ACTION, Action, action_options, parse_actions
from churn_assets.core.silver.raw_history import history_features
from churn_assets.core.ingestion.sources import TimestampRules
from churn_assets.core.gold.value import run_rate_value

SCORE_COLUMNS = (
    "customer_id", "as_of", "churn_probability", "risk_segment", "reason_1", "reason_2", "reason_3",
    "expected_value", "action", "action_cost", "expected_net_value", "model_snapshot",
)
CARD_FILE = "champion_card.json"
PIPELINE_FILE = "pipeline.skops"


@dataclass(frozen=True)
class ChampionCard:
    """What a registered model needs besides its fitted pipeline, fixed when it was trained."""

    model_snapshot: str
    typical: dict  # the typical value of each feature a reason may name
    risk_cutoffs: tuple[float, float]
    max_abs_amount: float
    timestamp_formats: tuple[str, ...]
    timezone: str
    value_days: int
    actions: str  # the action catalogue at training, as JSON (``actions_json``)
    trusted_types: tuple[str, ...]  # library types the pipeline file may hold

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ChampionCard:
        raw = json.loads(text)
        return cls(**{**raw, "risk_cutoffs": tuple(raw["risk_cutoffs"]),
                      "timestamp_formats": tuple(raw["timestamp_formats"]), "trusted_types": tuple(raw["trusted_types"])})

    @property
    def timestamps(self) -> TimestampRules:
        return TimestampRules(self.timestamp_formats, self.timezone)


def score_history(
    pipeline, card: ChampionCard, history: pd.DataFrame, as_of: date, actions: tuple[Action, ...] | None = None,
    connection=None,
) -> pd.DataFrame:
    """One row per customer in ``history`` (``SCORE_COLUMNS``): the score as of ``as_of`` with the
    same features, probability and reasons the monthly batch gives, and the action with the most
    expected net value under ``actions`` (default: the card's catalogue), or no_action when none
    pays. Raises ``ScoringError`` naming the field at fault."""
    features = history_features(
        history, as_of, max_abs_amount=card.max_abs_amount, timestamps=card.timestamps, connection=connection
    )
    inputs = model_inputs(features)  # the values reasons perturb and name, as the batch's
    probability, effects = scores_and_contributions(lambda x: pipeline.predict_proba(x)[:, 1], inputs, card.typical)
    reasons = top_reasons(inputs, effects)
    value = run_rate_value(features, card.value_days)
    action, cost, net = best_actions(features, probability, value, actions or parse_actions(card.actions))
    return pd.DataFrame({
        "customer_id": features["customer_id"].astype(str).to_numpy(),
        "as_of": as_of.isoformat(),
        "churn_probability": probability.round(6),
        "risk_segment": risk_segments(probability, *card.risk_cutoffs),
        **{k: reasons[k].to_numpy() for k in ("reason_1", "reason_2", "reason_3")},
        "expected_value": value.round(2),
        "action": action,
        "action_cost": cost.round(2),
        "expected_net_value": net.round(2),
        "model_snapshot": card.model_snapshot,
    }, columns=list(SCORE_COLUMNS))


def best_actions(
    features: pd.DataFrame, probability: np.ndarray, value: np.ndarray, actions: tuple[Action, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer the action of most expected net value (the plan's options, without its budget),
    its cost and net value; no_action at zero where no action has positive net value."""
    options = action_options(pd.DataFrame({
        "churn_probability": probability, "expected_value": value, "avg_order_value": features["avg_order_value"],
        "segment": features["segment"], "marketing_opt_in": features["marketing_opt_in"],
    }), actions)
    best = options.net.argmax(axis=1)
    rows = np.arange(len(best))
    pays = options.net[rows, best] > 0
    names = np.array([a.name for a in actions], dtype=object)
    return (
        np.where(pays, names[best], NO_ACTION),
        np.where(pays, options.cost[rows, best], 0.0),
        np.where(pays, options.net[rows, best], 0.0),
    )
