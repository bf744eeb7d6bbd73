"""The whole pipeline as one plain script, with no Dagster: the yardstick for orchestration overhead.

Landing files -> bronze -> silver and quarantine (with row accounting), campaign contacts ->
features and labels for every snapshot (with their checks) -> for every snapshot with data, oldest
first: model, MLflow run and champion gate, predictions, customer value, learned action effects,
retention plan and summary -> every campaign's read-out and execution; the same work
``churn-assets run`` does on a fresh home, through the same core functions the assets call, into
its own DuckDB file and MLflow store. What it leaves out is what
orchestration adds: run and event storage, the IO manager, asset metadata and lineage.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date

import duckdb
import pandas as pd
import pyarrow as pa

from churn_assets.core import tables
from churn_assets.core.gold.action_effects import learned_effects, matured_contacts_sql
from churn_assets.core.gold.plan_effects import plan_effects
from churn_assets.core.gold.uplift import matured_contacts_sql as matured_customers_sql
from churn_assets.core.gold.uplift_validation import uplift_validation_schema, validate_out_of_time
from churn_assets.core.ingestion.bronze import ingest_landed_file
from churn_assets.core.silver.campaign_contacts import (
    contact_quarantine_schema,
    contacts_and_quarantine,
    empty_bronze_contacts_sql,
    in_running_campaign,
    silver_contacts_schema,
)
from churn_assets.core.gold.campaign_execution import execution_table, plan_and_contacts_sql
from churn_assets.core.gold.campaign_outcomes import campaign_customers_sql, outcomes_table, with_money
from churn_assets.core.silver.features import features_query
from churn_assets.core.silver.labels import labels_query
from churn_assets.core.gold.retention import (
    customer_value_schema,
    plan_customers_sql,
    plan_with_baselines,
    retention_actions_schema,
)
from churn_assets.core.ingestion.landing import scan_landing
from churn_assets.core.ml.training_window import NotEnoughHistory
from churn_assets.core.silver.quality import repeated_pairs_sql, rows_at_or_after_snapshot_sql
from churn_assets.core.silver.transactions import (
    quarantine_query,
    row_accounting_sql,
    silver_query,
    stage_classified_rows,
)
from churn_assets.core.ingestion.sources import SOURCES
from churn_assets.core.gold.summary import (
    create_views_sql,
    retention_summary_schema,
    retention_summary_sql,
)
from churn_assets.core.table_query import TableQuery, write_table_query
from churn_assets.core.ml.training import (
    score_with_registered_model,
    snapshot_features_sql,
    train_and_register,
    training_data,
)
from churn_assets.core.gold.value import value_for_snapshot
from churn_assets.core.warehouse import insert_by_name, query_frame, snapshots_with_data, table_exists
from churn_assets.settings import Settings

# step(name) times one step; the object it yields takes ``rows`` (rows written by the step).
Step = Callable[[str], AbstractContextManager]


class PlainPipelineError(RuntimeError):
    """A step's own check failed; the message says which and why."""


def run_plain_pipeline(settings: Settings, step: Step, models: bool = True) -> str:
    """Build every table of the warehouse at ``settings.warehouse_path`` from the landed files and,
    with ``models``, model and plan every snapshot with data. Returns the newest (YYYY-MM-DD)."""
    with duckdb.connect(str(settings.warehouse_path), config=settings.duckdb_config) as connection:
        for schema in ("bronze", "silver", "ml", "gold"):
            connection.execute(f"create schema if not exists {schema}")
        _bronze(connection, settings, step)
        _silver(connection, settings, step)
        _campaign_contacts(connection, settings, step)
        snapshots = snapshots_with_data(connection, settings.start_date)
        _snapshots(connection, settings, snapshots, step)
        if not models:
            return snapshots[-1]
        for table in (tables.ML_CHURN_PREDICTIONS, tables.GOLD_CUSTOMER_VALUE, tables.GOLD_ACTION_EFFECTS, tables.GOLD_UPLIFT_VALIDATION, tables.GOLD_RETENTION_ACTIONS,
                      tables.GOLD_RETENTION_SUMMARY, tables.GOLD_CAMPAIGN_OUTCOMES, tables.GOLD_CAMPAIGN_EXECUTION):
            connection.execute(f"drop table if exists {table}")
        for snapshot in snapshots:  # oldest first, as a range run does
            if _model_and_predictions(connection, settings, snapshot, step, plots=snapshot == snapshots[-1]):
                _gold(connection, settings, snapshot, step, plot=snapshot == snapshots[-1])
        _campaigns(connection, settings, step)
    return snapshots[-1]


