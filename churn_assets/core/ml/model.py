"""The churn model's selection: every calibrated candidate scored out-of-time against simpler
references, the best by ROC-AUC chosen.

No Dagster and no MLflow here: plain functions on DataFrames, so every rule is tested directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from churn_assets.core.ml.btyd import BTYDUnavailable, fit_bgnbd, repeat_summary
from churn_assets.core.ml.candidates import (
    BTYD_FIT_CUSTOMERS,
    CANDIDATES,
    candidate_models,
    fit_calibrated,
    informative_features,
    model_inputs,
)
from churn_assets.core.ml.metrics import evaluate, ranking_metrics
from churn_assets.core.ml.training_window import NotEnoughHistory, TrainingWindow


PRIMARY_METRIC = "roc_auc"

@dataclass
class Candidate:
    """One fitted candidate and how it did out-of-time."""

    name: str
    model: CalibratedClassifierCV
    metrics: dict[str, float]
    validation_probability: np.ndarray = field(repr=False)
    random_split_roc_auc: float = float("nan")

@dataclass
class TrainingResult:
    """Every candidate, the chosen one, the reference scores and what the features were."""

    window: TrainingWindow
    candidates: dict[str, Candidate]
    chosen: str
    references: dict[str, dict[str, float]]  # recency_only, btyd_bgnbd, rfm_logistic
    train_rows: int
    validation_rows: int
    validation_churned: np.ndarray = field(repr=False)
    features: list[str] = field(default_factory=list)
    dropped_features: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # variants that could not be tried, and why

    @property
    def best(self) -> Candidate:
        return self.candidates[self.chosen]

    @property
    def recency_only(self) -> dict[str, float]:
        return self.references["recency_only"]

    @property
    def random_split_roc_auc(self) -> float:
        return self.best.random_split_roc_auc

    @property
    def beats_recency_only(self) -> bool:
        return self.best.metrics["roc_auc"] > self.recency_only["roc_auc"]

    @property
    def uses_btyd_features(self) -> bool:
        return self.chosen.endswith(BTYD_SUFFIX)

BTYD_SUFFIX = "_with_btyd"

RFM_FEATURES = ("recency_days", "frequency", "monetary", "tenure_days")

MIN_CLASS_ROWS = 10

def train_and_select(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    window: TrainingWindow,
    *,
    seed: int,
    threshold: float,
    contact_cost: float,
    action_effect: float,
    candidates: tuple[str, ...] = CANDIDATES,
    horizon_days: int = 90,
    btyd_features: bool = False,
) -> TrainingResult:
    """Fit each calibrated candidate on ``train`` (on the features that vary there; with
    ``btyd_features`` also a variant that adds the BG/NBD features), score it on ``validation``
    (out-of-time) and choose the best by ROC-AUC. Both frames hold the feature columns plus
    ``churned``. Raises ``NotEnoughHistory`` when the rows cannot train a model."""
    unknown = sorted(set(candidates) - set(CANDIDATES))
    if unknown or not candidates:
        raise ValueError(f"unknown model candidates {unknown or candidates}; choose from {list(CANDIDATES)}")
    for name, frame in (("training", train), ("validation", validation)):
        counts = frame["churned"].value_counts()
        if len(counts) < 2:
            raise NotEnoughHistory(f"the {name} data has a single class; a model needs churners and non-churners")
        if name == "training" and counts.min() < MIN_CLASS_ROWS:
            raise NotEnoughHistory(
                f"the training data has {counts.min()} {'churners' if counts.idxmin() == 1 else 'non-churners'}; "
                f"a model needs at least {MIN_CLASS_ROWS} of each"
            )
    x_train, y_train = model_inputs(train), train["churned"].to_numpy()
    x_valid, y_valid = model_inputs(validation), validation["churned"].to_numpy()
    features, dropped = informative_features(x_train)
    if not features:
        raise NotEnoughHistory(f"no feature varies in the training rows: {dropped}")
    value = validation["spend_180d"].to_numpy(dtype=float)
    fitted, notes = {}, []
    variants = [(name, None) for name in candidates]
    if btyd_features:
        variants += [(name + BTYD_SUFFIX, horizon_days) for name in candidates]
    for label, btyd in variants:
        pipeline = candidate_models(seed, features, btyd)[label.removesuffix(BTYD_SUFFIX)]
        try:
            model, split_auc = fit_calibrated(pipeline, x_train, y_train, seed)
        except BTYDUnavailable as exc:
            notes.append(f"{label} not tried: {exc}")
            continue
        probability = model.predict_proba(x_valid)[:, 1]
        metrics = evaluate(y_valid, probability, threshold, value, contact_cost, action_effect)
        fitted[label] = Candidate(label, model, metrics, probability, split_auc)
    chosen = max(fitted, key=lambda n: (fitted[n].metrics[PRIMARY_METRIC], -list(fitted).index(n)))
    return TrainingResult(
        window=window,
        candidates=fitted,
        chosen=chosen,
        references=reference_scores(x_train, y_train, x_valid, y_valid, horizon_days, seed),
        train_rows=len(train),
        validation_rows=len(validation),
        validation_churned=y_valid,
        features=features,
        dropped_features=dropped,
        notes=notes,
    )

def reference_scores(
    x_train: pd.DataFrame, y_train: np.ndarray, x_valid: pd.DataFrame, y_valid: np.ndarray, horizon_days: int, seed: int
) -> dict[str, dict[str, float]]:
    """What simpler scores reach on the same validation rows: recency alone, BG/NBD's
    probability of no purchase within the horizon (fitted on the training rows), and a logistic
    regression on recency, frequency, monetary value and tenure only."""
    references = {"recency_only": ranking_metrics(y_valid, x_valid["recency_days"].to_numpy(), probability=False)}
    try:
        bgnbd = fit_bgnbd(*repeat_summary(x_train), max_customers=BTYD_FIT_CUSTOMERS, seed=seed)
        references["btyd_bgnbd"] = ranking_metrics(
            y_valid, bgnbd.p_no_purchase(*repeat_summary(x_valid), horizon_days)
        )
    except BTYDUnavailable:  # too few repeat buyers to fit; the other references still stand
        pass
    rfm = Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("model", LogisticRegression(max_iter=2000, random_state=seed)),
    ]).fit(x_train[list(RFM_FEATURES)], y_train)
    references["rfm_logistic"] = ranking_metrics(y_valid, rfm.predict_proba(x_valid[list(RFM_FEATURES)])[:, 1])
    return references

def metrics_table(result: TrainingResult) -> pd.DataFrame:
    """Out-of-time metrics of every candidate and of the reference scores, plus the random split."""
    table = pd.DataFrame({name: c.metrics for name, c in result.candidates.items()})
    for name, metrics in result.references.items():
        table[name] = pd.Series(metrics)
    for name, candidate in result.candidates.items():
        table.loc["roc_auc_random_80_20_split", name] = candidate.random_split_roc_auc
    return table
