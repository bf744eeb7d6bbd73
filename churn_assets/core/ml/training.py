"""One snapshot's model end to end: training data from the warehouse, candidates, plots, MLflow
run and registry version, champion gate; and scoring a snapshot with the version made for it.

No Dagster: the ``ml`` assets and the plain benchmark pipeline both call these two steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from churn_assets.core.ml import promotion, registry
from churn_assets.core.ml.champion import ChampionCard
from churn_assets.core.ml.drift import drift_report, reference_profile
from churn_assets.core.ml.explain import REASON_FEATURES, typical_values
from churn_assets.core.ml.candidates import dropped_features_table, model_inputs
from churn_assets.core.ml.champion_gate import GateDecision
from churn_assets.core.ml.importance import feature_importance, importance_by_feature
from churn_assets.core.ml.model import TrainingResult, metrics_table, train_and_select
from churn_assets.core.ml.training_window import TrainingWindow, labelled_features_sql, training_window
from churn_assets.core.ml.on_demand import warehouse_history
from churn_assets.core.gold.plan import actions_json
from churn_assets.core.plots import evaluation_figures, png_bytes
from churn_assets.core.ml.scoring import score_snapshot
from churn_assets.core.warehouse import query_frame, snapshot_dates
from churn_assets.core.tables import SILVER_CHURN_LABELS, SILVER_CUSTOMER_FEATURES

# Rows whose scores and feature values make the drift check's reference bins: quantile bins
# from 10,000 rows are as stable as from 50,000, for a fifth of the scoring.
PROFILE_ROWS = 10_000


# Customers whose raw history is the registered model's input example.
EXAMPLE_CUSTOMERS = 2


@dataclass
class TrainingData:
    window: TrainingWindow
    train: pd.DataFrame
    validation: pd.DataFrame
    history_example: pd.DataFrame  # raw history of a few validation customers


@dataclass
class TrainedModel:
    result: TrainingResult
    logged: registry.LoggedModel
    decision: GateDecision
    gate_metadata: dict
    figures: dict[str, bytes]
    metrics: pd.DataFrame


@dataclass
class ScoredSnapshot:
    predictions: pd.DataFrame
    drift: pd.Series
    model_version: str


def training_data(connection, settings, snapshot: date) -> TrainingData:
    """The labelled rows a model for ``snapshot`` may use. Raises ``NotEnoughHistory``."""
    labelled = snapshot_dates(connection, SILVER_CHURN_LABELS)
    window = training_window(snapshot, labelled, settings.churn_horizon_days, settings.training_months)
    train = query_frame(
        connection, labelled_features_sql(window.train, max_rows=settings.max_training_rows, seed=settings.seed)
    )
    validation = query_frame(connection, labelled_features_sql((window.validation,)))
    example = warehouse_history(connection, validation["customer_id"].head(EXAMPLE_CUSTOMERS).tolist())
    return TrainingData(window, train, validation, example)


def train_and_register(settings, data: TrainingData, tags: dict[str, str], plots: bool = True) -> TrainedModel:
    """Train and select out-of-time, log the run and a new registry version, then apply the
    champion gate; with ``plots`` also draw the evaluation figures (a second a model, so a run
    over many months draws them for its newest only). Raises ``NotEnoughHistory`` when the rows
    cannot train a model."""
    result = train_and_select(
        data.train, data.validation, data.window, seed=settings.seed, threshold=settings.decision_threshold,
        contact_cost=settings.contact_cost, action_effect=settings.action_effect,
        candidates=settings.candidate_list, horizon_days=settings.churn_horizon_days,
        btyd_features=settings.btyd_features,
    )
    x_train, x_valid = model_inputs(data.train), model_inputs(data.validation)
    importance = feature_importance(result, x_valid, settings.seed)
    figures = {
        name: png_bytes(fig)
        for name, fig in evaluation_figures(result, x_valid["recency_days"].to_numpy(), importance).items()
    } if plots else {}
    profiled = x_train.sample(min(len(x_train), PROFILE_ROWS), random_state=settings.seed)
    metrics = metrics_table(result)
    typical = typical_values(x_train, list(importance_by_feature(importance).index[:REASON_FEATURES]))
    logged = registry.log_training(
        settings.mlflow_tracking_uri,
        settings.mlflow_artifact_root,
        result,
        card=champion_card(settings, data.window.model_snapshot, typical),
        history_example=data.history_example,
        params={
            "horizon_days": settings.churn_horizon_days,
            "training_months": settings.training_months,
            "max_training_rows": settings.max_training_rows,
            "candidates": ",".join(settings.candidate_list),
            "decision_threshold": settings.decision_threshold,
            "seed": settings.seed,
            "btyd_features_offered": settings.btyd_features,
            "features_used": ",".join(result.features),
            "features_dropped": ",".join(result.dropped_features) or "none",
        },
        tags=tags,
        figures=figures,
        profile={
            "typical": typical,
            "drift": reference_profile(profiled, result.best.model.predict_proba(profiled)[:, 1]),
        },
        tables={
            "metrics": metrics.reset_index(),
            "importance": importance.rename("value").reset_index(),
            "dropped_features": dropped_features_table(result.dropped_features),
        },
    )
    decision, gate_metadata = promotion.apply_champion_gate(
        settings.mlflow_tracking_uri, logged.version, data.window.model_snapshot, result.best.metrics["roc_auc"],
        result.validation_churned, x_valid, settings.champion_tolerance,
    )
    return TrainedModel(result, logged, decision, gate_metadata, figures, metrics)


def champion_card(settings, snapshot: date, typical: dict) -> ChampionCard:
    """What a registered model scores raw history with (its trusted types come at logging)."""
    rules = settings.timestamp_rules
    return ChampionCard(
        model_snapshot=snapshot.isoformat(), typical=typical, risk_cutoffs=settings.risk_cutoff_pair,
        max_abs_amount=settings.max_abs_amount, timestamp_formats=rules.formats, timezone=rules.timezone,
        value_days=settings.value_horizon_days, actions=actions_json(settings.action_catalogue), trusted_types=(),
    )


def snapshot_features_sql(snapshot: str) -> str:
    return f"select * from {SILVER_CUSTOMER_FEATURES} where snapshot_date = date '{snapshot}' order by customer_id"


def score_with_registered_model(settings, snapshot: str, features: pd.DataFrame) -> ScoredSnapshot | None:
    """Score ``features`` with the version registered for ``snapshot`` (None when there is none),
    with reasons, and the drift of features and score against that version's training profile."""
    version = registry.version_for_snapshot(settings.mlflow_tracking_uri, snapshot)
    if version is None:
        return None
    model = registry.load_model(settings.mlflow_tracking_uri, version.version)
    profile = registry.load_profile(settings.mlflow_tracking_uri, version)
    scored = score_snapshot(
        model, features, model_version=version.version, cutoffs=settings.risk_cutoff_pair,
        typical=profile["typical"],
    )
    drift = drift_report(profile["drift"], model_inputs(features), scored["churn_probability"].to_numpy())
    return ScoredSnapshot(scored, drift, version.version)

