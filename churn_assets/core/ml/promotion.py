"""The champion gate applied to the registry: a new version is compared with the champion on the
same validation rows, tagged with the outcome, and promoted to the alias when it passes, all
under one lock."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock
from sklearn.metrics import roc_auc_score

from churn_assets.core.ml.champion_gate import GateDecision, champion_decision
from churn_assets.core.ml.registry import CHAMPION, GATE_TAG, MODEL_NAME, champion, client_for, load_model


def record_gate(tracking_uri: str, version: str, passed: bool) -> None:
    """Tag a version with its champion-gate outcome."""
    client_for(tracking_uri).set_model_version_tag(MODEL_NAME, version, GATE_TAG, "passed" if passed else "failed")


def apply_champion_gate(
    tracking_uri: str, version: str, snapshot: date, roc_auc: float, churned: np.ndarray,
    validation_inputs: pd.DataFrame, tolerance: float,
) -> tuple[GateDecision, dict]:
    """Score the current champion on ``version``'s validation rows, decide, record the outcome on
    the version and move the alias when it passes. Returns the decision and what it compared.

    Read, compare and promote happen under one lock: two overlapping runs must not both compare
    against the same old champion and then promote in the wrong order. Dagster's pool does not
    guarantee that (two processes were seen to claim its single SQLite-backed slot at once)."""
    with FileLock(_gate_lock_path(tracking_uri), timeout=600):
        return _gate(tracking_uri, version, snapshot, roc_auc, churned, validation_inputs, tolerance)


def _gate_lock_path(tracking_uri: str) -> str:
    """Next to a SQLite store; in the temp folder, named after the URI, for any other store."""
    if tracking_uri.startswith("sqlite:///"):
        return tracking_uri.removeprefix("sqlite:///") + ".champion.lock"
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"churn_assets-{digest}.champion.lock")


def _gate(tracking_uri, version, snapshot, roc_auc, churned, validation_inputs, tolerance) -> tuple[GateDecision, dict]:
    current = champion(tracking_uri)
    champion_snapshot = champion_auc = None
    compared = {}
    if current is not None:
        champion_snapshot = date.fromisoformat(current.tags["snapshot"])
        compared = {"champion_version": current.version, "champion_snapshot": champion_snapshot.isoformat()}
        if champion_snapshot <= snapshot:
            model = load_model(tracking_uri, current.version)
            champion_auc = float(roc_auc_score(churned, model.predict_proba(validation_inputs)[:, 1]))
            compared["champion_roc_auc_same_validation"] = champion_auc
    decision = champion_decision(snapshot, roc_auc, champion_snapshot, champion_auc, tolerance)
    record_gate(tracking_uri, version, decision.passed)
    if decision.promote:
        promote(tracking_uri, version)
    compared["champion_after"] = version if decision.promote else (current.version if current else "none")
    return decision, compared


def promote(tracking_uri: str, version: str) -> None:
    client_for(tracking_uri).set_registered_model_alias(MODEL_NAME, CHAMPION, version)
