"""The product as users run it: ``churn-assets dev`` (webserver and daemon), files dropped into
landing, the sensor and the automation sensor doing the rest, a backfill launched the way the UI
launches it, and a real headless browser on the asset graph and an asset's page.

Slow by nature (every run is a new process); bounded waits say what they waited for.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import psutil
import pytest

from churn_assets.core.generate import SampleConfig, generate_sample, write_landing
from churn_assets.core.sources import SOURCES
from churn_assets_tests.live import (
    BACKFILL_STATUS,
    LAUNCH_BACKFILL,
    RUNS_QUERY,
    LiveDagster,
    asset_nodes,
    wait_for,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("CHURN_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts"))
# Generated data covers 2024-01 .. 2024-12; snapshots start 2024-09 (earlier ones would only add
# runs), so 2024-09 .. 2025-01 hold data, and 2025-01 has the two labelled months a model needs
# (2024-09 and 2024-10, whose 90-day horizons end by 2025-01-01).
SNAPSHOTS_WITH_DATA = [f"{d:%Y-%m-%d}" for d in pd.date_range("2024-09-01", "2025-01-01", freq="MS")]
SNAPSHOT_ASSETS = [
    ["silver", "customer_features"], ["silver", "churn_labels"], ["ml", "churn_model"], ["ml", "churn_predictions"],
    ["gold", "customer_value"], ["gold", "retention_actions"], ["gold", "retention_summary"],
]
EDGES = [
    ("bronze/transactions", "silver/transactions"),
    ("silver/transactions", "silver/customer_features"),
    ("silver/transactions", "silver/churn_labels"),
    ("silver/customer_features", "ml/churn_model"),
    ("silver/churn_labels", "ml/churn_model"),
    ("ml/churn_model", "ml/churn_predictions"),
    ("ml/churn_predictions", "gold/customer_value"),
    ("gold/customer_value", "gold/retention_actions"),
    ("gold/retention_actions", "gold/retention_summary"),
]


def _one_file_per_source(staging: Path, landing: Path) -> None:
    """The generator writes a file per month; one file per source keeps the sensor's runs few."""
    for source in SOURCES:
        files = sorted((staging / source).glob("*.csv"))
        (landing / source).mkdir(parents=True, exist_ok=True)
        pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files]).to_csv(
            landing / source / f"{source}_2024.csv", index=False
        )


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """dagster dev running on generated data after the sensor ingested it and a backfill of every
    snapshot with data finished."""
    root = tmp_path_factory.mktemp("live")
    home = root / "home"
    env = {
        "CHURN_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "CHURN_START_DATE": SNAPSHOTS_WITH_DATA[0],
        "CHURN_MAX_TRAINING_ROWS": "5000", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    staging = root / "staging"
    write_landing(generate_sample(SampleConfig(customers=600, months=12, seed=5)), staging)
    dagster = LiveDagster(home, env, root / "dagster-dev.log")
    try:
        dagster.wait_until_serving()
        _one_file_per_source(staging, home / "landing")  # dropped while it runs, as a user would
        # The landing sensor ingests; the automation sensor then refreshes silver and the newest month.
        wait_for(lambda: _materialized(dagster, "silver/transactions") and _materialized(dagster, "silver/customer_features"),
                 420, "the sensor's ingestion and the automatic refresh of silver", dagster, every=5)
        # Each asset gets exactly these partitions: given as plain partition names, the model's
        # twelve-month history mapping would extend the backfill a year past the data.
        every_snapshot = {"range": {"start": SNAPSHOTS_WITH_DATA[0], "end": SNAPSHOTS_WITH_DATA[-1]}}
        backfill = dagster.graphql(LAUNCH_BACKFILL, {"params": {
            "partitionsByAssets": [{"assetKey": {"path": key}, "partitions": every_snapshot} for key in SNAPSHOT_ASSETS],
            "title": "every snapshot with data",
        }})["launchPartitionBackfill"]
        assert backfill["__typename"] == "LaunchBackfillSuccess", backfill
        status = wait_for(lambda: _finished(dagster, backfill["backfillId"]), 900, "the backfill to finish", dagster, every=5)
        yield dagster, home, status
    finally:
        dagster.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "dagster-dev.log", ARTIFACTS / "dagster-dev.log")


