"""The product as users run it: a headless ``churn-assets run``, then ``churn-assets dev``
(webserver and daemon) on the same home, a later export landed while it runs, the daemon carrying
the new data from bronze to the plan on its own, and a real headless browser on the asset graph.

Slow by nature (every run is a new process); bounded waits say what they waited for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
import psutil
import pytest

from churn_assets.core.silver.labels import horizon_observed
from churn_assets_tests.live import RUNS_QUERY, LiveDagster, asset_nodes, materializations, wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("CHURN_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts"))
START = "2024-09-01"  # earlier snapshots would only add work
HORIZON_DAYS = 90
SNAPSHOT_ASSETS = (
    "silver/customer_features", "silver/churn_labels", "ml/churn_model", "ml/churn_predictions",
    "gold/customer_value", "gold/retention_actions", "gold/retention_summary",
)
ACTIVE = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
# The automation sensor ticks every 15 s: this long without a new run means it is done.
QUIET_SECONDS = 50


@dataclass
class LiveHome:
    dagster: LiveDagster
    home: Path
    runs_before: set[str]  # the runs of the headless `churn-assets run`
    new_files: list[Path]


def _cli(env: dict[str, str], home: Path, *args: str) -> str:
    """``churn-assets --home HOME ARGS`` as a user runs it; its output, failing with it."""
    done = subprocess.run(
        [sys.executable, "-m", "churn_assets.cli", "--home", str(home), *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, f"churn-assets {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _landed(home: Path) -> set[Path]:
    return {p for p in (home / "landing").rglob("*.csv")}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A home where ``churn-assets run`` finished on 2024's data, then ``churn-assets dev`` on it
    after a later export (new customers, November 2024 .. January 2025) was landed while it runs."""
    root = tmp_path_factory.mktemp("live")
    home, staging = root / "home", root / "staging"
    env = {
        "DAGSTER_HOME": str(home / "dagster"), "CHURN_START_DATE": START, "CHURN_HORIZON_DAYS": str(HORIZON_DAYS),
        "CHURN_MAX_TRAINING_ROWS": "5000", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "CHURN_MODEL_CANDIDATES": "logistic_regression",  # the UI is under test here, not the model: keep training short
    }
    _cli(env, home, "generate", "--customers", "600", "--start", "2024-01-01", "--months", "12", "--seed", "5")
    _cli(env, home, "run")
    runs_before = {r["runId"] for r in _runs_in(env)}
    # The later export is generated aside and moved in whole, as a shop's export job drops files.
    _cli(env, staging, "generate", "--customers", "200", "--start", "2024-11-01", "--months", "3", "--seed", "6",
         "--id-offset", "900000")
    dagster = LiveDagster(home, env, root / "dagster-dev.log")
    try:
        dagster.wait_until_serving()
        new_files = []
        for path in sorted(_landed(staging)):
            target = home / "landing" / path.relative_to(staging / "landing")
            shutil.move(path, target)
            new_files.append(target)
        newest = _snapshots_with_data(home)[-1]
        wait_for(lambda: _settled(dagster, newest), 900, f"the daemon to plan {newest} and go quiet", dagster, every=5)
        yield LiveHome(dagster, home, runs_before, new_files)
    finally:
        dagster.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "dagster-dev.log", ARTIFACTS / "dagster-dev.log")


def _runs_in(env: dict[str, str]) -> list[dict]:
    """The runs of the home's instance, read from the instance itself before the webserver starts."""
    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        return [{"runId": r.run_id, "status": r.status.value} for r in instance.get_runs()]


_quiet_since: dict[str, float] = {}


def _settled(dagster: LiveDagster, newest: str) -> bool:
    """The newest month's plan summary exists, no run is active, and no run started for a while."""
    summary = materializations(dagster).get("gold/retention_summary", [])
    runs = dagster.graphql(RUNS_QUERY)["runsOrError"]["results"]
    if newest not in {m["partition"] for m in summary} or any(r["status"] in ACTIVE for r in runs):
        _quiet_since.clear()
        return False
    marker = f"{len(runs)}"
    if marker not in _quiet_since:
        _quiet_since.clear()
        _quiet_since[marker] = time.monotonic()
    return time.monotonic() - _quiet_since[marker] >= QUIET_SECONDS


def _timestamps(paths, column: str) -> pd.Series:
    return pd.concat([pd.to_datetime(pd.read_csv(p, usecols=[column])[column]) for p in paths], ignore_index=True)


def _snapshots_with_data(home: Path) -> list[str]:
    """Snapshots from START with an order before them and at most a month after the newest order."""
    orders = _timestamps(sorted((home / "landing" / "transactions").glob("*.csv")), "order_ts")
    after_newest = (orders.max() + pd.offsets.MonthBegin(1)).normalize()
    months = pd.date_range(START, after_newest, freq="MS")
    return [f"{s:%Y-%m-%d}" for s in months if orders.min() < s]


