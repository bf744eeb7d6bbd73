"""Scoring one snapshot: a calibrated churn probability, a risk segment and three reasons per customer."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.ml.explain import scores_and_contributions, top_reasons
from churn_assets.core.ml.candidates import model_inputs
from churn_assets.core.ml.metrics import risk_segments

PREDICTION_COLUMNS = (
    "snapshot_date", "customer_id", "churn_probability", "risk_segment", "model_version",
    "reason_1", "reason_2", "reason_3",
)


def score_snapshot(
    model, features: pd.DataFrame, *, model_version: str, cutoffs: tuple[float, float], typical: dict
) -> pd.DataFrame:
    """One row per feature row: probability from ``model``, Low/Medium/High, and top reasons."""
    if features.empty:
        return empty_predictions()
    inputs = model_inputs(features)
    probability, effects = scores_and_contributions(lambda x: model.predict_proba(x)[:, 1], inputs, typical)
    scored = pd.DataFrame({
        "snapshot_date": features["snapshot_date"].to_numpy(),
        "customer_id": features["customer_id"].to_numpy(),
        "churn_probability": probability.round(6),
        "risk_segment": risk_segments(probability, *cutoffs),
        "model_version": model_version,
    })
    reasons = top_reasons(inputs, effects).reset_index(drop=True)
    return _typed(pd.concat([scored, reasons], axis=1))


def empty_predictions() -> pd.DataFrame:
    """A predictions table with no rows, for a snapshot without a model or without customers."""
    return _typed(pd.DataFrame({c: pd.Series(dtype=object) for c in PREDICTION_COLUMNS}))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return predictions_schema().validate(frame[list(PREDICTION_COLUMNS)])


def predictions_schema() -> pandera.DataFrameSchema:
    text = pd.StringDtype("pyarrow")
    return pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]"),
            "customer_id": pandera.Column(text),
            "churn_probability": pandera.Column(float, pandera.Check.in_range(0, 1), description="calibrated"),
            "risk_segment": pandera.Column(text, pandera.Check.isin(["Low", "Medium", "High"])),
            "model_version": pandera.Column(text, description="churn_model version in the MLflow registry"),
            **{
                f"reason_{k}": pandera.Column(text, nullable=True, description=f"reason {k} for the score, in words")
                for k in (1, 2, 3)
            },
        },
        name="churn_predictions",
        unique=["snapshot_date", "customer_id"],
        strict=True,
        ordered=True,
        coerce=True,
    )
