"""Scoring customers on demand from the warehouse: their raw history as the registered champion
takes it, scored by the model version the batch used for that day.

No Dagster: ``churn-assets score`` and the training step (for the logged input example) call these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd

from churn_assets.core.ml import registry
from churn_assets.core.ml.champion import score_history
from churn_assets.core.silver.raw_history import SOURCE_COLUMN, ScoringError
from churn_assets.core.ingestion.sources import CUSTOMERS, TRANSACTIONS, WEB_SESSIONS, customer_id_sql
from churn_assets.core.warehouse import query_frame, table_exists
from churn_assets.core.tables import GOLD_RETENTION_ACTIONS, ML_CHURN_PREDICTIONS, SILVER_TRANSACTIONS

# Silver's columns that are landed transaction columns; timestamps are UTC, written with their offset
# so a CHURN_TIMEZONE for naive landed times does not move them again.
_SILVER_AS_LANDED = {
    "order_id": "order_id",
    "customer_id": "customer_id",
    "order_ts": "strftime(order_ts, '%Y-%m-%d %H:%M:%S.%f') || '+00:00'",
    "amount": "amount::varchar",
    "quantity": "quantity::varchar",
    "product_category": "product_category",
    "channel": "channel",
}


@dataclass(frozen=True)
class OnDemandScore:
    customer_id: str
    as_of: date
    churn_probability: float
    risk_segment: str
    reasons: list[str]
    action: str  # the action of most expected net value under the current catalogue, or no_action
    action_cost: float
    expected_net_value: float
    expected_value: float  # revenue over the value horizon if retained (run rate)
    model_version: str
    planned_action: str | None  # the plan's action for this customer at ``as_of``, when there is one

    def as_dict(self) -> dict:
        return {**asdict(self), "as_of": self.as_of.isoformat()}


def warehouse_history(connection, customer_ids: list[str]) -> pd.DataFrame:
    """The raw history of ``customer_ids`` in the champion's input layout: their orders from
    silver.transactions, and their landed customer rows and web sessions from bronze, oldest first."""
    connection.register("_wanted", pd.DataFrame({"customer_id": [str(c) for c in customer_ids]}))
    try:
        wanted = "(select customer_id from _wanted)"
        orders = ", ".join(f"{sql} as {name}" for name, sql in _SILVER_AS_LANDED.items())
        parts = [query_frame(connection, f"""
            select '{TRANSACTIONS.name}' as {SOURCE_COLUMN}, {orders} from {SILVER_TRANSACTIONS}
            where customer_id in {wanted} order by order_ts, order_id
        """)]
        for source in (CUSTOMERS, WEB_SESSIONS):
            if table_exists(connection, "bronze", source.name):
                parts.append(query_frame(connection, f"""
                    select '{source.name}' as {SOURCE_COLUMN}, {", ".join(source.columns)} from bronze.{source.name}
                    where {customer_id_sql('customer_id')} in {wanted}
                    order by _ingested_at, _source_file, _row_number
                """))
    finally:
        connection.unregister("_wanted")
    return pd.concat([p.astype(object) for p in parts], ignore_index=True)


def score_customers(connection, settings, customer_ids: list[str], as_of: date) -> tuple[pd.DataFrame, str]:
    """Scores of ``customer_ids`` as of ``as_of`` (``champion.SCORE_COLUMNS``) and the registered
    version that made them: the one the batch used for that day, or the champion for another day."""
    uri = settings.mlflow_tracking_uri
    batch = _batch_version(connection, as_of)
    version = registry.model_version(uri, batch) if batch else registry.champion(uri)
    if version is None:
        raise ScoringError("no model is registered yet: run `churn-assets run` until a model is trained")
    champion = registry.load_champion(uri, version.version)
    scores = score_history(
        champion.pipeline, champion.card, warehouse_history(connection, customer_ids), as_of,
        settings.action_catalogue,
    )
    return scores, str(version.version)


def score_customer(connection, settings, customer_id: str, as_of: date | None = None) -> OnDemandScore:
    """Score one customer as of ``as_of`` (default: the newest scored snapshot)."""
    as_of = as_of or _newest_scored(connection)
    _check_customer(connection, customer_id)
    scores, version = score_customers(connection, settings, [customer_id], as_of)
    scored = scores.iloc[0]
    return OnDemandScore(
        customer_id=customer_id, as_of=as_of, churn_probability=float(scored["churn_probability"]),
        risk_segment=str(scored["risk_segment"]),
        reasons=[str(scored[f"reason_{i}"]) for i in (1, 2, 3) if pd.notna(scored[f"reason_{i}"])],
        action=str(scored["action"]), action_cost=float(scored["action_cost"]),
        expected_net_value=float(scored["expected_net_value"]), expected_value=float(scored["expected_value"]),
        model_version=version, planned_action=_planned_action(connection, customer_id, as_of),
    )


def _newest_scored(connection) -> date:
    if not table_exists(connection, "ml", "churn_predictions"):
        raise ScoringError("nothing is scored yet: give --as-of, or run `churn-assets run` first")
    newest = connection.execute(f"select max(snapshot_date) from {ML_CHURN_PREDICTIONS}").fetchall()[0][0]
    if newest is None:
        raise ScoringError("nothing is scored yet: give --as-of, or run `churn-assets run` first")
    return pd.Timestamp(newest).date()


def _check_customer(connection, customer_id: str) -> None:
    known = table_exists(connection, "silver", "transactions") and connection.execute(
        f"select count(*) from {SILVER_TRANSACTIONS} where customer_id = ?", [customer_id]
    ).fetchall()[0][0]
    if not known:
        raise ScoringError(f"customer_id {customer_id!r}: no order of this customer is in {SILVER_TRANSACTIONS}")


def _batch_version(connection, as_of: date) -> str | None:
    """The registered version the monthly predictions of ``as_of`` were made with, if any."""
    if not table_exists(connection, "ml", "churn_predictions"):
        return None
    found = connection.execute(
        f"select any_value(model_version) from {ML_CHURN_PREDICTIONS} where snapshot_date = ?", [as_of]
    ).fetchall()[0][0]
    return None if found is None else str(found)


def _planned_action(connection, customer_id: str, as_of: date) -> str | None:
    if not table_exists(connection, "gold", "retention_actions"):
        return None
    found = connection.execute(
        f"select action, is_control from {GOLD_RETENTION_ACTIONS} where snapshot_date = ? and customer_id = ?",
        [as_of, customer_id],
    ).fetchall()
    if not found:
        return None
    action, is_control = found[0]
    return f"none: in the control group (would have had {action})" if is_control else action
