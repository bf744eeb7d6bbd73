"""Campaigns: the contacts each executed, what they did to churn against the control group, and
how much of the plan they executed."""

import json
import warnings

import dagster as dg
import pandas as pd

from churn_assets.core import tables
from churn_assets.core.silver.campaign_contacts import (
    CONTACT_QUARANTINE_REASONS,
    contact_accounting_sql,
    contact_quarantine_schema,
    contacts_and_quarantine,
    empty_bronze_contacts_sql,
    silver_contacts_schema,
)
from churn_assets.core.gold.campaign_execution import (
    MIN_COVERAGE,
    campaign_execution_schema,
    execution_table,
    plan_and_contacts_sql,
)
from churn_assets.core.gold.campaign_outcomes import (
    SRM_ALPHA,
    campaign_customers_sql,
    campaign_outcomes_schema,
    outcomes_table,
    sample_ratio_mismatch,
    with_money,
)
from churn_assets.core.warehouse import query_frame, table_exists
from churn_assets.lib.automation import follow_campaigns, rebuild_when_stale
from churn_assets.lib.failures import named_failure
from churn_assets.lib.keys import (
    CAMPAIGN_CONTACTS,
    CAMPAIGN_EXECUTION,
    CAMPAIGN_OUTCOMES,
    CHURN_LABELS,
    CONTACT_QUARANTINE,
    CUSTOMER_FEATURES,
    CUSTOMER_VALUE,
    RETENTION_ACTIONS,
    SILVER_TRANSACTIONS,
    bronze_key,
)
from churn_assets.lib.metadata import column_schema, dagster_type, preview
from churn_assets.lib.partitions import snapshot_partitions
from churn_assets.lib.resources import DUCKDB_POOL, WarehouseResource, storage_kind
from churn_assets.lib.campaign_staleness import CAMPAIGNS_KEY, record_contacts_digests
from churn_assets.settings import Settings

SAMPLE_RATIO = "sample_ratio"
EXECUTION_COVERAGE = "execution_coverage"


def _bronze_contacts(connection) -> str:
    """``bronze.campaign_contacts``, or an empty relation of its shape before any contact landed."""
    if table_exists(connection, "bronze", "campaign_contacts"):
        return tables.BRONZE_CAMPAIGN_CONTACTS
    return empty_bronze_contacts_sql()


def build_campaign_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy is marked beta
        return [_contacts_asset(settings), _outcomes_asset(settings), _execution_asset(settings)]


