"""Gold: customer value and revenue at risk, the budget-optimal retention plan, and the summary views.

Each handles a range of months in one run, month by month.
"""

import warnings
from datetime import date

import dagster as dg
import pandas as pd

from churn_assets.core.gold.action_effects import effects_in_words
from churn_assets.core.silver.campaign_contacts import in_running_campaign
from churn_assets.core.gold.retention import (
    customer_value_schema,
    plan_customers_sql,
    plan_with_baselines,
    retention_actions_schema,
)
from churn_assets.core.ml.candidates import dropped_features_table
from churn_assets.core.gold.plan_effects import plan_effects
from churn_assets.core.gold.summary import (
    create_views_sql,
    retention_summary_schema,
    retention_summary_sql,
)
from churn_assets.core.table_query import FrameStaging, TableQuery
from churn_assets.core.gold.value import value_for_snapshot
from churn_assets.core.warehouse import query_frame
from churn_assets.lib.automation import follow_upstream_months
from churn_assets.lib.config import PLAN_KNOBS, VALUE_KNOBS, knobs_config, with_knobs
from churn_assets.lib.failures import named_failure
from churn_assets.lib.keys import (
    ACTION_EFFECTS,
    CAMPAIGN_CONTACTS,
    CHURN_PREDICTIONS,
    CUSTOMER_FEATURES,
    CUSTOMER_VALUE,
    RETENTION_ACTIONS,
    RETENTION_SUMMARY,
    SILVER_TRANSACTIONS,
    UPLIFT_VALIDATION,
)
from churn_assets.lib.metadata import (
    add_row_counts_per_partition,
    column_schema,
    dagster_type,
    images,
    preview,
    staged_months,
    table_query_type,
)
from churn_assets.lib.partitions import snapshot_partitions
from churn_assets.lib.resources import DUCKDB_POOL, WarehouseResource, storage_kind
from churn_assets.settings import Settings


def build_gold_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy is marked beta
        return [_value_asset(settings), _plan_asset(settings), _summary_asset(settings)]


def _snapshot_table(settings: Settings, key: dg.AssetKey, schema, staged: bool = True, **kwargs) -> dict:
    """What every gold table shares: monthly partitions, the warehouse, one run for a range; a
    ``staged`` table's months reach the IO manager through a ``FrameStaging``."""
    return dict(
        key=key,
        group_name="gold",
        partitions_def=snapshot_partitions(settings),
        dagster_type=table_query_type(schema) if staged else dagster_type(schema),
        metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(schema)},
        pool=DUCKDB_POOL,
        automation_condition=follow_upstream_months(),
        backfill_policy=dg.BackfillPolicy.single_run(),
        **kwargs,
    )


def _months(context: dg.AssetExecutionContext, frames: list[pd.DataFrame], schema) -> pd.DataFrame:
    """The run's months as one validated frame, with each month's own row count."""
    frame = schema.validate(pd.concat(frames, ignore_index=True))
    add_row_counts_per_partition(context, frame.groupby("snapshot_date").size().rename("rows").to_frame())
    return frame


def _value_asset(settings: Settings) -> dg.AssetsDefinition:
    ValueConfig = knobs_config("ValueConfig", settings, VALUE_KNOBS, "How far ahead a retained customer's revenue counts.")
    schema = customer_value_schema()

    @dg.asset(
        description=(
            "Per scored customer: expected revenue over the value horizon if retained, and revenue at risk "
            "= churn probability x that value. The value method is chosen by out-of-time error."
        ),
        deps=[CHURN_PREDICTIONS, CUSTOMER_FEATURES, SILVER_TRANSACTIONS],
        kinds={storage_kind(settings), "pandas", "scikitlearn"},
        **_snapshot_table(settings, CUSTOMER_VALUE, schema),
    )
    def customer_value(context: dg.AssetExecutionContext, config: ValueConfig, warehouse: WarehouseResource) -> TableQuery:
        with named_failure(context):
            run_settings = with_knobs(settings, config)
            with warehouse.get_connection() as connection:  # one for every month: DuckDB keeps its cache
                staging = FrameStaging(connection, "customer_value", schema)
                for key in context.partition_keys:
                    frame, model, window = value_for_snapshot(connection, date.fromisoformat(key), run_settings)
                    context.add_asset_metadata(_value_metadata(frame, model, window, run_settings), partition_key=key)
                    newest = staging.add(key, frame)
            context.add_output_metadata({"preview": preview(newest.sort_values("revenue_at_risk", ascending=False))})
            return staged_months(context, staging)

    return customer_value


def _value_metadata(frame: pd.DataFrame, model, window, settings: Settings) -> dict:
    by_segment = frame.groupby("risk_segment")[["expected_value", "revenue_at_risk"]].sum().round(2)
    evaluated = len(model.evaluation) > 0
    return {
        "value_method": model.method,
        "value_features_dropped": dg.MetadataValue.md(
            dropped_features_table(model.dropped_features).to_markdown(index=False) if model.dropped_features else "none"
        ),
        "value_horizon_days": settings.value_horizon_days,
        "value_validation_snapshot": window.validation.isoformat() if window else "none (no observed value window yet)",
        "value_error_out_of_time": dg.MetadataValue.md(
            model.evaluation.round(3).to_markdown() if evaluated else "not enough history: run rate used"
        ),
        **({
            "aggregate_error_pct": float(model.evaluation.loc[model.method, "total_error_pct"]),
            "rank_correlation": float(model.evaluation.loc[model.method, "spearman"]),
        } if evaluated else {}),
        "revenue_at_risk_total": float(frame["revenue_at_risk"].sum()),
        "revenue_at_risk_by_segment": dg.MetadataValue.md(by_segment.to_markdown() if len(frame) else "none"),
    }


