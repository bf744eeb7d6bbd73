"""The MLflow side of the churn model: one tracked run per training, the registry and its champion.

Plain MLflow calls against the tracking URI from settings (an SQLite store by default); no Dagster.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.metrics import roc_auc_score

from churn_assets.core.model import GateDecision, TrainingResult, champion_decision

MODEL_NAME = "churn_model"
EXPERIMENT = "churn_model"
CHAMPION = "champion"
PROFILE_FILE = "reference_profile.json"
GATE_TAG = "champion_gate"


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    experiment_id: str
    version: str


def log_training(
    tracking_uri: str,
    artifact_root: Path,
    result: TrainingResult,
    *,
    inputs_example: pd.DataFrame,
    params: dict,
    tags: dict[str, str],
    figures: dict[str, bytes],
    profile: dict,
    tables: dict[str, pd.DataFrame],
) -> LoggedModel:
    """One MLflow run with params, every candidate's metrics, plots and the chosen model, registered
    as a new version of ``churn_model`` tagged with its snapshots (the champion alias is not moved)."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment_id=_experiment_id(tracking_uri, artifact_root))
    window = result.window
    version_tags = {
        "snapshot": window.model_snapshot.isoformat(),
        "validation_snapshot": window.validation.isoformat(),
        "train_snapshots": ",".join(s.isoformat() for s in window.train),
        "algorithm": result.chosen,
        "roc_auc": f"{result.best.metrics['roc_auc']:.6f}",
    }
    with mlflow.start_run(run_name=f"churn_model {window.model_snapshot}", tags=tags) as run:
        mlflow.log_params({**params, **{k: v for k, v in version_tags.items() if k != "roc_auc"}})
        mlflow.log_metrics(result.best.metrics)
        for name, candidate in result.candidates.items():
            mlflow.log_metrics({f"{name}.{k}": v for k, v in candidate.metrics.items()})
        for name, metrics in result.references.items():
            mlflow.log_metrics({f"{name}.{k}": v for k, v in metrics.items()})
        mlflow.log_metrics({
            "random_split.roc_auc": result.random_split_roc_auc,
            "train_rows": result.train_rows,
            "validation_rows": result.validation_rows,
        })
        with tempfile.TemporaryDirectory() as folder:
            for name, png in figures.items():
                (Path(folder) / f"{name}.png").write_bytes(png)
            for name, table in tables.items():
                table.to_csv(Path(folder) / f"{name}.csv", index=False)
            (Path(folder) / PROFILE_FILE).write_text(json.dumps(profile))
            mlflow.log_artifacts(folder)
        probability = result.best.model.predict_proba(inputs_example)
        info = mlflow.sklearn.log_model(
            result.best.model,
            name="model",
            registered_model_name=MODEL_NAME,
            signature=infer_signature(inputs_example, probability),
            input_example=inputs_example,
            skops_trusted_types=_library_types(result.best.model),
            # Named, not inferred: inference imports the model in a subprocess, ~10 s per run.
            pip_requirements=_requirements(),
        )
    version = str(info.registered_model_version)
    client = MlflowClient(tracking_uri)
    for key, value in version_tags.items():
        client.set_model_version_tag(MODEL_NAME, version, key, value)
    return LoggedModel(run.info.run_id, run.info.experiment_id, version)


def _experiment_id(tracking_uri: str, artifact_root: Path) -> str:
    """The experiment's id, creating it with its artifacts under ``artifact_root``: an SQLite
    store otherwise puts them in ./mlruns of whatever directory the process runs in."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(EXPERIMENT, artifact_location=artifact_root.as_uri())


def _requirements() -> list[str]:
    """The packages a loaded model needs, at the versions it was trained with."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "numpy", "pandas", "scipy", "skops")]


def _library_types(model) -> list[str]:
    """Types skops does not trust by default but which belong to sklearn, numpy, the standard
    library or this project (the BG/NBD feature step); anything else stays untrusted, so loading
    a foreign object still fails."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return [t for t in untrusted if t.split(".")[0] in ("sklearn", "numpy", "functools", "churn_assets")]


def version_for_snapshot(tracking_uri: str, snapshot: str) -> ModelVersion | None:
    """The newest version trained for ``snapshot`` (YYYY-MM-DD) that did not fail the champion
    gate, if any: a rejected version never scores, even when a later run asks for predictions."""
    versions = [
        v for v in _all_versions(tracking_uri)
        if v.tags.get("snapshot") == snapshot and v.tags.get(GATE_TAG) != "failed"
    ]
    return max(versions, key=lambda v: int(v.version), default=None)


def _all_versions(tracking_uri: str) -> list[ModelVersion]:
    client = MlflowClient(tracking_uri)
    try:
        return list(client.search_model_versions(f"name = '{MODEL_NAME}'", max_results=10_000))
    except MlflowException:
        return []


def champion(tracking_uri: str) -> ModelVersion | None:
    """The version behind the ``champion`` alias, or None before the first promotion."""
    try:
        return MlflowClient(tracking_uri).get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except MlflowException:
        return None


def record_gate(tracking_uri: str, version: str, passed: bool) -> None:
    """Tag a version with its champion-gate outcome."""
    MlflowClient(tracking_uri).set_model_version_tag(MODEL_NAME, version, GATE_TAG, "passed" if passed else "failed")


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
    MlflowClient(tracking_uri).set_registered_model_alias(MODEL_NAME, CHAMPION, version)


def load_model(tracking_uri: str, version: str):
    """The fitted sklearn model of a registered version."""
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/{version}")


def load_profile(tracking_uri: str, model_version: ModelVersion) -> dict:
    """The training reference profile logged beside a version's model."""
    mlflow.set_tracking_uri(tracking_uri)
    path = mlflow.artifacts.download_artifacts(run_id=model_version.run_id, artifact_path=PROFILE_FILE)
    return json.loads(Path(path).read_text())


def run_url(tracking_uri: str, logged: LoggedModel) -> str:
    """Where the run shows in ``mlflow ui`` started on this store (default port)."""
    return f"http://127.0.0.1:5000/#/experiments/{logged.experiment_id}/runs/{logged.run_id}"
