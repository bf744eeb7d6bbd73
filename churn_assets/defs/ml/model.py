"""ML layer: the monthly churn model tracked in MLflow with its champion gate, and the predictions.

Both handle a range of months in one run, oldest first, so a backfill pays the fixed costs of a
run (imports, the MLflow store, Dagster's run) once and the champion gate sees the months in order.
"""

import warnings
from datetime import date

import dagster as dg
import pandas as pd

from churn_assets.core.ml import registry
from churn_assets.core.ml.candidates import dropped_features_table
from churn_assets.core.ml.training_window import NotEnoughHistory
from churn_assets.core.ml.scoring import empty_predictions, predictions_schema
from churn_assets.core.table_query import FrameStaging
from churn_assets.core.silver.snapshot_inputs import labelled_offset_months
from churn_assets.core.ml.training import (
    TrainedModel,
    score_with_registered_model,
    snapshot_features_sql,
    train_and_register,
    training_data,
)
from churn_assets.core.warehouse import query_frame
from churn_assets.lib.automation import follow_upstream_months
from churn_assets.lib.config import (
    MODEL_KNOBS,
    PREDICTION_KNOBS,
    knobs_config,
    with_knobs,
)
from churn_assets.lib.failures import named_failure
from churn_assets.lib.keys import (
    ACTION_EFFECTS,
    CAMPAIGN_EXECUTION,
    CAMPAIGN_OUTCOMES,
    CHURN_LABELS,
    CHURN_MODEL,
    CHURN_PREDICTIONS,
    CUSTOMER_FEATURES,
    UPLIFT_VALIDATION,
)
from churn_assets.lib.metadata import (
    column_schema,
    images,
    preview,
    staged_months,
    table_query_type,
)
from churn_assets.lib.partitions import snapshot_partitions
from churn_assets.lib.resources import DUCKDB_POOL, WarehouseResource, storage_kind
from churn_assets.settings import Settings

CHAMPION_GATE = "champion_gate"
DRIFT_CHECK = "feature_and_score_drift"
COVERAGE_CHECK = "one_score_per_active_customer"