def _contacts_asset(settings: Settings) -> dg.AssetsDefinition:
    actions = tuple(a.name for a in settings.action_catalogue)

    @dg.multi_asset(
        outs={
            "campaign_contacts": dg.AssetOut(
                key=CAMPAIGN_CONTACTS,
                dagster_type=dagster_type(silver_contacts_schema()),
                description="What each retention campaign executed: one row per campaign and customer contacted or held out.",
                metadata={"dagster/column_schema": column_schema(silver_contacts_schema())},
                kinds={storage_kind(settings), "pandas"},
                automation_condition=rebuild_when_stale(),
            ),
            "campaign_contacts_quarantine": dg.AssetOut(
                key=CONTACT_QUARANTINE,
                dagster_type=dagster_type(contact_quarantine_schema()),
                description="Every landed contact row not in silver, with its reason: " + ", ".join(CONTACT_QUARANTINE_REASONS) + ".",
                metadata={"dagster/column_schema": column_schema(contact_quarantine_schema())},
                kinds={storage_kind(settings), "pandas"},
                automation_condition=rebuild_when_stale(),
            ),
        },
        deps=[bronze_key("campaign_contacts"), SILVER_TRANSACTIONS],
        group_name="silver",
        pool=DUCKDB_POOL,
    )
    def campaign_contacts(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """Rebuilds both tables from all landed contacts in one classifying pass."""
        with named_failure(context):
            with warehouse.get_connection() as connection:
                contacts, quarantine, fingerprints = contacts_and_quarantine(
                    connection, _bronze_contacts(connection), tables.SILVER_TRANSACTIONS, actions, settings.timestamp_rules
                )
            contacts = silver_contacts_schema().validate(contacts)
            per_campaign = _per_campaign(contacts)
            yield dg.Output(contacts, "campaign_contacts", metadata={
                CAMPAIGNS_KEY: dg.MetadataValue.text(json.dumps(fingerprints)),
                "campaigns": len(per_campaign),
                "contacts_per_campaign": dg.MetadataValue.md(
                    per_campaign.to_markdown(index=False) if len(per_campaign) else "no campaign contacts landed"
                ),
                "preview": preview(contacts),
            })
            reasons = quarantine["reason"].value_counts()
            yield dg.Output(contact_quarantine_schema().validate(quarantine), "campaign_contacts_quarantine", metadata={
                **{f"reason/{reason}": int(reasons.get(reason, 0)) for reason in CONTACT_QUARANTINE_REASONS},
                "preview": preview(quarantine),
            })

    return campaign_contacts


def _per_campaign(contacts: pd.DataFrame) -> pd.DataFrame:
    """Treated contacts and controls per campaign and action."""
    if contacts.empty:
        return pd.DataFrame(columns=["campaign"])
    table = pd.crosstab(
        [contacts["snapshot_date"].dt.strftime("%Y-%m-%d").rename("campaign")],
        contacts["is_control"].map({True: "controls", False: "treated"}),
    )
    return table.reindex(columns=["treated", "controls"], fill_value=0).reset_index().rename_axis(columns=None)


@dg.asset_check(
    asset=CAMPAIGN_CONTACTS,
    additional_deps=[bronze_key("campaign_contacts"), CONTACT_QUARANTINE],
    name="row_accounting",
    description="For every landed contact file: bronze rows = silver rows + quarantined rows.",
    blocking=True,
    pool=DUCKDB_POOL,
)
def contact_row_accounting(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as connection:
        accounting = connection.execute(contact_accounting_sql(
            _bronze_contacts(connection), tables.SILVER_CAMPAIGN_CONTACTS, tables.SILVER_CAMPAIGN_CONTACTS_QUARANTINE
        )).df()
    broken = accounting[accounting["unaccounted"] != 0]
    return dg.AssetCheckResult(
        passed=broken.empty,
        metadata={
            **{name: int(value) for name, value in accounting.drop(columns="_source_file").sum().items()},
            "files": len(accounting),
            "files_not_reconciled": dg.MetadataValue.md(broken.to_markdown(index=False) if len(broken) else "none"),
        },
    )


def _campaign_table(
    settings: Settings, key: dg.AssetKey, schema, deps: list, checks: list, horizon_days: int | None = None,
    needs: dg.AssetSelection | None = None,
) -> dict:
    """What both campaign tables share: a partition per campaign (its snapshot), one run for a range."""
    return dict(
        key=key,
        group_name="gold",
        partitions_def=snapshot_partitions(settings),
        deps=deps,
        dagster_type=dagster_type(schema),
        metadata={"partition_expr": "snapshot_date", "dagster/column_schema": column_schema(schema)},
        pool=DUCKDB_POOL,
        automation_condition=follow_campaigns(horizon_days, needs),
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=checks,
    )


def _outcomes_asset(settings: Settings) -> dg.AssetsDefinition:
    schema = campaign_outcomes_schema()
    srm = dg.AssetCheckSpec(
        SAMPLE_RATIO, asset=CAMPAIGN_OUTCOMES,
        description=f"Each campaign held out CHURN_CONTROL_SHARE of every action and risk segment (chi-square, fails below p = {SRM_ALPHA}).",
    )

    @dg.asset(
        description=(
            "Per campaign, once its churn horizon is observed: treated against control churn per action and risk segment "
            "and in total, the uplift with its 95% interval and p-value, incremental customers, revenue, cost, net value "
            "and ROI, and the catalogue's expected saved revenue beside the measured one."
        ),
        kinds={storage_kind(settings), "pandas", "scipy"},
        **_campaign_table(
            settings, CAMPAIGN_OUTCOMES, schema, [CAMPAIGN_CONTACTS, CHURN_LABELS, CUSTOMER_VALUE, CUSTOMER_FEATURES], [srm],
            settings.churn_horizon_days,
            # a month without a model has no value or risk segment: its campaign is read out 'unscored'
            needs=dg.AssetSelection.assets(CAMPAIGN_CONTACTS, CHURN_LABELS),
        ),
    )
    def campaign_outcomes(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        with named_failure(context):
            record_contacts_digests(context)
            frames, ratios = [], []
            with warehouse.get_connection() as connection:
                for key in context.partition_keys:
                    _require_observed_horizon(connection, key, settings.churn_horizon_days)
                    sql = campaign_customers_sql(
                        key, table_exists(connection, "gold", "customer_value"), table_exists(connection, "silver", "customer_features")
                    )
                    customers = with_money(query_frame(connection, sql), settings.action_catalogue)
                    outcome = outcomes_table(customers, key)
                    cells = outcome[outcome["action"] != "all"]
                    statistic, p_value = sample_ratio_mismatch(cells["treated"], cells["controls"], settings.control_share)
                    ratios.append({"campaign": key, "chi_square": round(statistic, 3), "p_value": round(p_value, 4)})
                    context.add_asset_metadata(_outcome_metadata(outcome, p_value), partition_key=key)
                    frames.append(outcome)
            outcomes = schema.validate(pd.concat(frames, ignore_index=True))
            yield dg.Output(outcomes)
            ratios = pd.DataFrame(ratios)
            yield dg.AssetCheckResult(
                check_name=SAMPLE_RATIO,
                passed=bool((ratios["p_value"] >= SRM_ALPHA).all()),
                metadata={"control_share": settings.control_share, "campaigns": dg.MetadataValue.md(ratios.to_markdown(index=False))},
            )

    return campaign_outcomes


def _require_observed_horizon(connection, key: str, horizon_days: int) -> None:
    """Refuse a campaign whose churn horizon the data does not cover yet: a read-out then would
    count customers who have not had the time to churn."""
    labels = connection.execute(
        f"select count(*) from {tables.SILVER_CHURN_LABELS} where snapshot_date = ?", [key]
    ).fetchall()[0][0] if table_exists(connection, "silver", "churn_labels") else 0
    if not labels:
        raise dg.Failure(
            f"campaign {key}: no churn labels for {key}; its {horizon_days}-day horizon is not observed yet "
            "(the read-out is built once orders reach past it)"
        )


def _outcome_metadata(outcome: pd.DataFrame, srm_p_value: float) -> dict:
    total = outcome[outcome["action"] == "all"].iloc[0]
    shown = outcome[["action", "risk_segment", "treated", "controls", "churn_treated", "churn_control",
                     "uplift", "uplift_low", "uplift_high", "p_value", "incremental_net_value", "calibration"]]
    return {
        "dagster/row_count": len(outcome),
        "treated": int(total["treated"]),
        "controls": int(total["controls"]),
        "uplift": float(total["uplift"]),
        "uplift_95": f"[{total['uplift_low']:.4f}, {total['uplift_high']:.4f}]",
        "incremental_net_value": float(total["incremental_net_value"]),
        "sample_ratio_p_value": srm_p_value,
        "outcomes": dg.MetadataValue.md(shown.round(4).to_markdown(index=False)),
    }


def _execution_asset(settings: Settings) -> dg.AssetsDefinition:
    schema = campaign_execution_schema()
    coverage = dg.AssetCheckSpec(
        EXECUTION_COVERAGE, asset=CAMPAIGN_EXECUTION,
        description=f"Each campaign executed at least {MIN_COVERAGE:.0%} of its plan's treated customers as planned.",
    )

    @dg.asset(
        description=(
            "Per campaign with a plan for its snapshot: the plan's treated customers executed as planned, with another "
            "action or not at all, controls contacted against the plan, contacts outside the plan, and the coverage."
        ),
        kinds={storage_kind(settings), "pandas"},
        **_campaign_table(settings, CAMPAIGN_EXECUTION, schema, [CAMPAIGN_CONTACTS, RETENTION_ACTIONS], [coverage]),
    )
    def campaign_execution(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        with named_failure(context):
            record_contacts_digests(context)
            frames = []
            with warehouse.get_connection() as connection:
                for key in context.partition_keys:
                    table = execution_table(query_frame(connection, plan_and_contacts_sql(key)), key)
                    context.add_asset_metadata({
                        "dagster/row_count": len(table),
                        "coverage": float(table["coverage"].iloc[-1]),
                        "execution": dg.MetadataValue.md(table.drop(columns="snapshot_date").round(3).to_markdown(index=False)),
                    }, partition_key=key)
                    frames.append(table)
            execution = schema.validate(pd.concat(frames, ignore_index=True))
            yield dg.Output(execution)
            totals = execution[execution["action"] == "all"]
            short = totals[totals["coverage"] < MIN_COVERAGE]  # a plan that selected nobody has no coverage to miss
            yield dg.AssetCheckResult(
                check_name=EXECUTION_COVERAGE,
                passed=short.empty,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "campaigns": len(totals),
                    "below_coverage": dg.MetadataValue.md(
                        short[["snapshot_date", "planned_treated", "executed_as_planned", "contacts_outside_plan", "coverage"]]
                        .to_markdown(index=False) if len(short) else "none"
                    ),
                },
            )

    return campaign_execution