def _plan_asset(settings: Settings) -> dg.AssetsDefinition:
    PlanConfig = knobs_config("PlanConfig", settings, PLAN_KNOBS, "The retention budget, the control group and the actions.")
    schema = retention_actions_schema()

    @dg.asset(
        description=(
            "The retention plan for snapshot S: at most one action per customer maximising expected net value "
            "under the budget; a seeded share of the selected customers, per risk segment and action, is held "
            "out as the control group (keeps its action, is not contacted). Customers a running campaign is still "
            "measuring are left out."
        ),
        deps=[CUSTOMER_VALUE, CUSTOMER_FEATURES, ACTION_EFFECTS, UPLIFT_VALIDATION, CAMPAIGN_CONTACTS],
        kinds={storage_kind(settings), "pandas", "scipy"},
        **_snapshot_table(settings, RETENTION_ACTIONS, schema),
    )
    def retention_actions(context: dg.AssetExecutionContext, config: PlanConfig, warehouse: WarehouseResource) -> TableQuery:
        with named_failure(context):
            run_settings = with_knobs(settings, config)
            keys = context.partition_keys
            with warehouse.get_connection() as connection:  # one for every month: DuckDB keeps its cache
                staging = FrameStaging(connection, "retention_actions", schema)
                for key in keys:
                    customers = query_frame(connection, plan_customers_sql(key))
                    effects = plan_effects(connection, customers, key, run_settings)
                    # the spend curve is drawn for the newest month of a run only: a figure costs a
                    # quarter of a second and nobody looks at a backfill's
                    running = in_running_campaign(connection, customers, key, settings.churn_horizon_days)
                    outcome = plan_with_baselines(
                        customers, run_settings, plot=key == keys[-1], catalogue=effects.catalogue, excluded=running,
                        uplift=effects.uplift,
                    )
                    measured = effects.effects
                    context.add_asset_metadata({
                        **_plan_metadata(outcome, customers, run_settings),
                        "customers_in_a_running_campaign": int(running.sum()),
                        "effect_source": effects.source,
                        "effects": dg.MetadataValue.md(effects_in_words(measured).to_markdown(index=False) if len(measured) else "none measured"),
                    }, partition_key=key)
                    newest = staging.add(key, outcome.plan)
            context.add_output_metadata({"preview": preview(newest)})
            return staged_months(context, staging)

    return retention_actions


def _plan_metadata(outcome, customers: pd.DataFrame, settings: Settings) -> dict:
    solution = outcome.solution
    treated = outcome.comparison.loc["optimised plan"]
    return {
        "budget": settings.budget,
        "control_share": settings.control_share,
        "spend": float(treated["spend"]),
        "expected_net_value": float(treated["expected_net_value"]),
        "selected_spend": solution.spend,
        "selected_expected_net_value": solution.net_value,
        "lp_bound": solution.lp_bound,
        "optimality_gap": solution.gap,
        "solve_seconds": outcome.solve_seconds,
        "customers_scored": len(customers),
        "customers_selected": int((solution.choice >= 0).sum()),
        "customers_acted_on": int(treated["customers"]),
        "control_customers": int(outcome.control.sum()),
        "policies_at_equal_spend": dg.MetadataValue.md(outcome.comparison.round(2).to_markdown()),
        "holdout_power": dg.MetadataValue.md(
            _with_words(outcome.power.astype(object)).to_markdown() if len(outcome.power)
            else "no customer selected"
        ),
        **({"spend_vs_expected_value": images({"spend curve": outcome.curve_png})} if outcome.curve_png else {}),
    }


def _with_words(power: pd.DataFrame) -> pd.DataFrame:
    """Missing figures of ``holdout_power`` in words: no split of the segment's customers reaches them."""
    return power.where(power.notna(), "out of reach")


def _summary_asset(settings: Settings) -> dg.AssetsDefinition:
    schema = retention_summary_schema()

    @dg.asset(
        description=(
            "Per snapshot and risk segment: customers, revenue at risk, customers acted on, controls, spend and "
            "expected value. Also (re)creates the views gold.high_risk_customers, gold.revenue_at_risk_by_segment "
            "and gold.retention_priorities."
        ),
        deps=[CUSTOMER_VALUE, RETENTION_ACTIONS],
        kinds={storage_kind(settings), "pandas"},
        **_snapshot_table(settings, RETENTION_SUMMARY, schema, staged=False),
    )
    def retention_summary(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> pd.DataFrame:
        with named_failure(context):
            frames = []
            with warehouse.get_connection() as connection:
                for statement in create_views_sql():
                    connection.execute(statement).fetchall()
                for key in context.partition_keys:
                    summary = query_frame(connection, retention_summary_sql(key))
                    context.add_asset_metadata({"summary": dg.MetadataValue.md(summary.to_markdown(index=False))}, partition_key=key)
                    frames.append(summary)
            return _months(context, frames, schema)

    return retention_summary