def _expected_refresh(home: Path, new_files: list[Path]) -> tuple[set[str], set[str]]:
    """(features, labels) months the later export changes, from its rows alone: features read every
    row before S; labels read the orders before S + horizon, once the data reaches that far."""
    by_source = {source: [p for p in new_files if p.parent.name == source] for source in ("transactions", "customers", "web_sessions")}
    new_orders = _timestamps(by_source["transactions"], "order_ts")
    earliest_row = min(
        new_orders.min(), _timestamps(by_source["customers"], "signup_ts").min(),
        _timestamps(by_source["web_sessions"], "session_ts").min(),
    )
    all_orders = _timestamps(sorted((home / "landing" / "transactions").glob("*.csv")), "order_ts")
    through = all_orders.max()
    snapshots = [pd.Timestamp(s) for s in _snapshots_with_data(home)]
    features = {f"{s:%Y-%m-%d}" for s in snapshots if earliest_row < s}
    # Orders are tracked by month: an order in a month counts for every horizon ending after it starts.
    first_new_month = new_orders.min().to_period("M").to_timestamp()
    labels = {
        f"{s:%Y-%m-%d}" for s in pd.date_range(START, through, freq="MS")
        if horizon_observed(s.date(), HORIZON_DAYS, through) and s + timedelta(days=HORIZON_DAYS) > first_new_month
    }
    return features, labels


def _refreshed(live: LiveHome, key: str) -> set[str]:
    """The partitions of ``key`` the daemon materialized after the headless run."""
    return {m["partition"] for m in materializations(live.dagster).get(key, []) if m["runId"] not in live.runs_before}


def test_the_daemon_refreshes_exactly_the_months_the_new_export_changes(live):
    features, labels = _expected_refresh(live.home, live.new_files)
    assert _refreshed(live, "silver/customer_features") == features
    assert _refreshed(live, "silver/churn_labels") == labels


def test_the_new_month_gets_a_champion_gated_model_predictions_and_a_plan(live):
    newest = _snapshots_with_data(live.home)[-1]
    model = next(m for m in materializations(live.dagster)["ml/churn_model"] if m["partition"] == newest)
    metadata = {e["label"]: e.get("text", e.get("boolValue")) for e in model["metadataEntries"]}
    assert metadata.get("champion_gate"), metadata
    assert metadata.get("model_version"), metadata
    for key in ("ml/churn_predictions", "gold/customer_value", "gold/retention_actions", "gold/retention_summary"):
        assert newest in _refreshed(live, key), key


def test_no_month_without_data_is_ever_materialized(live):
    with_data = set(_snapshots_with_data(live.home))
    found = materializations(live.dagster)
    outside = {key: sorted({m["partition"] for m in found.get(key, [])} - with_data) for key in SNAPSHOT_ASSETS}
    assert {k: v for k, v in outside.items() if v} == {}


def test_every_run_succeeded_without_lock_errors(live):
    runs = live.dagster.graphql(RUNS_QUERY)["runsOrError"]["results"]
    assert [r for r in runs if r["status"] != "SUCCESS"] == []
    ingestions = {r["jobName"] for r in runs if r["runId"] not in live.runs_before and r["jobName"].startswith("ingest_")}
    assert ingestions == {"ingest_customers", "ingest_transactions", "ingest_web_sessions"}
    log = live.dagster.log_text().lower()
    assert "could not set lock" not in log and "conflicting lock" not in log


def test_every_asset_is_materialized_and_every_check_passed(live):
    """Every check ran on its asset's latest materialization and passed; a warning-severity check
    may warn but must have run: the drift check, which a 600-customer sample can trip, and the
    execution coverage, since the generated campaigns were random rather than the plan's."""
    nodes = asset_nodes(live.dagster)
    assert {k for k, n in nodes.items() if not n["assetMaterializations"]} == set()
    outcomes, warnings = {}, {}
    for key, node in nodes.items():
        for check in node["assetChecksOrError"].get("checks", []):
            execution = check["executionForLatestMaterialization"]
            name = f"{key}:{check['name']}"
            outcomes[name] = execution["status"] if execution else "NOT_RUN"
            if execution and execution["status"] == "FAILED" and (execution["evaluation"] or {}).get("severity") == "WARN":
                warnings[name] = outcomes.pop(name)
    assert set(outcomes) | set(warnings) == _check_names(live.home)
    assert {k: v for k, v in outcomes.items() if v != "SUCCEEDED"} == {}
    assert set(warnings) <= {"ml/churn_predictions:feature_and_score_drift", "gold/campaign_execution:execution_coverage"}


def _check_names(home: Path) -> set[str]:
    from churn_assets.definitions import build_definitions
    from churn_assets.settings import Settings

    graph = build_definitions(Settings(churn_home=home, start_date=pd.Timestamp(START).date())).resolve_asset_graph()
    return {f"{'/'.join(k.asset_key.path)}:{k.name}" for k in graph.asset_check_keys}


def test_webserver_listens_on_loopback_only(live):
    listening = [
        c.laddr.ip for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == live.dagster.port
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
    url = live.dagster.url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        # tall enough for a whole group's graph: the UI renders only the nodes inside the viewport
        page = browser.new_page(viewport={"width": 2000, "height": 2600})
        page.goto(f"{url}/locations/churn_assets/asset-groups/silver/lineage", wait_until="networkidle")
        _dismiss_welcome_dialog(page)
        for name in ("transactions", "customer_features", "churn_labels", "campaign_contacts", "churn_model"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "asset-graph-silver.png"), full_page=True)

        page.goto(f"{url}/locations/churn_assets/asset-groups/gold/lineage", wait_until="networkidle")
        _dismiss_welcome_dialog(page)
        for name in ("customer_value", "retention_actions", "action_effects", "uplift_validation", "campaign_outcomes"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "asset-graph-gold.png"), full_page=True)

        page.goto(f"{url}/assets/silver/transactions", wait_until="networkidle")
        _dismiss_welcome_dialog(page)
        for text in ("Columns", "order_ts", "customer_id", "line_count", "Landed file the row came from"):
            page.get_by_text(text, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "silver-transactions-columns.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "asset-graph-silver.png").stat().st_size > 10_000