def _write(connection, table: str, frame: pd.DataFrame | pa.Table, append: bool = False) -> None:
    if isinstance(frame, pd.DataFrame):
        frame = pa.Table.from_pandas(frame, preserve_index=False)
    if not append:
        connection.execute(f"drop table if exists {table}")
    insert_by_name(connection, table, frame)


def _write_query(connection, table: str, query: TableQuery) -> int:
    """Replace ``table`` with ``query``'s rows, computed and checked inside DuckDB, as the IO manager does."""
    connection.execute("begin transaction")
    connection.execute(f"drop table if exists {table}")
    rows = write_table_query(connection, table, query).rows
    connection.execute("commit")
    return rows


def _bronze(connection, settings: Settings, step: Step) -> None:
    files, _ = scan_landing(settings.landing_dir)
    ingested_at = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
    for source in SOURCES.values():
        names = [f.name for f in files if f.source == source.name]
        if not names:
            continue
        with step(f"bronze.{source.name}") as timed:
            connection.execute(f"drop table if exists bronze.{source.name}")
            timed.rows = 0
            for name in names:  # file by file, as the orchestrated ingestion stages them
                frame = ingest_landed_file(
                    settings.landing_dir, source, name, ingested_at=ingested_at,
                    column_map=settings.column_map(source.name),
                )[0]
                _write(connection, f"bronze.{source.name}", frame, append=True)
                timed.rows += len(frame)


def _silver(connection, settings: Settings, step: Step) -> None:
    with step(tables.SILVER_TRANSACTIONS) as timed:
        classified = stage_classified_rows(
            connection, tables.BRONZE_TRANSACTIONS, settings.max_abs_amount, settings.timestamp_rules
        )
        timed.rows = _write_query(connection, tables.SILVER_TRANSACTIONS, silver_query(classified))
        timed.rows += _write_query(connection, tables.SILVER_QUARANTINE, quarantine_query(classified))
        connection.execute(f"drop table {classified}")
    with step("silver.transactions_row_accounting"):
        accounting = connection.execute(
            row_accounting_sql(tables.BRONZE_TRANSACTIONS, tables.SILVER_TRANSACTIONS, tables.SILVER_QUARANTINE)
        ).df()
        if (accounting["unaccounted"] != 0).any():
            raise PlainPipelineError(f"row accounting failed:\n{accounting[accounting['unaccounted'] != 0]}")


def _campaign_contacts(connection, settings: Settings, step: Step) -> None:
    with step(tables.SILVER_CAMPAIGN_CONTACTS) as timed:
        bronze = tables.BRONZE_CAMPAIGN_CONTACTS if table_exists(connection, "bronze", "campaign_contacts") else empty_bronze_contacts_sql()
        actions = tuple(a.name for a in settings.action_catalogue)
        contacts, quarantine, _ = contacts_and_quarantine(connection, bronze, tables.SILVER_TRANSACTIONS, actions, settings.timestamp_rules)
        _write(connection, tables.SILVER_CAMPAIGN_CONTACTS, silver_contacts_schema().validate(contacts))
        _write(connection, tables.SILVER_CAMPAIGN_CONTACTS_QUARANTINE, contact_quarantine_schema().validate(quarantine))
        timed.rows = len(contacts) + len(quarantine)


def _campaigns(connection, settings: Settings, step: Step) -> None:
    """Each campaign's read-out once its horizon is observed, and its execution where it has a plan."""
    campaigns = [str(r[0])[:10] for r in connection.execute(f"select distinct snapshot_date from {tables.SILVER_CAMPAIGN_CONTACTS} order by 1").fetchall()]
    labelled = {str(r[0])[:10] for r in connection.execute(f"select distinct snapshot_date from {tables.SILVER_CHURN_LABELS}").fetchall()}
    planned = {str(r[0])[:10] for r in connection.execute(f"select distinct snapshot_date from {tables.GOLD_RETENTION_ACTIONS}").fetchall()} \
        if table_exists(connection, "gold", "retention_actions") else set()
    with step(tables.GOLD_CAMPAIGN_OUTCOMES) as timed:
        for key in (c for c in campaigns if c in labelled):
            customers = query_frame(connection, campaign_customers_sql(key, table_exists(connection, "gold", "customer_value")))
            outcome = outcomes_table(with_money(customers, settings.action_catalogue), key)
            _write(connection, tables.GOLD_CAMPAIGN_OUTCOMES, outcome, append=True)
            timed.rows = (timed.rows or 0) + len(outcome)
    with step(tables.GOLD_CAMPAIGN_EXECUTION) as timed:
        for key in (c for c in campaigns if c in planned):
            execution = execution_table(query_frame(connection, plan_and_contacts_sql(key)), key)
            _write(connection, tables.GOLD_CAMPAIGN_EXECUTION, execution, append=True)
            timed.rows = (timed.rows or 0) + len(execution)


