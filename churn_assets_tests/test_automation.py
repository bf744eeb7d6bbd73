"""One rulebook: after new data lands, the daemon's automation sensor and ``churn-assets run``
select the same partitions, and they are exactly the months the data reaches."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pandas as pd
import pytest

from churn_assets.core.sample.generate import SampleConfig, generate_sample
from churn_assets.core.sample.files import write_landing
from churn_assets.definitions import build_definitions
from churn_assets.lib.automation import automation_sensor
from churn_assets.lib.keys import (
    CAMPAIGN_CONTACTS,
    CONTACT_QUARANTINE,
    LANDING_LEDGER,
    CHURN_LABELS,
    CHURN_MODEL,
    CHURN_PREDICTIONS,
    CUSTOMER_FEATURES,
    RETENTION_SUMMARY,
    SILVER_TRANSACTIONS,
)
from churn_assets.run_plan import RunPlan, plan_runs, stale_partitions
from churn_assets.lib.in_process import QUIET_LOGS, run_assets
from churn_assets.runner import run_pipeline
from churn_assets.settings import Settings
from churn_assets_tests.conftest import backdate, land, project_instance
from churn_assets_tests.dagster_helpers import launch, tick

# Data 2024-01 .. 2024-10; snapshots from 2024-05: 2024-05 .. 2024-11 have data.
START, MONTHS = date(2024, 5, 1), 10


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("automation")
    # files generated here are complete when written: nothing to wait for
    settings = Settings(churn_home=root / "home", start_date=START, max_training_rows=4000, settle_seconds=0)
    write_landing(generate_sample(SampleConfig(customers=700, months=MONTHS, seed=31)), settings.landing_dir)
    with project_instance(root / "dagster") as instance:
        report = run_pipeline(settings, instance=instance)
        assert report.ok, report.failures
        yield settings, instance, build_definitions(settings)


def _daemon_selection(instance, definitions) -> dict[dg.AssetKey, list]:
    """What the automation sensor requests on a tick, as the daemon would evaluate it."""
    context = dg.build_sensor_context(instance=instance, definitions=definitions)
    result = definitions.get_sensor_def(automation_sensor.name).evaluate_tick(context)
    requested: dict[dg.AssetKey, set] = {}
    for request in result.run_requests:
        subset = request.asset_graph_subset
        if subset is not None:  # a backfill of several partitions
            for key, partitions in subset.partitions_subsets_by_asset_key.items():
                requested.setdefault(key, set()).update(partitions.get_partition_keys())
            for key in subset.non_partitioned_asset_keys:
                requested.setdefault(key, set()).add(None)
        else:
            for key in request.asset_selection:
                requested.setdefault(key, set()).add(request.partition_key)
    return {k: sorted(v, key=str) for k, v in requested.items()}


def _normalised(stale: dict) -> dict:
    return {k: sorted(v, key=str) for k, v in stale.items()}


def _ingest(settings, instance, definitions):
    outcomes = launch(instance, definitions, tick(instance, settings))
    assert outcomes and all(r.success for r in outcomes.values())


def _build(settings, instance, stale) -> None:
    for run in plan_runs(stale, build_definitions(settings)):
        assert run_assets(settings, instance, run, QUIET_LOGS).success, run.describe()


def test_after_a_full_run_nothing_is_stale_for_either(home):
    settings, instance, definitions = home
    assert stale_partitions(definitions, instance) == {}
    assert _daemon_selection(instance, definitions) == {}


def test_a_new_month_reaches_exactly_its_months_through_the_plan_for_both(home):
    settings, instance, definitions = home
    new = generate_sample(SampleConfig(customers=150, start=date(2024, 11, 1), months=1, seed=32, first_customer_id=200_001))
    write_landing(new, settings.landing_dir)
    _ingest(settings, instance, definitions)
    first = stale_partitions(definitions, instance)
    assert _normalised(first) == _daemon_selection(instance, definitions)
    assert set(first) == {SILVER_TRANSACTIONS, dg.AssetKey(["silver", "quarantine"]), LANDING_LEDGER}  # silver first
    assert run_assets(settings, instance, RunPlan(tuple(first)), QUIET_LOGS).success
    months = stale_partitions(definitions, instance)
    assert _normalised(months) == _daemon_selection(instance, definitions)
    # November's orders are read by the features of 2024-12-01 only, and complete the horizon of
    # the labels of 2024-09-01 (its last day, 2024-11-29, is now in the data; 2024-08-01's ended
    # in October, before them)
    assert months[CUSTOMER_FEATURES] == ["2024-12-01"]
    assert months[CHURN_LABELS] == ["2024-09-01"]
    for key in (CHURN_MODEL, CHURN_PREDICTIONS, RETENTION_SUMMARY):
        assert months[key] == ["2024-12-01"], key
    # the contacts are judged against silver's customers again; no month after the data is touched
    assert {k for k, keys in months.items() if keys == [None]} == {CAMPAIGN_CONTACTS, CONTACT_QUARANTINE}
    assert all(date.fromisoformat(p) <= date(2024, 12, 1) for keys in months.values() for p in keys if p)
    _build(settings, instance, months)
    assert stale_partitions(definitions, instance) == {}


def test_a_late_file_for_an_old_month_refreshes_every_month_after_it(home):
    settings, instance, definitions = home
    pd.DataFrame({
        "order_id": ["LATE-1"], "customer_id": ["100005"], "order_ts": ["2024-06-15 12:00:00"], "amount": ["42.00"],
    }).to_csv(settings.landing_dir / "transactions" / "late_june.csv", index=False)
    backdate(settings.landing_dir / "transactions" / "late_june.csv", 30)
    _ingest(settings, instance, definitions)
    silver = stale_partitions(definitions, instance)
    assert set(silver) == {SILVER_TRANSACTIONS, dg.AssetKey(["silver", "quarantine"]), LANDING_LEDGER}
    _build(settings, instance, silver)
    months = stale_partitions(definitions, instance)
    assert _normalised(months) == _daemon_selection(instance, definitions)
    # features of every snapshot after June; labels of every observed snapshot whose horizon or
    # history holds mid-June (all of them: 2024-05-01's horizon runs to 2024-07-29)
    assert months[CUSTOMER_FEATURES] == ["2024-07-01", "2024-08-01", "2024-09-01", "2024-10-01", "2024-11-01", "2024-12-01"]
    assert months[CHURN_LABELS] == ["2024-05-01", "2024-06-01", "2024-07-01", "2024-08-01", "2024-09-01"]
    _build(settings, instance, months)


def test_a_file_of_customers_reaches_only_the_snapshots_after_its_signups(home):
    settings, instance, definitions = home
    land(settings, "customers", "late_signups.csv", "customer_id,signup_ts,segment\nX1,2024-11-20 00:00:00,vip\n")
    _ingest(settings, instance, definitions)
    months = stale_partitions(definitions, instance)
    assert months[CUSTOMER_FEATURES] == ["2024-12-01"]  # its one signup is in November
    assert SILVER_TRANSACTIONS not in months and CHURN_LABELS not in months  # it holds no orders


def test_a_refused_file_stops_nothing_that_the_other_new_files_need(home):
    """A landed file that cannot be read is refused and named; the files beside it still reach
    every month they touch in the same `churn-assets run`."""
    settings, instance, _ = home
    land(settings, "transactions", "legacy_export.csv", "OrderNo,Client,When,Total\n1,2,2024-11-03,9.5\n")
    land(settings, "transactions", "late_november.csv",
         "order_id,customer_id,order_ts,amount\nNOV-1,100007,2024-11-12 10:00:00,25.00\n")
    report = run_pipeline(settings, instance=instance)
    assert len(report.failures) == 1 and "legacy_export.csv" in report.failures[0]
    assert any(CUSTOMER_FEATURES in run.keys for run in report.built)
    assert stale_partitions(build_definitions(settings), instance) == {}
