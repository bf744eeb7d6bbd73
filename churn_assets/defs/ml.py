"""ML layer: the monthly churn model tracked in MLflow with its champion gate, and the predictions."""

import warnings
from datetime import date

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from churn_assets.core import registry
from churn_assets.core.model import NotEnoughHistory, dropped_features_table
from churn_assets.core.scoring import empty_predictions, predictions_schema
from churn_assets.core.training import (
    score_with_registered_model,
    snapshot_features_sql,
    train_and_register,
    training_data,
)
from churn_assets.core.warehouse import query_frame
from churn_assets.defs.features import CHURN_LABELS, CUSTOMER_FEATURES, snapshot_partitions
from churn_assets.defs.metadata import column_schema, dagster_type, images, preview
from churn_assets.defs.failures import named_failure
from churn_assets.defs.resources import DUCKDB_POOL, ChurnSettings
from churn_assets.settings import Settings

CHURN_MODEL = dg.AssetKey(["ml", "churn_model"])
CHURN_PREDICTIONS = dg.AssetKey(["ml", "churn_predictions"])
CHAMPION_GATE = "champion_gate"
DRIFT_CHECK = "feature_and_score_drift"
COVERAGE_CHECK = "one_score_per_active_customer"


def build_ml_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """The model and predictions on the same monthly snapshot partitions as the features."""
    partitions = snapshot_partitions(settings)
    # Lineage of the training window; the model itself decides which of these have observed labels.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # allow_nonexistent_upstream_partitions
        history = dg.TimeWindowPartitionMapping(
            start_offset=-settings.training_months, end_offset=-1, allow_nonexistent_upstream_partitions=True
        )

    @dg.asset(
        key=CHURN_MODEL,
        group_name="ml",
        description=(
            "Churn model for snapshot S: calibrated candidates trained on labelled snapshots whose horizon "
            "ended by S, the newest held out for out-of-time validation; logged and registered in MLflow."
        ),
        partitions_def=partitions,
        deps=[
            dg.AssetDep(CUSTOMER_FEATURES, partition_mapping=history),
            dg.AssetDep(CHURN_LABELS, partition_mapping=history),
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
    )
    def churn_model(
        context: dg.AssetExecutionContext, churn_settings: ChurnSettings, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        with named_failure(context):
            settings = churn_settings.core()
            snapshot = date.fromisoformat(context.partition_key)
            try:
                with warehouse.get_connection() as connection:
                    data = training_data(connection, settings, snapshot)
                window = data.window
                context.log.info(
                    f"training on {len(data.train):,} rows from {len(window.train)} snapshots "
                    f"({window.train[0]} .. {window.train[-1]}); validating on {window.validation} "
                    f"({len(data.validation):,} rows)"
                )
                trained = train_and_register(
                    settings, data, tags={"dagster_run_id": context.run.run_id, "dagster_partition": context.partition_key}
                )
            except NotEnoughHistory as exc:
                return _no_model(context, str(exc))
            result, logged, decision, figures = trained.result, trained.logged, trained.decision, trained.figures
            context.log.info(f"model version {logged.version} ({result.chosen}): {decision.reason}")
            return dg.MaterializeResult(
                metadata={
                    "chosen_model": result.chosen,
                    "model_version": logged.version,
                    "roc_auc_out_of_time": result.best.metrics["roc_auc"],
                    "recency_only_roc_auc": result.recency_only["roc_auc"],
                    "beats_recency_only": result.beats_recency_only,
                    "btyd_features_kept": result.uses_btyd_features,
                    "references_out_of_time": dg.MetadataValue.md(
                        pd.DataFrame(result.references).T.round(4).to_markdown()
                    ),
                    "features_used": len(result.features),
                    "features_dropped": dg.MetadataValue.md(
                        dropped_features_table(result.dropped_features).to_markdown(index=False)
                    if result.dropped_features else "none"
                    ),
                    **({"not_tried": dg.MetadataValue.text("; ".join(result.notes))} if result.notes else {}),
                    "validation_snapshot": window.validation.isoformat(),
                    "train_snapshots": ", ".join(s.isoformat() for s in window.train),
                    "train_rows": result.train_rows,
                    "validation_rows": result.validation_rows,
                    "metrics": dg.MetadataValue.md(trained.metrics.round(4).to_markdown()),
                    "plots": images(figures),
                    "mlflow_run": dg.MetadataValue.url(registry.run_url(settings.mlflow_tracking_uri, logged)),
                    "mlflow_ui": dg.MetadataValue.text(f"mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}"),
                    **({} if result.beats_recency_only else {
                        "warning": dg.MetadataValue.text("the chosen model does not beat recency alone out-of-time")
                    }),
                },
                check_results=[
                    dg.AssetCheckResult(
                        check_name=CHAMPION_GATE,
                        passed=decision.passed,
                        description=decision.reason,
                        metadata={"decision": decision.reason, "promoted": decision.promote, **trained.gate_metadata},
                    )
                ],
            )

    @dg.asset(
        key=CHURN_PREDICTIONS,
        group_name="ml",
        description=(
            "Every customer active before S scored once by the model trained for S: calibrated churn "
            "probability, risk segment, model version and the top three reasons in words."
        ),
        partitions_def=partitions,
        deps=[CHURN_MODEL, CUSTOMER_FEATURES],
        dagster_type=dagster_type(predictions_schema()),
        metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(predictions_schema())},
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
        kinds={"duckdb", "pandas", "mlflow"},
        pool=DUCKDB_POOL,
        # A new model for the newest month rescores it (once that month has a model); the model
        # itself retrains on the monthly schedule.
        automation_condition=dg.AutomationCondition.eager(),
    )
    def churn_predictions(
        context: dg.AssetExecutionContext, churn_settings: ChurnSettings, warehouse: DuckDBResource
    ):
        with named_failure(context):
            settings = churn_settings.core()
            key = context.partition_key
            with warehouse.get_connection() as connection:
                features = query_frame(connection, snapshot_features_sql(key))
            outcome = score_with_registered_model(settings, key, features)
            if outcome is None:
                context.log.warning(f"no model was trained for {key}; no predictions")
                empty = empty_predictions()
                yield dg.Output(empty, metadata={"status": f"no model trained for {key}", "customers_scored": 0})
                yield dg.AssetCheckResult(check_name=DRIFT_CHECK, passed=True, metadata={"status": "no model"})
                yield dg.AssetCheckResult(
                    check_name=COVERAGE_CHECK, passed=True, metadata={"status": "no model, nothing scored"}
                )
                return
            scored, drift = outcome.predictions, outcome.drift
            segments = scored["risk_segment"].value_counts()
            yield dg.Output(
                scored,
                metadata={
                    "customers_scored": len(scored),
                    "model_version": outcome.model_version,
                    "mean_churn_probability": float(scored["churn_probability"].mean()) if len(scored) else 0.0,
                    **{f"risk/{s}": int(segments.get(s, 0)) for s in ("High", "Medium", "Low")},
                    "preview": preview(scored.sort_values("churn_probability", ascending=False)),
                },
            )
            worst = float(drift.max()) if len(drift) else 0.0
            yield dg.AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=worst <= settings.drift_psi_warning,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "max_psi": worst,
                    "most_drifted": str(drift.index[0]) if len(drift) else "none",
                    "threshold": settings.drift_psi_warning,
                    "psi": dg.MetadataValue.md(drift.round(4).to_frame().to_markdown()),
                },
            )
            yield dg.AssetCheckResult(
                check_name=COVERAGE_CHECK,
                passed=len(scored) == len(features) and scored["customer_id"].is_unique,
                metadata={"features": len(features), "predictions": len(scored)},
            )

    return [churn_model, churn_predictions]


def _no_model(context: dg.AssetExecutionContext, why: str) -> dg.MaterializeResult:
    context.log.warning(f"no model for {context.partition_key}: {why}")
    return dg.MaterializeResult(
        metadata={"status": dg.MetadataValue.text(f"no model: {why}")},
        check_results=[
            dg.AssetCheckResult(check_name=CHAMPION_GATE, passed=True, metadata={"decision": "no model trained"})
        ],
    )


ml_job = dg.define_asset_job(
    "retrain_and_score",
    selection=dg.AssetSelection.groups("ml", "gold"),
    description="Model (with its champion gate), predictions, customer value and retention plan for one month.",
)
# On the 1st at 04:00: retrain, rescore and re-plan the snapshot that just became complete.
monthly_retraining = dg.build_schedule_from_partitioned_job(
    ml_job, name="monthly_retraining", hour_of_day=4, default_status=dg.DefaultScheduleStatus.RUNNING
)
