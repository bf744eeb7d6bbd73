"""Scoring customers on demand: their features as of a date, from their own rows in the warehouse,
by the same feature SQL the monthly snapshots use, then the registered model the batch used.

No Dagster: ``churn-assets score`` calls these directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd

from churn_assets.core import registry
from churn_assets.core.errors import ChurnError
from churn_assets.core.features import customer_features_schema, customer_features_sql
from churn_assets.core.scoring import score_snapshot
from churn_assets.core.sources import TimestampRules, customer_id_sql
from churn_assets.core.warehouse import query_frame, table_exists

class ScoringError(ChurnError):
    """A customer or date that cannot be scored; the message names the field and what to do."""


@dataclass(frozen=True)
class OnDemandScore:
    customer_id: str
    as_of: date
    churn_probability: float
    risk_segment: str
    reasons: list[str]
    model_version: str
    planned_action: str | None  # the plan's action for this customer at ``as_of``, when there is one

    def as_dict(self) -> dict:
        return {**asdict(self), "as_of": self.as_of.isoformat()}


def features_as_of(connection, customer_ids: list[str], as_of: date, timestamps: TimestampRules = TimestampRules()) -> pd.DataFrame:
    """Features of ``customer_ids`` for snapshot ``as_of`` (every row strictly before it), computed
    from those customers' rows only; one row per customer with an order before ``as_of``."""
    connection.register("_wanted", pd.DataFrame({"customer_id": [str(c) for c in customer_ids]}))
    try:
        mine = "(select customer_id from _wanted)"
        sources = {"transactions": f"(select * from silver.transactions where customer_id in {mine})"}
        for source, name in (("customers", "customers"), ("web_sessions", "web_sessions")):
            if table_exists(connection, "bronze", name):
                sources[source] = f"(select * from bronze.{name} where {customer_id_sql('customer_id')} in {mine})"
        frame = query_frame(connection, customer_features_sql(as_of, timestamps=timestamps, **sources))
    finally:
        connection.unregister("_wanted")
    return customer_features_schema().validate(frame.sort_values("customer_id", ignore_index=True))


def score_customers(connection, settings, customer_ids: list[str], as_of: date) -> pd.DataFrame:
    """Predictions of ``customer_ids`` as of ``as_of``, in the columns of ``ml.churn_predictions``,
    with the model version the batch used for that day (or the champion for another day)."""
    uri = settings.mlflow_tracking_uri
    batch = _batch_version(connection, as_of)
    version = registry.model_version(uri, batch) if batch else registry.champion(uri)
    if version is None:
        raise ScoringError("no model is registered yet: run `churn-assets run` until a model is trained")
    features = features_as_of(connection, customer_ids, as_of, settings.timestamp_rules)
    return score_snapshot(
        registry.load_model(uri, version.version), features, model_version=version.version,
        cutoffs=settings.risk_cutoff_pair, typical=registry.load_profile(uri, version)["typical"],
    )


def score_customer(connection, settings, customer_id: str, as_of: date | None = None) -> OnDemandScore:
    """Score one customer as of ``as_of`` (default: the newest scored snapshot)."""
    as_of = as_of or _newest_scored(connection)
    _check_customer(connection, customer_id, as_of)
    scored = score_customers(connection, settings, [customer_id], as_of).iloc[0]
    return OnDemandScore(
        customer_id=customer_id, as_of=as_of, churn_probability=float(scored["churn_probability"]),
        risk_segment=str(scored["risk_segment"]),
        reasons=[str(scored[f"reason_{i}"]) for i in (1, 2, 3) if pd.notna(scored[f"reason_{i}"])],
        model_version=str(scored["model_version"]), planned_action=_planned_action(connection, customer_id, as_of),
    )


def _newest_scored(connection) -> date:
    if not table_exists(connection, "ml", "churn_predictions"):
        raise ScoringError("nothing is scored yet: give --as-of, or run `churn-assets run` first")
    newest = connection.execute("select max(snapshot_date) from ml.churn_predictions").fetchall()[0][0]
    if newest is None:
        raise ScoringError("nothing is scored yet: give --as-of, or run `churn-assets run` first")
    return pd.Timestamp(newest).date()


def _check_customer(connection, customer_id: str, as_of: date) -> None:
    first = connection.execute(
        "select min(order_ts) from silver.transactions where customer_id = ?", [customer_id]
    ).fetchall()[0][0] if table_exists(connection, "silver", "transactions") else None
    if first is None:
        raise ScoringError(f"customer_id {customer_id!r}: no order of this customer is in silver.transactions")
    if pd.Timestamp(first) >= pd.Timestamp(as_of):
        raise ScoringError(
            f"as_of {as_of.isoformat()}: customer {customer_id!r} first ordered on {pd.Timestamp(first):%Y-%m-%d %H:%M}; "
            "give a date after it"
        )


def _batch_version(connection, as_of: date) -> str | None:
    """The registered version the monthly predictions of ``as_of`` were made with, if any."""
    if not table_exists(connection, "ml", "churn_predictions"):
        return None
    found = connection.execute(
        "select any_value(model_version) from ml.churn_predictions where snapshot_date = ?", [as_of]
    ).fetchall()[0][0]
    return None if found is None else str(found)


def _planned_action(connection, customer_id: str, as_of: date) -> str | None:
    if not table_exists(connection, "gold", "retention_actions"):
        return None
    found = connection.execute(
        "select action from gold.retention_actions where snapshot_date = ? and customer_id = ?", [as_of, customer_id]
    ).fetchall()
    return found[0][0] if found else None
