"""The effects a month's plan is solved with, read from the warehouse under an effect source:
the catalogue's ('assumed'), the learned segment effects ('measured'), or those plus the
per-customer uplift model for the actions it won out-of-time ('uplift')."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from churn_assets.core.gold.action_effects import plan_catalogue
from churn_assets.core.silver.features import FEATURE_COLUMNS
from churn_assets.core.gold.plan import Action
from churn_assets.core.gold.uplift import matured_contacts_sql, uplift_matrix
from churn_assets.core.warehouse import query_frame, table_exists
from churn_assets.core.tables import GOLD_ACTION_EFFECTS, GOLD_UPLIFT_VALIDATION, SILVER_CUSTOMER_FEATURES

EFFECT_COLUMNS = ["action", "segment", "campaigns", "treated", "controls", "prior_effect", "measured_effect", "effect"]


@dataclass
class PlanEffects:
    """The actions with the effects to plan with, the uplift model's churn prevented per customer
    and action where it is used (None: nowhere), and in words which effects these are and why."""

    catalogue: tuple[Action, ...]
    uplift: np.ndarray | None
    source: str
    effects: pd.DataFrame  # the month's learned segment effects (gold.action_effects rows)


def month_effects(connection, snapshot: str) -> pd.DataFrame:
    """The learned action effects for month ``snapshot`` (none before they were ever built)."""
    if not table_exists(connection, "gold", "action_effects"):
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    return query_frame(connection, f"select * from {GOLD_ACTION_EFFECTS} where snapshot_date = date '{snapshot}'")


def validated_actions(connection, snapshot: str) -> set[str]:
    """The actions whose uplift model beat the segment estimates out-of-time for month ``snapshot``."""
    if not table_exists(connection, "gold", "uplift_validation"):
        return set()
    rows = query_frame(connection, f"select action from {GOLD_UPLIFT_VALIDATION} where snapshot_date = date '{snapshot}' and uses_uplift")
    return set(rows["action"])


def plan_effects(connection, customers: pd.DataFrame, snapshot: str, settings, source: str | None = None) -> PlanEffects:
    """The effects for the plan of ``snapshot`` over ``customers`` (rows of ``plan_customers_sql``)
    under ``source`` (default: the settings' effect source)."""
    source = source or settings.effect_source
    effects = month_effects(connection, snapshot)
    catalogue, words = plan_catalogue(settings.action_catalogue, effects, "assumed" if source == "assumed" else "measured")
    if source != "uplift":
        return PlanEffects(catalogue, None, words, effects)
    validated = validated_actions(connection, snapshot)
    if not validated:
        return PlanEffects(catalogue, None, f"{words}; the uplift model is used for no action: it beat the segment "
                           f"estimates out-of-time for none ({GOLD_UPLIFT_VALIDATION})", effects)
    uplift, used = model_uplift(connection, customers, snapshot, settings, catalogue, validated)
    if not np.isfinite(uplift).any():
        return PlanEffects(catalogue, None, f"{words}; the uplift model is used for no action: {used}", effects)
    return PlanEffects(
        catalogue, scaled_to_segments(uplift, customers, catalogue),
        f"uplift: {used}, who gains most, scaled to each segment's measured effect; elsewhere {words}", effects,
    )


def scaled_to_segments(uplift: np.ndarray, customers: pd.DataFrame, catalogue: tuple[Action, ...]) -> np.ndarray:
    """The model's churn prevented rescaled, per action and segment, to the mean the segment's
    measured effect gives (churn probability x effect): its out-of-time test validated whom it
    ranks first, not how much it prevents; where either mean is not positive, the segment's estimate."""
    segment = customers["segment"].astype(object).where(customers["segment"].notna(), "unknown").to_numpy()
    p = customers["churn_probability"].to_numpy(float)
    scaled = uplift.copy()
    for j, action in enumerate(catalogue):
        if not np.isfinite(uplift[:, j]).any():
            continue
        estimate = p * action.effects(segment)
        for name in np.unique(segment):
            mine = segment == name
            model_mean, measured_mean = uplift[mine, j].mean(), estimate[mine].mean()
            scaled[mine, j] = uplift[mine, j] * (measured_mean / model_mean) if model_mean > 0 and measured_mean > 0 else estimate[mine]
    return scaled


def model_uplift(connection, customers: pd.DataFrame, snapshot: str, settings, catalogue: tuple[Action, ...], actions: set[str]) -> tuple[np.ndarray, str]:
    """Churn prevented per customer of ``customers`` and action in ``actions`` by the uplift model
    fitted on every campaign matured by ``snapshot`` (nan for the other actions), and in words."""
    if not table_exists(connection, "silver", "campaign_contacts"):
        return np.full((len(customers), len(catalogue)), np.nan), "no campaign contacts have landed"
    contacts = query_frame(connection, matured_contacts_sql(date.fromisoformat(snapshot), settings.churn_horizon_days))
    columns = ", ".join(FEATURE_COLUMNS)
    features = query_frame(
        connection, f"select customer_id, {columns} from {SILVER_CUSTOMER_FEATURES} where snapshot_date = date '{snapshot}'"
    )
    inputs = customers[["customer_id"]].merge(features, on="customer_id", how="left", validate="one_to_one")
    return uplift_matrix(contacts, inputs, catalogue, actions, settings.seed)
