"""The candidate models as sklearn pipelines, the inputs they take and their calibrated fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from churn_assets.core.ml.btyd import BTYD_FEATURES, BTYDFeatures
from churn_assets.core.silver.features import FEATURE_COLUMNS


CATEGORICAL_FEATURES = ("segment",)

NUMERIC_FEATURES = tuple(c for c in FEATURE_COLUMNS if c not in CATEGORICAL_FEATURES)

CANDIDATES = ("logistic_regression", "gradient_boosting")

# BG/NBD has four parameters: 10,000 customers pin them down (a fit on 50,000 took 0.9 s, this 0.2 s).
BTYD_FIT_CUSTOMERS = 10_000

def model_inputs(features: pd.DataFrame) -> pd.DataFrame:
    """The feature columns in the plain dtypes the models and the MLflow signature expect."""
    # built from a dict in one go: adding 22 columns one by one cost 8 ms for a single customer
    columns = {c: pd.to_numeric(features[c], errors="coerce").astype("float64") for c in NUMERIC_FEATURES}
    for column in CATEGORICAL_FEATURES:
        columns[column] = features[column].astype(object).where(features[column].notna(), "unknown")
    return pd.DataFrame(columns, index=features.index)

def with_input_coercion(model) -> Pipeline:
    """``model`` behind a step that turns feature rows of any dtypes into ``model_inputs``: the
    pipeline the registry stores, so a caller needs no coercion of its own."""
    return Pipeline([("inputs", FunctionTransformer(model_inputs)), ("model", model)])

def informative_features(frame: pd.DataFrame, columns: tuple[str, ...] = FEATURE_COLUMNS) -> tuple[list[str], dict[str, str]]:
    """The ``columns`` a model can learn from in ``frame`` (its training rows), and why each other
    one is left out: null in every row, or a single value in every row. A source that did not
    land (no customers file, no web sessions) leaves its features so."""
    kept, dropped = [], {}
    for column in columns:
        values = frame[column]
        if values.isna().all():
            dropped[column] = "null in every training row"
        elif values.nunique(dropna=False) < 2:
            dropped[column] = f"the same value ({values.iloc[0]}) in every training row"
        else:
            kept.append(column)
    return kept, dropped

def dropped_features_table(dropped: dict[str, str]) -> pd.DataFrame:
    """The features a model left out and why, one row each."""
    return pd.DataFrame({"feature": list(dropped), "reason": list(dropped.values())}, columns=["feature", "reason"])

def candidate_models(
    seed: int, features: list[str] | None = None, btyd_horizon_days: int | None = None
) -> dict[str, Pipeline]:
    """The interpretable baseline and a gradient-boosted model on ``features`` (default: all), as
    sklearn pipelines that take the frame of ``model_inputs``; with ``btyd_horizon_days`` each
    first adds the BG/NBD features fitted on its training rows."""
    features = list(FEATURE_COLUMNS) if features is None else features
    numeric = [c for c in features if c in NUMERIC_FEATURES]
    categorical = [c for c in features if c in CATEGORICAL_FEATURES]
    head = []
    if btyd_horizon_days is not None:
        head = [("btyd", BTYDFeatures(btyd_horizon_days, BTYD_FIT_CUSTOMERS, seed))]
        numeric += list(BTYD_FEATURES)
    logistic = Pipeline([*head,
        ("prepare", ColumnTransformer([
            ("numbers", Pipeline([
                ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]), numeric),
            ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
        ])),
        ("model", LogisticRegression(max_iter=2000, C=0.5)),
    ])
    boosting = Pipeline([*head,
        ("prepare", ColumnTransformer([
            ("numbers", "passthrough", numeric),
            ("categories", OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
            ), categorical),
        ])),
        ("model", HistGradientBoostingClassifier(
            # 0.15 rather than 0.08: half the trees (each costs every prediction), ROC-AUC -0.0002
            max_iter=300, learning_rate=0.15, max_leaf_nodes=31, l2_regularization=1.0,
            early_stopping=True, validation_fraction=0.1, n_iter_no_change=15,
            categorical_features=[len(numeric) + i for i in range(len(categorical))] or None, random_state=seed,
        )),
    ])
    return {"logistic_regression": logistic, "gradient_boosting": boosting}

def fit_calibrated(model: Pipeline, inputs: pd.DataFrame, churned: np.ndarray, seed: int) -> tuple[CalibratedClassifierCV, float]:
    """``model`` fitted on a seeded, stratified 80% of the rows and calibrated on the other 20%;
    also the uncalibrated model's ROC-AUC on that 20%, the seeds' random 80/20 split (reported,
    never used to choose). One fit instead of cross-fitting three and refitting for the split;
    isotonic calibration from 1,000 held-out rows, Platt scaling below (isotonic overfits there)."""
    x_fit, x_held, y_fit, y_held = train_test_split(
        inputs, churned, test_size=0.2, random_state=seed, stratify=churned
    )
    fitted = clone(model).fit(x_fit, y_fit)
    raw = fitted.predict_proba(x_held)[:, 1]
    method = "isotonic" if len(y_held) >= 1000 else "sigmoid"
    # frozen, the model is not refitted; one calibrator learns from every held-out row
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted), method=method, cv=2, ensemble=False).fit(x_held, y_held)
    return calibrated, float(roc_auc_score(y_held, raw))

def fitted_pipeline(model: CalibratedClassifierCV) -> Pipeline:
    """The fitted sklearn pipeline inside a calibrated model."""
    return model.calibrated_classifiers_[0].estimator.estimator
