"""Gold: customer value and revenue at risk, the budget-optimal retention plan, and the summary views."""

from datetime import date

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from churn_assets.core.gold import (
    customer_value_schema,
    plan_customers_sql,
    plan_with_baselines,
    retention_actions_schema,
)
from churn_assets.core.model import dropped_features_table
from churn_assets.core.summary import create_views_sql, retention_summary_schema, retention_summary_sql
from churn_assets.core.value import value_for_snapshot
from churn_assets.core.warehouse import query_frame
from churn_assets.defs.features import CUSTOMER_FEATURES, snapshot_partitions
from churn_assets.defs.metadata import column_schema, dagster_type, images, preview
from churn_assets.defs.ml import CHURN_PREDICTIONS
from churn_assets.defs.failures import named_failure
from churn_assets.defs.resources import DUCKDB_POOL, ChurnSettings
from churn_assets.defs.silver import SILVER_TRANSACTIONS
from churn_assets.settings import Settings

CUSTOMER_VALUE = dg.AssetKey(["gold", "customer_value"])
RETENTION_ACTIONS = dg.AssetKey(["gold", "retention_actions"])
RETENTION_SUMMARY = dg.AssetKey(["gold", "retention_summary"])


def build_gold_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    partitions = snapshot_partitions(settings)
    value_schema, actions_schema = customer_value_schema(), retention_actions_schema()

    @dg.asset(
        key=CUSTOMER_VALUE,
        group_name="gold",
        description=(
            "Per scored customer: expected revenue over the value horizon if retained, and revenue at risk "
            "= churn probability x that value. The value method is chosen by out-of-time error."
        ),
        partitions_def=partitions,
        deps=[CHURN_PREDICTIONS, CUSTOMER_FEATURES, SILVER_TRANSACTIONS],
        dagster_type=dagster_type(value_schema),
        metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(value_schema)},
        kinds={"duckdb", "pandas", "scikitlearn"},
        pool=DUCKDB_POOL,
        automation_condition=dg.AutomationCondition.eager(),
    )
    def customer_value(
        context: dg.AssetExecutionContext, churn_settings: ChurnSettings, warehouse: DuckDBResource
    ) -> pd.DataFrame:
        with named_failure(context):
            settings = churn_settings.core()
            snapshot = date.fromisoformat(context.partition_key)
            with warehouse.get_connection() as connection:
                frame, model, window = value_for_snapshot(connection, snapshot, settings)
            by_segment = frame.groupby("risk_segment")[["expected_value", "revenue_at_risk"]].sum().round(2)
            context.add_output_metadata({
                "value_method": model.method,
                "value_features_dropped": dg.MetadataValue.md(
                    dropped_features_table(model.dropped_features).to_markdown(index=False)
                    if model.dropped_features else "none"
                ),
                "value_horizon_days": settings.value_horizon_days,
                "value_validation_snapshot": window.validation.isoformat() if window else "none (no observed value window yet)",
                "value_error_out_of_time": dg.MetadataValue.md(
                    model.evaluation.round(3).to_markdown() if len(model.evaluation) else "not enough history: run rate used"
                ),
                **({
                    "aggregate_error_pct": float(model.evaluation.loc[model.method, "total_error_pct"]),
                    "rank_correlation": float(model.evaluation.loc[model.method, "spearman"]),
                } if len(model.evaluation) else {}),
                "revenue_at_risk_total": float(frame["revenue_at_risk"].sum()),
                "revenue_at_risk_by_segment": dg.MetadataValue.md(by_segment.to_markdown() if len(frame) else "none"),
                "preview": preview(frame.sort_values("revenue_at_risk", ascending=False)),
            })
            return value_schema.validate(frame)

    @dg.asset(
        key=RETENTION_ACTIONS,
        group_name="gold",
        description=(
            "The retention plan for snapshot S: at most one action per customer maximising expected net value "
            "under the budget, plus a seeded control group that receives nothing."
        ),
        partitions_def=partitions,
        deps=[CUSTOMER_VALUE, CUSTOMER_FEATURES],
        dagster_type=dagster_type(actions_schema),
        metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(actions_schema)},
        kinds={"duckdb", "pandas", "scipy"},
        pool=DUCKDB_POOL,
        automation_condition=dg.AutomationCondition.eager(),
    )
    def retention_actions(
        context: dg.AssetExecutionContext, churn_settings: ChurnSettings, warehouse: DuckDBResource
    ) -> pd.DataFrame:
        with named_failure(context):
            settings = churn_settings.core()
            key = context.partition_key
            with warehouse.get_connection() as connection:
                customers = query_frame(connection, plan_customers_sql(key))
            outcome = plan_with_baselines(customers, settings)
            solution = outcome.solution
            context.add_output_metadata({
                "budget": settings.budget,
                "spend": solution.spend,
                "expected_net_value": solution.net_value,
                "lp_bound": solution.lp_bound,
                "optimality_gap": solution.gap,
                "solve_seconds": outcome.solve_seconds,
                "customers_acted_on": int((solution.choice >= 0).sum()),
                "control_customers": int(outcome.control.sum()),
                "policies_at_equal_spend": dg.MetadataValue.md(outcome.comparison.round(2).to_markdown()),
                "spend_vs_expected_value": images({"spend curve": outcome.curve_png}),
                "preview": preview(outcome.plan),
            })
            return actions_schema.validate(outcome.plan)

    @dg.asset(
        key=RETENTION_SUMMARY,
        group_name="gold",
        description=(
            "Per snapshot and risk segment: customers, revenue at risk, customers acted on, controls, spend and "
            "expected value. Also (re)creates the views gold.high_risk_customers, gold.revenue_at_risk_by_segment "
            "and gold.retention_priorities."
        ),
        partitions_def=partitions,
        deps=[CUSTOMER_VALUE, RETENTION_ACTIONS],
        dagster_type=dagster_type(retention_summary_schema()),
        metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(retention_summary_schema())},
        kinds={"duckdb", "pandas"},
        pool=DUCKDB_POOL,
        automation_condition=dg.AutomationCondition.eager(),
    )
    def retention_summary(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> pd.DataFrame:
        with named_failure(context):
            with warehouse.get_connection() as connection:
                for statement in create_views_sql():
                    connection.execute(statement).fetchall()
                summary = query_frame(connection, retention_summary_sql(context.partition_key))
            context.add_output_metadata({"summary": dg.MetadataValue.md(summary.to_markdown(index=False))})
            return retention_summary_schema().validate(summary)

    return [customer_value, retention_actions, retention_summary]

