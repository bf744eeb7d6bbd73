"""The MLflow side of the churn model: one tracked run per training, the registry and its champion.

Plain MLflow calls against the tracking URI from settings (an SQLite store by default); no Dagster.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from typing import TYPE_CHECKING

import pandas as pd

from churn_assets.core.ml.champion import CARD_FILE, PIPELINE_FILE, ChampionCard, score_history
from churn_assets.core.ml.candidates import fitted_pipeline, with_input_coercion
from churn_assets.core.ml.model import TrainingResult
from churn_assets.core.silver.raw_history import HISTORY_COLUMNS

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# MLflow is imported by the functions that use it: loading the definitions (every CLI command,
# code server and run worker) would otherwise pay over a second for it.

MODEL_NAME = "churn_model"
EXPERIMENT = "churn_model"
CHAMPION = "champion"
PROFILE_FILE = "reference_profile.json"
GATE_TAG = "champion_gate"


@functools.lru_cache(maxsize=8)
def client_for(tracking_uri: str) -> MlflowClient:
    """One client per store and process: building one sets up its store again (about 0.14 s with
    SQLite), and a month's model asks the store a dozen times."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)


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
    card: ChampionCard,
    history_example: pd.DataFrame,
    params: dict,
    tags: dict[str, str],
    figures: dict[str, bytes],
    profile: dict,
    tables: dict[str, pd.DataFrame],
) -> LoggedModel:
    """One MLflow run with params, every candidate's metrics, plots and the chosen model as the
    ``ChurnChampion`` pyfunc (``card`` and the fitted pipeline, coercion included), registered as a
    new version of ``churn_model`` tagged with its snapshots (the champion alias is not moved).
    ``history_example``: raw rows of a few customers, the logged input example."""
    import mlflow

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
    pipeline = with_input_coercion(result.best.model)
    card = replace(card, trusted_types=tuple(_library_types(pipeline)))
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
        info = _log_champion(pipeline, card, history_example, window.model_snapshot)
    version = _register(client_for(tracking_uri), info.model_id, run.info.run_id, version_tags)
    _remember(("model", tracking_uri, version), pipeline)
    _remember(("profile", tracking_uri, run.info.run_id), json.loads(json.dumps(profile)))
    return LoggedModel(run.info.run_id, run.info.experiment_id, version)


def _log_champion(pipeline, card: ChampionCard, history_example: pd.DataFrame, snapshot: date):
    """Log the pyfunc under the active run, with its signature and input example (the example's
    customers scored as of ``snapshot``)."""
    import mlflow
    import skops.io

    example_params = {"as_of": snapshot.isoformat()}
    output = score_history(pipeline, card, history_example, snapshot)
    with tempfile.TemporaryDirectory() as folder:
        skops.io.dump(pipeline, Path(folder) / PIPELINE_FILE)
        (Path(folder) / CARD_FILE).write_text(card.to_json())
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("champion_model.py")),
            artifacts={"pipeline": str(Path(folder) / PIPELINE_FILE), "card": str(Path(folder) / CARD_FILE)},
            signature=champion_signature(output),
            input_example=(history_example, example_params),
            # Named, not inferred: inference imports the model in a subprocess, ~10 s per run.
            pip_requirements=_requirements(),
        )


def champion_signature(output_example: pd.DataFrame):
    """Raw history in, as landed (any type per column, like a landed file's text); the scores out;
    ``as_of`` (default: today) and ``actions`` (default: the catalogue at training) as parameters."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([
        ColSpec(AnyType(), name, required=name == "customer_id") for name in HISTORY_COLUMNS
    ])
    params = ParamSchema([ParamSpec("as_of", "string", ""), ParamSpec("actions", "string", "")])
    return ModelSignature(inputs=inputs, outputs=infer_signature(output_example).inputs, params=params)


def _register(client: MlflowClient, model_id: str, run_id: str, tags: dict[str, str]) -> str:
    """A new version of ``churn_model`` with its tags, in one call. Written out instead of
    ``log_model(registered_model_name=...)``, which prints three lines per version to stderr
    (into the CLI's progress) and needs a call per tag afterwards."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(MODEL_NAME)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    created = client.create_model_version(
        MODEL_NAME, source=f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id
    )
    # the logged model's link to its registry version, as MLflow's own registration records it
    client.set_logged_model_tags(
        model_id, {"mlflow.modelVersions": json.dumps([{"name": MODEL_NAME, "version": created.version}])}
    )
    return str(created.version)


