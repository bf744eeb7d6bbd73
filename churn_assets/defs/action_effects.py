"""Learned action effects: what every campaign matured by a month measured, for that month's plan."""

import warnings
from datetime import date

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from churn_assets.core.action_effects import (
    action_effects_schema,
    effects_in_words,
    learned_effects,
    matured_contacts_sql,
)
from churn_assets.core.snapshot_inputs import labelled_offset_months
from churn_assets.core.warehouse import query_frame, table_exists
from churn_assets.defs.automation import learn_from_campaigns
from churn_assets.defs.config import EFFECT_KNOBS, knobs_config, with_knobs
from churn_assets.defs.failures import named_failure
from churn_assets.defs.keys import ACTION_EFFECTS, CAMPAIGN_CONTACTS, CHURN_LABELS, CUSTOMER_FEATURES
from churn_assets.defs.metadata import column_schema, dagster_type
from churn_assets.defs.partitions import snapshot_partitions
from churn_assets.defs.resources import DUCKDB_POOL
from churn_assets.defs.staleness import record_contacts_digests
from churn_assets.settings import Settings

# Every campaign ever matured counts: twenty years of months back is all there is.
_ALL_MONTHS_BACK = 240


def _matured_campaigns_mapping(settings: Settings) -> dg.TimeWindowPartitionMapping:
    """The months whose campaigns a plan for S may learn from: up to the newest whose churn
    horizon can have ended by S (the asset keeps those whose horizon did)."""
    return dg.TimeWindowPartitionMapping(
        start_offset=-_ALL_MONTHS_BACK,
        end_offset=-labelled_offset_months(settings.churn_horizon_days),
        allow_nonexistent_upstream_partitions=True,
    )


def build_action_effects(settings: Settings) -> dg.AssetsDefinition:
    EffectsConfig = knobs_config("EffectsConfig", settings, EFFECT_KNOBS, "The catalogue's effects and how firmly they hold as priors.")
    schema = action_effects_schema()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy and the mapping's allow_nonexistent_... are beta
        matured = _matured_campaigns_mapping(settings)

        @dg.asset(
            key=ACTION_EFFECTS,
            group_name="gold",
            description=(
                "Per plan month S, action and customer segment: the relative churn reduction measured against the "
                "control groups of every campaign whose churn horizon ended by S, with its interval, shrunk toward the "
                "catalogue's assumed effect (normal prior, CHURN_EFFECT_PRIOR_SD). Empty before any campaign matured."
            ),
            partitions_def=snapshot_partitions(settings),
            deps=[
                CAMPAIGN_CONTACTS,
                dg.AssetDep(CHURN_LABELS, partition_mapping=matured),
                dg.AssetDep(CUSTOMER_FEATURES, partition_mapping=matured),
            ],
            dagster_type=dagster_type(schema),
            metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(schema)},
            kinds={"duckdb", "pandas", "scipy"},
            pool=DUCKDB_POOL,
            automation_condition=learn_from_campaigns(settings.churn_horizon_days),
            backfill_policy=dg.BackfillPolicy.single_run(),
        )
        def action_effects(context: dg.AssetExecutionContext, config: EffectsConfig, warehouse: DuckDBResource) -> pd.DataFrame:
            with named_failure(context):
                record_contacts_digests(context, settings.churn_horizon_days)
                run_settings = with_knobs(settings, config)
                frames = []
                with warehouse.get_connection() as connection:
                    ready = all(table_exists(connection, "silver", t) for t in ("campaign_contacts", "churn_labels", "customer_features"))
                    for key in context.partition_keys:
                        snapshot = date.fromisoformat(key)
                        cells = query_frame(connection, matured_contacts_sql(snapshot, settings.churn_horizon_days)) if ready else None
                        effects = learned_effects(
                            cells if cells is not None else pd.DataFrame(columns=["action", "segment"]),
                            run_settings.action_catalogue, snapshot, run_settings.effect_prior_sd,
                        )
                        context.add_asset_metadata(_effects_metadata(effects), partition_key=key)
                        frames.append(effects)
                filled = [frame for frame in frames if len(frame)] or frames[:1]  # months before any campaign have no rows
                return schema.validate(pd.concat(filled, ignore_index=True))

    return action_effects


def _effects_metadata(effects: pd.DataFrame) -> dict:
    return {
        "dagster/row_count": len(effects),
        "matured_campaigns": int(effects["campaigns"].max()) if len(effects) else 0,
        "contacts": int(effects["treated"].sum() + effects["controls"].sum()),
        "effects": dg.MetadataValue.md(
            effects_in_words(effects).to_markdown(index=False) if len(effects) else "no campaign had matured: the catalogue's effects hold"
        ),
    }
