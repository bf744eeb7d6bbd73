"""Which campaign months are stale: a month that reads campaign contacts is rebuilt when the
contacts of the campaigns it read changed, by the fingerprints silver.campaign_contacts records."""

from __future__ import annotations

import hashlib
import json
import weakref
from datetime import date, timedelta

import dagster as dg

from churn_assets.lib.keys import CAMPAIGN_CONTACTS
from churn_assets.lib.staleness import (
    SnapshotStale,
    failed_since,
    latest_materializations,
    latest_storage_id,
    metadata_text,
    parents_newest,
    tick_state,
)

# Metadata silver.campaign_contacts records: each campaign with a valid contact and a fingerprint
# of its contacts; what a campaign month read of them, as a digest.
CAMPAIGNS_KEY, CONTACTS_DIGEST_KEY = "campaign_fingerprints", "contacts_digest"
_fingerprints: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def campaign_fingerprints(instance: dg.DagsterInstance) -> dict[str, str]:
    """{campaign snapshot: fingerprint of its valid contacts}, as silver.campaign_contacts' newest build recorded them."""
    record = latest_materializations(instance, CAMPAIGN_CONTACTS).get(None)
    text = metadata_text(record.asset_materialization.metadata, CAMPAIGNS_KEY) if record else None
    return json.loads(text) if text else {}


def contacts_digest(fingerprints: dict[str, str], key: str, matured_days: int | None) -> str:
    """The digest of the contacts a month reads: its own campaign's (``matured_days`` None), or
    those of every campaign whose churn horizon of ``matured_days`` ended by it."""
    if matured_days is None:
        read = [key] if key in fingerprints else []
    else:
        last = date.fromisoformat(key) - timedelta(days=matured_days)
        read = sorted(k for k in fingerprints if date.fromisoformat(k) <= last)
    return hashlib.sha256(json.dumps({k: fingerprints[k] for k in read}).encode()).hexdigest()[:16]


def record_contacts_digests(context: dg.AssetExecutionContext, matured_days: int | None = None) -> None:
    """Record on each partition of this run the digest of the contacts it reads, as the instance
    knows them when the run starts."""
    fingerprints = campaign_fingerprints(context.instance)
    for key in context.partition_keys:
        context.add_asset_metadata({CONTACTS_DIGEST_KEY: contacts_digest(fingerprints, key, matured_days)}, partition_key=key)


class CampaignStale(SnapshotStale):
    """True for the campaign months to read out: months with a valid contact (with
    ``horizon_days``: only once their churn horizon is observed) that are missing, whose contacts
    changed, or that an upstream partition they map to is newer than. A failed attempt is retried
    once upstream changed."""

    def __init__(self, horizon_days: int | None = None):
        super().__init__("labels" if horizon_days else "none", horizon_days or 0)

    @property
    def name(self) -> str:
        return f"campaign_stale(reads={self.reads})"

    @property
    def description(self) -> str:
        return "A campaign month that is missing, whose contacts changed, or older than upstream"

    def _stale(self, context: dg.AutomationContext, instance, key: str) -> bool:
        fingerprints = _tick_fingerprints(context)
        if key not in fingerprints or (self.reads == "labels" and not self._in_scope(tick_state(context), key)):
            return False
        return _contacts_stale(context, instance, key, contacts_digest(fingerprints, key, None))


class MaturedCampaignsStale(SnapshotStale):
    """True for the months whose learned effects are missing, whose matured campaigns' contacts
    changed, or that an upstream partition they map to is newer than."""

    def __init__(self, horizon_days: int):
        super().__init__("none", horizon_days)

    @property
    def name(self) -> str:
        return "matured_campaigns_stale"

    @property
    def description(self) -> str:
        return "Missing, the matured campaigns' contacts changed, or older than upstream"

    def _stale(self, context: dg.AutomationContext, instance, key: str) -> bool:
        return _contacts_stale(context, instance, key, contacts_digest(_tick_fingerprints(context), key, self.horizon_days))


def _tick_fingerprints(context: dg.AutomationContext) -> dict[str, str]:
    """The campaigns' fingerprints, read once per evaluation tick."""
    view = context.asset_graph_view
    if view not in _fingerprints:
        _fingerprints[view] = campaign_fingerprints(view.instance)
    return _fingerprints[view]


def _contacts_stale(context, instance, key: str, digest: str) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.key, asset_partitions=[key]), limit=1
    ).records
    own = records[0] if records else None
    newest = parents_newest(context, instance, key, partitioned_only=True)
    failed = failed_since(instance, context.key, key, own.storage_id if own else None)
    if failed is not None:
        upstream = max(newest, latest_storage_id(instance, CAMPAIGN_CONTACTS) or 0)
        return upstream > failed
    if own is None or newest > own.storage_id:
        return True
    return metadata_text(own.asset_materialization.metadata, CONTACTS_DIGEST_KEY) != digest