def build_ml_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """The model and predictions on the same monthly snapshot partitions as the features."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # allow_nonexistent_upstream_partitions, backfill_policy
        return [_model_asset(settings), _predictions_asset(settings)]


def _training_window_mapping(settings: Settings) -> dg.TimeWindowPartitionMapping:
    """The months a model for S may read: the last ``training_months``, up to the newest whose
    label horizon can have ended by S. The model picks those whose horizon did."""
    return dg.TimeWindowPartitionMapping(
        start_offset=-settings.training_months,
        end_offset=-labelled_offset_months(settings.churn_horizon_days),
        allow_nonexistent_upstream_partitions=True,
    )


def _model_asset(settings: Settings) -> dg.AssetsDefinition:
    ModelConfig = knobs_config("ModelConfig", settings, MODEL_KNOBS, "How the churn model of a month is trained and gated.")
    window = _training_window_mapping(settings)

    @dg.asset(
        key=CHURN_MODEL,
        group_name="ml",
        description=(
            "Churn model for snapshot S: calibrated candidates trained on labelled snapshots whose horizon "
            "ended by S, the newest held out for out-of-time validation; logged and registered in MLflow."
        ),
        partitions_def=snapshot_partitions(settings),
        deps=[
            dg.AssetDep(CUSTOMER_FEATURES, partition_mapping=window),
            dg.AssetDep(CHURN_LABELS, partition_mapping=window),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                CHAMPION_GATE,
                asset=CHURN_MODEL,
                blocking=True,
                description="The champion alias moves only to a version that is not worse on the same validation snapshot.",
            )
        ],
        kinds={"mlflow", "scikitlearn"},
        pool=DUCKDB_POOL,
        automation_condition=follow_upstream_months(),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def churn_model(
        context: dg.AssetExecutionContext, config: ModelConfig, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        with named_failure(context):
            run_settings = with_knobs(settings, config)
            keys = context.partition_keys
            gates = []
            with warehouse.get_connection() as connection:  # one for every month: DuckDB keeps its cache
                for key in keys:  # oldest first: each gate compares against the champion the month before left
                    metadata, gate = _model_month(context, run_settings, connection, key, plots=key == keys[-1])
                    context.add_asset_metadata(metadata, partition_key=key)
                    gates.append((key, gate))
            return dg.MaterializeResult(check_results=[_gate_result(gates)])

    return churn_model


def _model_month(context, settings: Settings, connection, key: str, plots: bool):
    """Train, register and gate the model of one month: its metadata and its gate outcome."""
    try:
        data = training_data(connection, settings, date.fromisoformat(key))
        context.log.info(
            f"{key}: training on {len(data.train):,} rows from {len(data.window.train)} snapshots "
            f"({data.window.train[0]} .. {data.window.train[-1]}); validating on {data.window.validation}"
        )
        trained = train_and_register(
            settings, data, tags={"dagster_run_id": context.run.run_id, "dagster_partition": key}, plots=plots
        )
    except NotEnoughHistory as exc:
        context.log.warning(f"no model for {key}: {exc}")
        return {"status": dg.MetadataValue.text(f"no model: {exc}")}, None
    context.log.info(f"{key}: version {trained.logged.version} ({trained.result.chosen}): {trained.decision.reason}")
    return _model_metadata(settings, trained), trained


def _model_metadata(settings: Settings, trained: TrainedModel) -> dict:
    result, logged, decision = trained.result, trained.logged, trained.decision
    return {
        "chosen_model": result.chosen,
        "model_version": logged.version,
        "roc_auc_out_of_time": result.best.metrics["roc_auc"],
        "recency_only_roc_auc": result.recency_only["roc_auc"],
        "beats_recency_only": result.beats_recency_only,
        "btyd_features_kept": result.uses_btyd_features,
        "champion_gate": decision.reason,
        "promoted": decision.promote,
        "references_out_of_time": dg.MetadataValue.md(pd.DataFrame(result.references).T.round(4).to_markdown()),
        "features_used": len(result.features),
        "features_dropped": dg.MetadataValue.md(
            dropped_features_table(result.dropped_features).to_markdown(index=False)
            if result.dropped_features else "none"
        ),
        "validation_snapshot": result.window.validation.isoformat(),
        "train_snapshots": ", ".join(s.isoformat() for s in result.window.train),
        "train_rows": result.train_rows,
        "validation_rows": result.validation_rows,
        "metrics": dg.MetadataValue.md(trained.metrics.round(4).to_markdown()),
        "plots": images(trained.figures) if trained.figures else dg.MetadataValue.text(
            "drawn for the newest month of a run only"
        ),
        "mlflow_run": dg.MetadataValue.url(registry.run_url(settings.mlflow_tracking_uri, logged)),
        "mlflow_ui": dg.MetadataValue.text(f"mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}"),
        **({"not_tried": dg.MetadataValue.text("; ".join(result.notes))} if result.notes else {}),
        **({} if result.beats_recency_only else {
            "warning": dg.MetadataValue.text("the chosen model does not beat recency alone out-of-time")
        }),
    }


def _gate_result(gates: list[tuple[str, TrainedModel | None]]) -> dg.AssetCheckResult:
    """One gate outcome for the run's months: it passes when every month's gate passed."""
    rows = [
        {"month": key, "passed": True, "promoted": False, "decision": "no model trained"} if trained is None else
        {"month": key, "passed": trained.decision.passed, "promoted": trained.decision.promote,
         "decision": trained.decision.reason}
        for key, trained in gates
    ]
    failed = [row["month"] for row in rows if not row["passed"]]
    last = gates[-1][1]
    return dg.AssetCheckResult(
        check_name=CHAMPION_GATE,
        passed=not failed,
        description="; ".join(f"{r['month']}: {r['decision']}" for r in rows if not r["passed"]) or rows[-1]["decision"],
        metadata={
            "decisions": dg.MetadataValue.md(pd.DataFrame(rows).to_markdown(index=False)),
            "months_failed": ", ".join(failed) or "none",
            **(last.gate_metadata if last is not None else {}),
        },
    )


def _predictions_asset(settings: Settings) -> dg.AssetsDefinition:
    PredictionsConfig = knobs_config(
        "PredictionsConfig", settings, PREDICTION_KNOBS, "How scores become risk segments, and when drift warns."
    )
    schema = predictions_schema()

    @dg.asset(
        key=CHURN_PREDICTIONS,
        group_name="ml",
        description=(
            "Every customer active before S scored once by the model trained for S: calibrated churn "
            "probability, risk segment, model version and the top three reasons in words."
        ),
        partitions_def=snapshot_partitions(settings),
        deps=[CHURN_MODEL, CUSTOMER_FEATURES],
        dagster_type=table_query_type(schema),
        metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(schema)},
        check_specs=[
            dg.AssetCheckSpec(
                DRIFT_CHECK, asset=CHURN_PREDICTIONS,
                description="Population stability index of each feature and of the score against the training data.",
            ),
            dg.AssetCheckSpec(
                COVERAGE_CHECK, asset=CHURN_PREDICTIONS, blocking=True,
                description="Exactly one prediction per customer in the snapshot's features.",
            ),
        ],
        kinds={storage_kind(settings), "pandas", "mlflow"},
        pool=DUCKDB_POOL,
        automation_condition=follow_upstream_months(),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def churn_predictions(context: dg.AssetExecutionContext, config: PredictionsConfig, warehouse: WarehouseResource):
        with named_failure(context):
            run_settings = with_knobs(settings, config)
            drifts, coverage, newest = {}, {}, empty_predictions()
            with warehouse.get_connection() as connection:  # one for every month: DuckDB keeps its cache
                staging = FrameStaging(connection, "churn_predictions", schema)
                for key in context.partition_keys:
                    features = query_frame(connection, snapshot_features_sql(key))
                    outcome = score_with_registered_model(run_settings, key, features)
                    if outcome is None:
                        context.log.warning(f"no model was trained for {key}; no predictions")
                        context.add_asset_metadata(
                            {"status": f"no model trained for {key}", "customers_scored": 0}, partition_key=key
                        )
                        continue
                    newest = staging.add(key, outcome.predictions)
                    drifts[key], coverage[key] = outcome.drift, (len(features), len(newest), newest["customer_id"].is_unique)
                    context.add_asset_metadata(_predictions_metadata(newest, outcome.model_version), partition_key=key)
            yield dg.Output(
                staged_months(context, staging),
                metadata={"preview": preview(newest.sort_values("churn_probability", ascending=False))},
            )
            yield _drift_result(drifts, run_settings.drift_psi_warning)
            yield dg.AssetCheckResult(
                check_name=COVERAGE_CHECK,
                passed=all(f == p and unique for f, p, unique in coverage.values()),
                metadata={"months": dg.MetadataValue.md(pd.DataFrame(
                    coverage, index=["features", "predictions", "unique"]
                ).T.to_markdown() if coverage else "no model, nothing scored")},
            )

    return churn_predictions


def _predictions_metadata(scored: pd.DataFrame, version: str) -> dict:
    segments = scored["risk_segment"].value_counts()
    return {
        "customers_scored": len(scored),
        "model_version": version,
        "mean_churn_probability": float(scored["churn_probability"].mean()) if len(scored) else 0.0,
        **{f"risk/{s}": int(segments.get(s, 0)) for s in ("High", "Medium", "Low")},
    }


def _drift_result(drifts: dict[str, pd.Series], threshold: float) -> dg.AssetCheckResult:
    """The largest population stability index of any feature or the score, over the run's months."""
    if not drifts:
        return dg.AssetCheckResult(check_name=DRIFT_CHECK, passed=True, metadata={"status": "no model"})
    table = pd.DataFrame(drifts).fillna(0.0)
    worst = float(table.to_numpy().max()) if table.size else 0.0
    most = table.max(axis=1).idxmax() if table.size else "none"
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=worst <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "max_psi": worst,
            "most_drifted": str(most),
            "threshold": threshold,
            "psi": dg.MetadataValue.md(table.round(4).to_markdown()),
        },
    )


ml_job = dg.define_asset_job(
    "retrain_and_score",
    # the campaign tables follow their own months (a read-out waits for its horizon), and the plan
    # reads the month's learned effects as the automation last built them
    selection=dg.AssetSelection.groups("ml", "gold") - dg.AssetSelection.assets(
        ACTION_EFFECTS, UPLIFT_VALIDATION, CAMPAIGN_OUTCOMES, CAMPAIGN_EXECUTION
    ),
    description="Model (with its champion gate), predictions, customer value and retention plan for a month or a range.",
)