def _definitions(home: Path):
    from churn_assets.definitions import build_definitions
    from churn_assets.settings import Settings

    return build_definitions(Settings(churn_home=home, start_date=pd.Timestamp(SNAPSHOTS_WITH_DATA[0]).date()))


def _materialized(dagster: LiveDagster, key: str) -> bool:
    node = asset_nodes(dagster).get(key)
    return bool(node and node["assetMaterializations"])


def _finished(dagster: LiveDagster, backfill_id: str) -> str | None:
    answer = dagster.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    status = answer.get("status")
    return status if status in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED") else None


def test_backfill_of_every_snapshot_finishes_without_failed_runs_or_lock_errors(live):
    dagster, home, status = live
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    runs = dagster.graphql(RUNS_QUERY)["runsOrError"]["results"]
    assert [r for r in runs if r["status"] != "SUCCESS"] == []
    ingestions = [r for r in runs if r["jobName"].startswith("ingest_")]
    assert sorted(r["jobName"] for r in ingestions) == ["ingest_customers", "ingest_transactions", "ingest_web_sessions"]
    assert len(runs) > len(SNAPSHOTS_WITH_DATA)  # the model runs of the backfill ran as runs of their own
    log = dagster.log_text().lower()
    assert "could not set lock" not in log and "conflicting lock" not in log


def test_every_asset_materialized_with_the_lineage_bronze_silver_ml_gold(live):
    dagster, _, _ = live
    nodes = asset_nodes(dagster)
    assert {k for k, n in nodes.items() if not n["assetMaterializations"]} == set()
    for upstream, downstream in EDGES:
        assert upstream.split("/") in [d["path"] for d in nodes[downstream]["dependencyKeys"]], (upstream, downstream)


def test_every_asset_check_passed(live):
    """Every check ran on its asset's latest materialization and passed; a warning-severity check
    (the drift check, which a 600-customer sample can trip) may warn but must have run."""
    dagster, home, _ = live
    outcomes, warnings = {}, {}
    for key, node in asset_nodes(dagster).items():
        for check in node["assetChecksOrError"].get("checks", []):
            execution = check["executionForLatestMaterialization"]
            name = f"{key}:{check['name']}"
            outcomes[name] = execution["status"] if execution else "NOT_RUN"
            if execution and execution["status"] == "FAILED" and (execution["evaluation"] or {}).get("severity") == "WARN":
                warnings[name] = outcomes.pop(name)
    expected = {f"{'/'.join(k.asset_key.path)}:{k.name}" for k in _definitions(home).resolve_asset_graph().asset_check_keys}
    assert set(outcomes) | set(warnings) == expected
    assert {k: v for k, v in outcomes.items() if v != "SUCCEEDED"} == {}
    assert set(warnings) <= {"ml/churn_predictions:feature_and_score_drift"}


def test_webserver_listens_on_loopback_only(live):
    dagster, _, _ = live
    listening = [
        c.laddr.ip for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == dagster.port
    ]
    assert listening and set(listening) <= {"127.0.0.1"}


def _dismiss_welcome_dialog(page) -> None:
    """A fresh browser profile gets Dagster's one-time community dialog over the page."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.click(timeout=5_000)
    except Exception:  # noqa: BLE001 - the dialog did not show; nothing to dismiss
        pass


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_browser_shows_the_asset_graph_and_an_assets_columns(live):
    browser_path = _chromium()
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if browser_path is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    dagster, _, _ = live
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{dagster.url}/locations/churn_assets/asset-groups/silver/lineage", wait_until="networkidle")
        _dismiss_welcome_dialog(page)
        for name in ("transactions", "customer_features", "churn_labels", "churn_model", "retention_actions"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "asset-graph-silver.png"), full_page=True)

        page.goto(f"{dagster.url}/assets/silver/transactions", wait_until="networkidle")
        _dismiss_welcome_dialog(page)
        for text in ("Columns", "order_ts", "customer_id", "line_count", "Landed file the row came from"):
            page.get_by_text(text, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "silver-transactions-columns.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "asset-graph-silver.png").stat().st_size > 10_000
