"""Learned action effects: what every campaign matured by a month measured, for that month's plan,
per segment and, where it wins out-of-time, per customer by the uplift model."""

import warnings
from collections.abc import Callable
from datetime import date

import dagster as dg
import pandas as pd

from churn_assets.core.gold.action_effects import action_effects_schema, effects_in_words, learned_effects, matured_contacts_sql
from churn_assets.core.plots import png_bytes, qini_figure
from churn_assets.core.silver.snapshot_inputs import labelled_offset_months
from churn_assets.core.gold.uplift import matured_contacts_sql as matured_customers_sql
from churn_assets.core.gold.uplift_validation import uplift_validation_schema, validate_out_of_time
from churn_assets.core.warehouse import query_frame, table_exists
from churn_assets.lib.automation import learn_from_campaigns
from churn_assets.lib.config import EFFECT_KNOBS, knobs_config, with_knobs
from churn_assets.lib.failures import named_failure
from churn_assets.lib.keys import ACTION_EFFECTS, CAMPAIGN_CONTACTS, CHURN_LABELS, CUSTOMER_FEATURES, UPLIFT_VALIDATION
from churn_assets.lib.metadata import column_schema, dagster_type, images
from churn_assets.lib.partitions import snapshot_partitions
from churn_assets.lib.resources import DUCKDB_POOL, WarehouseResource, storage_kind
from churn_assets.lib.campaign_staleness import record_contacts_digests
from churn_assets.settings import Settings

# Every campaign ever matured counts: twenty years of months back is all there is.
_ALL_MONTHS_BACK = 240
_INPUTS = ("campaign_contacts", "churn_labels", "customer_features")

# One month of a learning asset: (connection or None before its inputs exist, snapshot, settings,
# whether to draw plots) -> (the month's rows, its metadata)
MonthLearner = Callable[[object, date, Settings, bool], tuple[pd.DataFrame, dict]]


def _matured_campaigns_mapping(settings: Settings) -> dg.TimeWindowPartitionMapping:
    """The months whose campaigns a plan for S may learn from: up to the newest whose churn
    horizon can have ended by S (the asset keeps those whose horizon did)."""
    return dg.TimeWindowPartitionMapping(
        start_offset=-_ALL_MONTHS_BACK,
        end_offset=-labelled_offset_months(settings.churn_horizon_days),
        allow_nonexistent_upstream_partitions=True,
    )


def _learning_asset(settings: Settings, key: dg.AssetKey, schema, description: str, kinds: set[str], learn: MonthLearner) -> dg.AssetsDefinition:
    """A monthly asset that learns from every campaign matured by its month, month by month."""
    Config = knobs_config(f"{key.path[-1].title().replace('_', '')}Config", settings, EFFECT_KNOBS,
                          "The catalogue's effects and how firmly they hold as priors.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy and the mapping's allow_nonexistent_... are beta
        matured = _matured_campaigns_mapping(settings)

        @dg.asset(
            key=key,
            group_name="gold",
            description=description,
            partitions_def=snapshot_partitions(settings),
            deps=[
                CAMPAIGN_CONTACTS,
                dg.AssetDep(CHURN_LABELS, partition_mapping=matured),
                dg.AssetDep(CUSTOMER_FEATURES, partition_mapping=matured),
            ],
            dagster_type=dagster_type(schema),
            metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(schema)},
            kinds=kinds,
            pool=DUCKDB_POOL,
            automation_condition=learn_from_campaigns(settings.churn_horizon_days),
            backfill_policy=dg.BackfillPolicy.single_run(),
        )
        def _asset(context: dg.AssetExecutionContext, config: Config, warehouse: WarehouseResource) -> pd.DataFrame:
            with named_failure(context):
                record_contacts_digests(context, settings.churn_horizon_days)
                run_settings = with_knobs(settings, config)
                frames = []
                with warehouse.get_connection() as connection:
                    ready = all(table_exists(connection, "silver", t) for t in _INPUTS)
                    for month in context.partition_keys:
                        plot = month == context.partition_keys[-1]  # as the plan's spend curve: the newest month only
                        frame, metadata = learn(connection if ready else None, date.fromisoformat(month), run_settings, plot)
                        context.add_asset_metadata(metadata, partition_key=month)
                        frames.append(frame)
                filled = [frame for frame in frames if len(frame)] or frames[:1]  # months before any campaign have no rows
                return schema.validate(pd.concat(filled, ignore_index=True))

    return _asset


def build_action_effects(settings: Settings) -> dg.AssetsDefinition:
    return _learning_asset(
        settings, ACTION_EFFECTS, action_effects_schema(),
        "Per plan month S, action and customer segment: the relative churn reduction measured against the "
        "control groups of every campaign whose churn horizon ended by S, with its interval, shrunk toward the "
        "catalogue's assumed effect (normal prior, CHURN_EFFECT_PRIOR_SD). Empty before any campaign matured.",
        {storage_kind(settings), "pandas", "scipy"}, _learn_effects,
    )


def build_uplift_validation(settings: Settings) -> dg.AssetsDefinition:
    return _learning_asset(
        settings, UPLIFT_VALIDATION, uplift_validation_schema(),
        "Per plan month S and action: the per-customer uplift model (an X-learner on the randomised contacts of "
        "the campaigns matured by S) tested out-of-time on the newest of them, by the area under its Qini curve "
        "against the segment estimates, highest churn risk first and random targeting. CHURN_EFFECT_SOURCE="
        "uplift plans with the model for the actions where it beat the segment estimates.",
        {storage_kind(settings), "pandas", "scikitlearn"}, _validate_uplift,
    )


def _learn_effects(connection, snapshot: date, settings: Settings, plot: bool) -> tuple[pd.DataFrame, dict]:
    cells = query_frame(connection, matured_contacts_sql(snapshot, settings.churn_horizon_days)) if connection else None
    effects = learned_effects(
        cells if cells is not None else pd.DataFrame(columns=["action", "segment"]),
        settings.action_catalogue, snapshot, settings.effect_prior_sd, settings.segment_effect_sd,
    )
    return effects, {
        "dagster/row_count": len(effects),
        "matured_campaigns": int(effects["campaigns"].max()) if len(effects) else 0,
        "contacts": int(effects["treated"].sum() + effects["controls"].sum()),
        "effects": dg.MetadataValue.md(
            effects_in_words(effects).to_markdown(index=False) if len(effects) else "no campaign had matured: the catalogue's effects hold"
        ),
    }


def _validate_uplift(connection, snapshot: date, settings: Settings, plot: bool) -> tuple[pd.DataFrame, dict]:
    contacts = (
        query_frame(connection, matured_customers_sql(snapshot, settings.churn_horizon_days)) if connection
        else pd.DataFrame(columns=["campaign"])
    )
    validation = validate_out_of_time(
        contacts, settings.action_catalogue, snapshot, settings.effect_prior_sd, settings.segment_effect_sd, settings.seed
    )
    table = validation.table
    shown = table[["action", "test_treated", "test_controls", "auuc_uplift", "auuc_segments", "auuc_risk", "auuc_random",
                   "auuc_gain_low", "auuc_gain_high", "uses_uplift"]]
    figure = {"qini_curves": images({"qini": png_bytes(qini_figure(validation.curves, validation.note))})} if plot and validation.curves else {}
    return table, {
        "dagster/row_count": len(table),
        "validation": validation.note,
        "actions_using_uplift": ", ".join(table.loc[table["uses_uplift"], "action"]) or "none",
        "auuc": dg.MetadataValue.md(shown.round(4).to_markdown(index=False)),
        **figure,
    }
