"""When assets refresh on their own: the one rule set both the daemon and ``churn-assets run`` obey.

Bronze is ingested by the landing sensor. From there each layer follows ``SnapshotStale``
(``staleness.py``): silver when a landed file was ingested after it; a month's features and labels
when the data they read changed; a month's model, predictions, value, plan and summary when a
partition they map to is newer, or will be built on the same tick. Months without data are never
computed. The daemon evaluates these conditions in the automation sensor below; ``churn-assets
run`` evaluates the same conditions on the same instance (``runner.py``).
"""

from __future__ import annotations

import warnings

import dagster as dg

from churn_assets.lib.keys import CAMPAIGN_CONTACTS, LANDING_LEDGER, SILVER_QUARANTINE, SILVER_TRANSACTIONS
from churn_assets.lib.campaign_staleness import CampaignStale, MaturedCampaignsStale
from churn_assets.lib.staleness import HasSnapshotData, SnapshotStale

_NOT_BUSY = ~dg.AutomationCondition.in_progress() & ~dg.AutomationCondition.any_deps_in_progress()
_SILVER = dg.AssetSelection.assets(SILVER_TRANSACTIONS, SILVER_QUARANTINE)


def rebuild_when_stale() -> dg.AutomationCondition:
    """Silver and the landing ledger: rebuilt once a landed file was ingested after them."""
    return (SnapshotStale() & _NOT_BUSY).with_label("rebuild_when_stale")


def refresh_when_data_changes(reads: str, horizon_days: int) -> dg.AutomationCondition:
    """Features (``reads='features'``) and labels (``'labels'``): the months whose data changed,
    once silver is built (never on the tick that will rebuild it)."""
    silver_pending = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested()).allow(_SILVER)
    return (SnapshotStale(reads, horizon_days) & ~silver_pending & _NOT_BUSY).with_label(
        f"refresh_when_{reads}_data_changes"
    )


def follow_upstream_months() -> dg.AutomationCondition:
    """Model, predictions, value, plan and summary of a month with data: when a partition they map
    to is newer or will be built on this tick, so a month goes from features to plan in one tick.
    Silver reaches them only through the features' months, so it does not count here."""
    upstream_planned = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested()).ignore(_SILVER)
    return (HasSnapshotData() & (SnapshotStale() | upstream_planned) & _NOT_BUSY).with_label("follow_upstream_months")


def follow_campaigns(horizon_days: int | None = None, needs: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """A campaign's read-out (with ``horizon_days``: once its churn horizon is observed) or its
    execution: when its contacts or an upstream month changed and every upstream month it
    ``needs`` (default: all) exists, never on the tick that builds an upstream month."""
    will_be_requested = dg.AutomationCondition.will_be_requested()
    missing = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.missing() & ~will_be_requested)
    upstream_planned = dg.AutomationCondition.any_deps_match(will_be_requested)
    return (
        CampaignStale(horizon_days) & ~(missing if needs is None else missing.allow(needs)) & ~upstream_planned & _NOT_BUSY
    ).with_label("follow_campaigns")


def learn_from_campaigns(horizon_days: int) -> dg.AutomationCondition:
    """A month's learned action effects: for every month with data, when the contacts of a
    campaign matured by it or a month it learns from changed, or one will be built on this tick."""
    # the contacts reach the effects through their digest: rebuilt unchanged, they change nothing
    upstream_planned = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested()).ignore(
        _SILVER | dg.AssetSelection.assets(CAMPAIGN_CONTACTS)
    )
    return (
        HasSnapshotData() & (MaturedCampaignsStale(horizon_days) | upstream_planned) & _NOT_BUSY
    ).with_label("learn_from_campaigns")


# Bronze is ingested by the landing sensor; its ledger follows every ingestion.
AUTOMATED = dg.AssetSelection.all() - dg.AssetSelection.groups("bronze") | dg.AssetSelection.assets(LANDING_LEDGER)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # use_user_code_server
    automation_sensor = dg.AutomationConditionSensorDefinition(
        "refresh_downstream_assets",
        target=AUTOMATED,
        default_status=dg.DefaultSensorStatus.RUNNING,
        # the conditions above run project code, which only the code server has
        use_user_code_server=True,
        minimum_interval_seconds=15,
        description="Rebuilds silver after ingestion, then every month the new data reaches, through the plan.",
    )