def _experiment_id(tracking_uri: str, artifact_root: Path) -> str:
    """The experiment's id, creating it with its artifacts under ``artifact_root``: an SQLite
    store otherwise puts them in ./mlruns of whatever directory the process runs in."""
    client = client_for(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(EXPERIMENT, artifact_location=artifact_root.as_uri())


def _requirements() -> list[str]:
    """The packages a loaded model needs, at the versions it was trained with: the project itself
    (the pyfunc's code and its feature SQL) and what its pipeline holds."""
    from importlib.metadata import version

    names = ("churn-assets", "scikit-learn", "numpy", "pandas", "scipy", "skops", "duckdb")
    return [f"{name}=={version(name)}" for name in names]


def _library_types(model) -> list[str]:
    """Types skops does not trust by default but which belong to sklearn, numpy, the standard
    library or this project (the BG/NBD feature step); anything else stays untrusted, so loading
    a foreign object still fails. Found by serializing the model once per pipeline structure:
    that serialization cost as much as saving the model itself."""
    structure = _structure(model)
    if structure not in _LIBRARY_TYPES:
        import skops.io

        untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        _LIBRARY_TYPES[structure] = [t for t in untrusted if t.split(".")[0] in _TRUSTED_PACKAGES]
    return _LIBRARY_TYPES[structure]


_TRUSTED_PACKAGES = ("sklearn", "numpy", "functools", "churn_assets")
_LIBRARY_TYPES: dict[tuple[str, ...], list[str]] = {}


def _structure(model) -> tuple[str, ...]:
    """The classes of a stored pipeline's fitted steps: models of one structure hold the same types."""
    calibrated = model.named_steps["model"]
    return (type(calibrated).__name__, *(type(step).__qualname__ for _, step in fitted_pipeline(calibrated).steps))


def version_for_snapshot(tracking_uri: str, snapshot: str) -> ModelVersion | None:
    """The newest version trained for ``snapshot`` (YYYY-MM-DD) that did not fail the champion
    gate, if any: a rejected version never scores, even when a later run asks for predictions."""
    versions = [
        v for v in _all_versions(tracking_uri)
        if v.tags.get("snapshot") == snapshot and v.tags.get(GATE_TAG) != "failed"
    ]
    return max(versions, key=lambda v: int(v.version), default=None)


def _all_versions(tracking_uri: str) -> list[ModelVersion]:
    from mlflow.exceptions import MlflowException

    client = client_for(tracking_uri)
    try:
        return list(client.search_model_versions(f"name = '{MODEL_NAME}'", max_results=10_000))
    except MlflowException:
        return []


def champion(tracking_uri: str) -> ModelVersion | None:
    """The version behind the ``champion`` alias, or None before the first promotion."""
    from mlflow.exceptions import MlflowException

    try:
        return client_for(tracking_uri).get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except MlflowException:
        return None


# A registered version and its run's artifacts never change, so a process keeps the few it last
# logged or read: a run over many months then gates and scores each month without reading back
# from the store what it wrote a moment before.
_RECENT: OrderedDict[tuple, object] = OrderedDict()
_RECENT_SIZE = 8


def _remember(key: tuple, value):
    _RECENT[key] = value
    _RECENT.move_to_end(key)
    while len(_RECENT) > _RECENT_SIZE:
        _RECENT.popitem(last=False)
    return value


def _recalled(key: tuple):
    if key in _RECENT:
        _RECENT.move_to_end(key)
        return _RECENT[key]
    return None


def model_version(tracking_uri: str, version: str) -> ModelVersion:
    """Registered version ``version`` of the churn model."""
    return client_for(tracking_uri).get_model_version(MODEL_NAME, str(version))


def load_model(tracking_uri: str, version: str):
    """The fitted sklearn pipeline of a registered version (it takes feature rows)."""
    key = ("model", tracking_uri, str(version))
    if (model := _recalled(key)) is not None:
        return model
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    uri = f"models:/{MODEL_NAME}/{version}"
    if "sklearn" in mlflow.models.get_model_info(uri).flavors:  # registered before the pyfunc champion
        return _remember(key, with_input_coercion(mlflow.sklearn.load_model(uri)))
    return _remember(key, load_champion(tracking_uri, version).pipeline)


def load_champion(tracking_uri: str, version: str):
    """The ``ChurnChampion`` of a registered version, loaded as ``mlflow.pyfunc.load_model`` does.
    Raises ``ScoringError`` for a version registered before models took raw history."""
    key = ("champion", tracking_uri, str(version))
    if (model := _recalled(key)) is not None:
        return model
    import mlflow
    from mlflow.exceptions import MlflowException

    from churn_assets.core.silver.raw_history import ScoringError

    mlflow.set_tracking_uri(tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version}")
    try:
        model = loaded.unwrap_python_model()
    except MlflowException:  # a flavor's own pyfunc (the sklearn one of older versions)
        model = None
    if type(model).__name__ != "ChurnChampion":
        raise ScoringError(
            f"model version {version} takes computed features, not raw history (registered before "
            "on-demand scoring): train a new version with `churn-assets run`"
        )
    return _remember(key, model)


def load_profile(tracking_uri: str, model_version: ModelVersion) -> dict:
    """The training reference profile logged beside a version's model."""
    key = ("profile", tracking_uri, model_version.run_id)
    if (profile := _recalled(key)) is not None:
        return profile
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    path = mlflow.artifacts.download_artifacts(run_id=model_version.run_id, artifact_path=PROFILE_FILE)
    return _remember(key, json.loads(Path(path).read_text()))


def run_url(tracking_uri: str, logged: LoggedModel) -> str:
    """Where the run shows in ``mlflow ui`` started on this store (default port)."""
    return f"http://127.0.0.1:5000/#/experiments/{logged.experiment_id}/runs/{logged.run_id}"
