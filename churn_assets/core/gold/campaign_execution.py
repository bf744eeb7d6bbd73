"""How much of a plan a campaign executed: its contacts against the plan of the same snapshot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pandera

from churn_assets.core.tables import GOLD_RETENTION_ACTIONS, SILVER_CAMPAIGN_CONTACTS

MIN_COVERAGE = 0.8  # below this share of the plan executed as planned, the read-out is of another campaign
ALL = "all"
TEXT = pd.StringDtype("pyarrow")


def plan_and_contacts_sql(snapshot: str) -> str:
    """Every planned customer and every contact of the campaign of ``snapshot``, side by side."""
    return f"""
        select coalesce(p.customer_id, c.customer_id) as customer_id,
               p.action as planned_action, p.is_control as planned_control, p.risk_segment,
               c.action as contact_action, c.is_control as contact_control
        from (select * from {GOLD_RETENTION_ACTIONS} where snapshot_date = date '{snapshot}') p
        full join (select * from {SILVER_CAMPAIGN_CONTACTS} where snapshot_date = date '{snapshot}') c
          using (customer_id)
        order by 1
    """


def _flag(values: pd.Series, missing: bool) -> pd.Series:
    return values.astype("boolean").fillna(missing).astype(bool)


def _counts(rows: pd.DataFrame) -> dict:
    planned = rows["planned_action"].notna()
    planned_treated = planned & ~_flag(rows["planned_control"], False)
    planned_control = planned & _flag(rows["planned_control"], False)
    contacted = rows["contact_action"].notna() & ~_flag(rows["contact_control"], True)
    as_planned = planned_treated & contacted & (rows["contact_action"] == rows["planned_action"]).fillna(False)
    n_treated = int(planned_treated.sum())
    return {
        "planned_treated": n_treated,
        "executed_as_planned": int(as_planned.sum()),
        "executed_other_action": int((planned_treated & contacted & ~as_planned).sum()),
        "not_executed": int((planned_treated & ~contacted).sum()),
        "planned_controls": int(planned_control.sum()),
        "controls_contacted": int((planned_control & contacted).sum()),
        "contacts_outside_plan": int((~planned & rows["contact_action"].notna()).sum()),
        "coverage": float(as_planned.sum() / n_treated) if n_treated else np.nan,
    }


def execution_table(rows: pd.DataFrame, snapshot: str) -> pd.DataFrame:
    """Per planned action and risk segment, and in total: the plan's treated customers executed
    as planned, with another action or not at all, controls contacted against the plan, and
    (in total) contacts of customers the plan did not hold. ``coverage``: executed as planned /
    planned treated."""
    planned = rows[rows["planned_action"].notna()]
    frame = pd.DataFrame([
        {"action": action, "risk_segment": segment, **_counts(group)}
        for (action, segment), group in planned.groupby(["planned_action", "risk_segment"], sort=True)
    ] + [{"action": ALL, "risk_segment": ALL, **_counts(rows)}])
    frame.insert(0, "snapshot_date", pd.Timestamp(snapshot))
    return frame


def campaign_execution_schema() -> pandera.DataFrameSchema:
    count = pandera.Check.ge(0)
    return pandera.DataFrameSchema(
        {
            "snapshot_date": pandera.Column("datetime64[us]", description="The campaign: its plan's snapshot"),
            "action": pandera.Column(TEXT, description="Planned action; 'all' on the total row"),
            "risk_segment": pandera.Column(TEXT),
            "planned_treated": pandera.Column("int64", count, description="Customers the plan acts on"),
            "executed_as_planned": pandera.Column("int64", count, description="Contacted with the planned action"),
            "executed_other_action": pandera.Column("int64", count, description="Contacted with another action"),
            "not_executed": pandera.Column("int64", count, description="Not contacted"),
            "planned_controls": pandera.Column("int64", count),
            "controls_contacted": pandera.Column("int64", count, description="Controls contacted all the same"),
            "contacts_outside_plan": pandera.Column("int64", count, description="Contacts of customers not in the plan"),
            "coverage": pandera.Column(float, pandera.Check.in_range(0, 1), nullable=True, description="Executed as planned / planned treated"),
        },
        name="campaign_execution", unique=["snapshot_date", "action", "risk_segment"], strict=True, ordered=True, coerce=True,
    )