def _snapshots(connection, settings: Settings, snapshots: list[str], step: Step) -> None:
    with step(tables.SILVER_CUSTOMER_FEATURES) as timed:
        dates = [date.fromisoformat(s) for s in snapshots]
        features, _ = features_query(connection, dates, settings.timestamp_rules)
        timed.rows = _write_query(connection, tables.SILVER_CUSTOMER_FEATURES, features)
    for check, sql in (
        ("unique_customer_per_snapshot", repeated_pairs_sql(tables.SILVER_CUSTOMER_FEATURES, ("snapshot_date", "customer_id"))),
        ("no_data_at_or_after_snapshot", rows_at_or_after_snapshot_sql(tables.SILVER_CUSTOMER_FEATURES)),
    ):
        with step(f"silver.customer_features_{check}"):
            if connection.execute(sql).fetchall()[0][0]:
                raise PlainPipelineError(f"check {check} on {tables.SILVER_CUSTOMER_FEATURES} failed")
    with step(tables.SILVER_CHURN_LABELS) as timed:
        labels, _, _ = labels_query(connection, dates, settings.churn_horizon_days)
        timed.rows = _write_query(connection, tables.SILVER_CHURN_LABELS, labels)


def _model_and_predictions(connection, settings: Settings, snapshot: str, step: Step, plots: bool) -> bool:
    """The month's model, gate and predictions; False when the month has too little history."""
    with step("ml.churn_model") as timed:
        try:
            data = training_data(connection, settings, date.fromisoformat(snapshot))
        except NotEnoughHistory:
            return False
        trained = train_and_register(settings, data, tags={"plain_pipeline": "true"}, plots=plots)
        timed.rows = trained.result.train_rows
    with step(tables.ML_CHURN_PREDICTIONS) as timed:
        features = query_frame(connection, snapshot_features_sql(snapshot))
        scored = score_with_registered_model(settings, snapshot, features)
        if scored is None:
            raise PlainPipelineError(f"no model version for {snapshot}: the champion gate refused it")
        if len(scored.predictions) != len(features):
            raise PlainPipelineError("predictions do not cover every customer in the features")
        _write(connection, tables.ML_CHURN_PREDICTIONS, scored.predictions, append=True)
        timed.rows = len(scored.predictions)
    return True


def _gold(connection, settings: Settings, snapshot: str, step: Step, plot: bool) -> None:
    with step(tables.GOLD_CUSTOMER_VALUE) as timed:
        frame, _, _ = value_for_snapshot(connection, date.fromisoformat(snapshot), settings)
        value = customer_value_schema().validate(frame)
        _write(connection, tables.GOLD_CUSTOMER_VALUE, value, append=True)
        timed.rows = len(value)
    with step(tables.GOLD_ACTION_EFFECTS) as timed:
        cells = query_frame(connection, matured_contacts_sql(date.fromisoformat(snapshot), settings.churn_horizon_days))
        effects = learned_effects(
            cells, settings.action_catalogue, date.fromisoformat(snapshot), settings.effect_prior_sd, settings.segment_effect_sd
        )
        if len(effects):
            _write(connection, tables.GOLD_ACTION_EFFECTS, effects, append=True)
        timed.rows = len(effects)
    with step(tables.GOLD_UPLIFT_VALIDATION) as timed:
        contacts = query_frame(connection, matured_customers_sql(date.fromisoformat(snapshot), settings.churn_horizon_days))
        validation = validate_out_of_time(
            contacts, settings.action_catalogue, date.fromisoformat(snapshot), settings.effect_prior_sd, settings.segment_effect_sd,
            settings.seed,
        )
        _write(connection, tables.GOLD_UPLIFT_VALIDATION, uplift_validation_schema().validate(validation.table), append=True)
        timed.rows = len(validation.table)
    with step(tables.GOLD_RETENTION_ACTIONS) as timed:
        customers = query_frame(connection, plan_customers_sql(snapshot))
        effects = plan_effects(connection, customers, snapshot, settings)
        running = in_running_campaign(connection, customers, snapshot, settings.churn_horizon_days)
        outcome = plan_with_baselines(
            customers, settings, plot=plot, catalogue=effects.catalogue, excluded=running, uplift=effects.uplift
        )
        _write(connection, tables.GOLD_RETENTION_ACTIONS, retention_actions_schema().validate(outcome.plan), append=True)
        timed.rows = len(outcome.plan)
    with step(tables.GOLD_RETENTION_SUMMARY) as timed:
        for statement in create_views_sql():
            connection.execute(statement)
        summary = retention_summary_schema().validate(query_frame(connection, retention_summary_sql(snapshot)))
        _write(connection, tables.GOLD_RETENTION_SUMMARY, summary, append=True)
        timed.rows = len(summary)
