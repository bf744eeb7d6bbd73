"""The model, its champion gate and the predictions through a real instance, warehouse and MLflow store."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import pytest
from mlflow import MlflowClient

from churn_assets.core.ml import registry
from churn_assets.cli import main as cli_main
from churn_assets.core.ml.on_demand import score_customers, warehouse_history
from churn_assets.definitions import build_definitions
from churn_assets.defs.ml.model import CHURN_MODEL
from churn_assets_tests.conftest import query
from churn_assets_tests.dagster_helpers import QUIET
from churn_assets_tests.live import free_port, wait_for


def _model_metadata(instance, partition):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CHURN_MODEL, asset_partitions=[partition]), limit=1
    ).records
    return records[0].asset_materialization.metadata


def test_run_ends_with_a_champion_and_predictions_for_every_scorable_snapshot(trained):
    settings, instance, report = trained
    uri = settings.mlflow_tracking_uri
    versions = registry._all_versions(uri)
    trained_for = sorted(v.tags["snapshot"] for v in versions)
    # Labels are observed through 2024-10-01 (data ends 2024-12-31); two of them are needed by S.
    assert trained_for == ["2024-10-01", "2024-11-01", "2024-12-01", "2025-01-01"]
    for version in versions:
        snapshot = date.fromisoformat(version.tags["snapshot"])
        used = [*version.tags["train_snapshots"].split(","), version.tags["validation_snapshot"]]
        assert all(date.fromisoformat(s) + timedelta(days=90) <= snapshot for s in used)
    champion = registry.champion(uri)
    assert champion.tags["snapshot"] == "2025-01-01"

    per_snapshot = query(settings, """
        select f.snapshot_date::date::varchar as snapshot, count(*) as features,
               count(p.customer_id) as predicted, count(distinct p.customer_id) as distinct_predicted,
               min(p.model_version) as version
        from silver.customer_features f
        left join ml.churn_predictions p using (snapshot_date, customer_id)
        group by 1 order by 1
    """).set_index("snapshot")
    for snapshot in trained_for:
        row = per_snapshot.loc[snapshot]
        assert row["features"] == row["predicted"] == row["distinct_predicted"] > 500
        assert row["version"] == str(registry.version_for_snapshot(uri, snapshot).version)
    assert per_snapshot.loc["2024-09-01", "predicted"] == 0  # no model could be trained yet

    reasons = query(settings, "select reason_1, risk_segment from ml.churn_predictions")
    assert reasons["reason_1"].notna().mean() > 0.9
    assert set(reasons["risk_segment"]) == {"Low", "Medium", "High"}


def test_chosen_model_beats_recency_alone_out_of_time(trained):
    settings, instance, _ = trained
    metadata = _model_metadata(instance, "2025-01-01")
    assert metadata["beats_recency_only"].value is True
    assert metadata["roc_auc_out_of_time"].value > metadata["recency_only_roc_auc"].value
    assert metadata["validation_snapshot"].value == "2024-10-01"
    assert "![roc](data:image/png;base64," in metadata["plots"].value


def test_registry_round_trip_and_tracked_run(trained):
    settings, _, _ = trained
    uri = settings.mlflow_tracking_uri
    assert uri.startswith("sqlite:///") and (settings.churn_home / "mlflow.db").exists()
    mlflow.set_tracking_uri(uri)
    champion_uri = f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}"
    info = mlflow.models.get_model_info(champion_uri)
    assert set(info.flavors) == {"python_function"} and info.saved_input_example_info is not None
    assert [p.name for p in info.signature.params] == ["as_of", "actions"]
    assert "customer_id" in info.signature.inputs.input_names() and "churn_probability" in info.signature.outputs.input_names()
    pipeline = mlflow.pyfunc.load_model(champion_uri).unwrap_python_model().pipeline
    features = query(settings, "select * from silver.customer_features where snapshot_date = '2025-01-01'")
    probability = pipeline.predict_proba(features)[:, 1]  # the pipeline coerces the feature rows itself
    stored = query(settings, "select churn_probability from ml.churn_predictions where snapshot_date = '2025-01-01' order by customer_id")
    assert probability.round(6).tolist() == stored["churn_probability"].tolist()
    run = MlflowClient(uri).get_run(registry.champion(uri).run_id)
    assert run.info.artifact_uri.startswith(settings.mlflow_artifact_root.as_uri())  # not ./mlruns
    assert run.data.tags["dagster_partition"] == "2025-01-01"
    assert {"roc_auc", "pr_auc", "brier", "log_loss", "f1", "top_decile_lift", "plan_realised_profit",
            "recency_only.roc_auc", "random_split.roc_auc"} <= set(run.data.metrics)
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id)}
    assert {"roc.png", "precision_recall.png", "calibration.png", "lift.png", "importance.png",
            "reference_profile.json", "metrics.csv"} <= artifacts


@pytest.mark.parametrize("snapshot", ["2024-11-01", "2025-01-01"])
def test_scoring_on_demand_equals_the_monthly_predictions_for_every_customer(trained, snapshot):
    """Each customer's raw history from the warehouse, scored by the registered champion pyfunc of
    the version the batch used: the same probability, segment and reasons as ml.churn_predictions."""
    settings, _, _ = trained
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        batch = connection.execute(
            "select * from ml.churn_predictions where snapshot_date = ? order by customer_id", [snapshot]
        ).df()
        on_demand, version = score_customers(
            connection, settings, batch["customer_id"].tolist(), date.fromisoformat(snapshot)
        )
    on_demand = on_demand.sort_values("customer_id", ignore_index=True)
    assert {version} == set(batch["model_version"].astype(str))
    assert len(batch) > 500 and on_demand["customer_id"].tolist() == batch["customer_id"].tolist()
    assert abs(on_demand["churn_probability"].to_numpy(float) - batch["churn_probability"].to_numpy(float)).max() <= 1e-9
    for column in ("risk_segment", "reason_1", "reason_2", "reason_3"):
        assert on_demand[column].astype(object).fillna("").astype(str).tolist() == \
            batch[column].astype(object).fillna("").astype(str).tolist(), column


def test_score_prints_one_customer_as_json_and_names_the_field_it_cannot_use(trained, capsys):
    settings, _, _ = trained
    home = ["--home", str(settings.churn_home)]
    customer = query(settings, "select customer_id from ml.churn_predictions where snapshot_date = '2025-01-01' "
                               "order by churn_probability desc limit 1")["customer_id"][0]
    assert cli_main([*home, "score", "--customer", customer, "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    batch = query(settings, f"select * from ml.churn_predictions where snapshot_date = '2025-01-01' and customer_id = '{customer}'")
    assert scored["as_of"] == "2025-01-01" and scored["customer_id"] == customer
    assert scored["churn_probability"] == batch["churn_probability"][0] and scored["risk_segment"] == batch["risk_segment"][0]
    assert scored["model_version"] == str(batch["model_version"][0]) and scored["reasons"][0] == batch["reason_1"][0]
    assert cli_main([*home, "score", "--customer", "no-such-customer"]) == 2
    assert "customer_id 'no-such-customer': no order of this customer" in capsys.readouterr().err
    assert cli_main([*home, "score", "--customer", customer, "--as-of", "2020-01-01"]) == 2
    assert "as_of 2020-01-01" in capsys.readouterr().err


def _champion_customers(settings, count: int):
    """``count`` customers the champion scored in the batch, their batch rows and their raw history."""
    uri = settings.mlflow_tracking_uri
    champion = registry.champion(uri)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        batch = connection.execute(
            "select * from ml.churn_predictions where model_version = ? order by churn_probability desc, customer_id "
            "limit ?", [champion.version, count]
        ).df()
        history = warehouse_history(connection, batch["customer_id"].tolist())
    return champion, batch, history


def test_the_champion_loads_by_alias_in_a_fresh_process_and_scores_raw_history(trained, tmp_path):
    settings, _, _ = trained
    champion, batch, history = _champion_customers(settings, 3)
    history.to_csv(tmp_path / "history.csv", index=False)  # as text, the way an export arrives
    as_of = str(batch["snapshot_date"][0])[:10]
    script = (
        "import sys, mlflow, pandas as pd\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "model = mlflow.pyfunc.load_model('models:/churn_model@champion')\n"
        "history = pd.read_csv(sys.argv[2], dtype=str)\n"
        "print(model.predict(history, params={'as_of': sys.argv[3]}).to_json(orient='records'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, settings.mlflow_tracking_uri, str(tmp_path / "history.csv"), as_of],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    scored = {row["customer_id"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])}
    assert set(scored) == set(batch["customer_id"])
    for _, expected in batch.iterrows():
        row = scored[expected["customer_id"]]
        assert abs(row["churn_probability"] - expected["churn_probability"]) <= 1e-9
        assert (row["risk_segment"], row["reason_1"], row["as_of"]) == (expected["risk_segment"], expected["reason_1"], as_of)
        assert row["action"] in {a.name for a in settings.action_catalogue} | {"no_action"}
        assert row["model_snapshot"] == champion.tags["snapshot"]


def test_mlflow_models_serve_answers_one_customer_and_refuses_bad_input_with_400(trained, tmp_path):
    settings, _, _ = trained
    _, batch, history = _champion_customers(settings, 1)
    as_of = str(batch["snapshot_date"][0])[:10]
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/churn_model@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}, cwd=tmp_path,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def post(records: list[dict], params: dict) -> tuple[int, dict]:
        body = json.dumps({"dataframe_records": records, "params": params}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def ping() -> bool:
        if server.poll() is not None:
            raise AssertionError((tmp_path / "serve.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    records = json.loads(history.to_json(orient="records"))
    try:
        wait_for(ping, 180, "mlflow models serve to answer /ping", every=1.0)
        status, answer = post(records, {"as_of": as_of})
        assert status == 200, answer
        (scored,) = answer["predictions"]
        assert abs(scored["churn_probability"] - batch["churn_probability"][0]) <= 1e-9
        assert scored["risk_segment"] == batch["risk_segment"][0] and scored["reason_1"] == batch["reason_1"][0]

        without_ts = [{k: v for k, v in r.items() if k != "order_ts"} for r in records]
        status, answer = post(without_ts, {"as_of": as_of})
        assert status == 400 and "transactions rows: missing column order_ts" in answer["message"]
        assert "Traceback" not in json.dumps(answer)
        malformed = [{**records[0], "amount": "twelve"}, *records[1:]]
        status, answer = post(malformed, {"as_of": as_of})
        assert status == 400 and "unparseable_amount" in answer["message"] and "'twelve'" in answer["message"]
        status, answer = post(records, {"as_of": "2000-01-01"})
        assert status == 400 and "as_of 2000-01-01: no order before it" in answer["message"]
        status, answer = post(records, {"as_of": "soon"})
        assert status == 400 and "as_of: 'soon' is not a date" in answer["message"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_z_a_worse_model_does_not_become_champion(trained):  # last: it adds a version
    settings, instance, _ = trained
    uri = settings.mlflow_tracking_uri
    before = registry.champion(uri)
    serving = registry.version_for_snapshot(uri, "2025-01-01").version
    # Forty training rows and one candidate: a deliberately weaker model for the same month.
    weak = dataclasses.replace(settings, max_training_rows=40, model_candidates="logistic_regression")
    result = build_definitions(weak).resolve_job_def("retrain_and_score").execute_in_process(
        instance=instance, partition_key="2025-01-01", run_config=QUIET, raise_on_error=False
    )
    assert not result.success  # the blocking gate stops the run before predictions
    (gate,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "champion_gate"]
    assert not gate.passed and "the champion is kept" in gate.description
    assert gate.metadata["months_failed"].value == "2025-01-01"
    assert registry.champion(uri).version == before.version
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [CHURN_MODEL]
    # A later run (say, from automation) still scores the month with the version that passed.
    assert registry.version_for_snapshot(uri, "2025-01-01").version == serving


def test_gold_plan_value_and_summary_for_every_scored_month(trained):
    settings, instance, report = trained
    value = query(settings, """
        select v.snapshot_date::date::varchar as s, count(*) as n, count(p.customer_id) as matched,
               bool_and(abs(v.revenue_at_risk - v.churn_probability * v.expected_value) < 0.01) as consistent
        from gold.customer_value v left join ml.churn_predictions p using (snapshot_date, customer_id)
        group by 1 order by 1""").set_index("s")
    assert list(value.index) == ["2024-10-01", "2024-11-01", "2024-12-01", "2025-01-01"]
    assert (value["n"] == value["matched"]).all() and value["consistent"].all()

    plans = query(settings, """
        select snapshot_date::date::varchar as s, risk_segment,
               sum(cost) as spend, min(expected_net_value) filter (where not is_control) as worst,
               count(*) filter (where is_control) as controls, count(*) as rows
        from gold.retention_actions group by all""")
    spend = plans.groupby("s")["spend"].sum()
    assert (spend <= settings.budget + 1e-6).all() and (spend > 0).all()
    assert (plans["worst"].dropna() >= 0).all()  # never spend on negative net value (rounded to cents)
    assert plans.groupby("s")["controls"].sum().gt(0).all()
    # controls come from the selected customers and keep the action they would have had, at no cost
    held = query(settings, "select count(*) filter (where action = 'no_action' or cost <> 0) as odd, count(*) as n "
                           "from gold.retention_actions where is_control")
    assert held["n"][0] > 0 and held["odd"][0] == 0
    plan_record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["gold", "retention_actions"]), asset_partitions=["2025-01-01"]),
        limit=1,
    ).records[0].asset_materialization.metadata
    assert "share_for_80pct_power" in plan_record["holdout_power"].value
    assert plan_record["spend"].value < plan_record["selected_spend"].value <= settings.budget + 1e-6

    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["gold", "customer_value"]), asset_partitions=["2025-01-01"]),
        limit=1,
    ).records[0].asset_materialization.metadata
    assert record["value_method"].value in {"run_rate", "regression"}
    assert -100 < record["aggregate_error_pct"].value < 100 and record["rank_correlation"].value > 0.3

    summary = query(settings, "select * from gold.retention_summary where snapshot_date = '2025-01-01'")
    assert summary["risk_segment"].tolist() == ["High", "Medium", "Low", "Total"]
    assert query(settings, "select count(*) n from gold.retention_priorities")["n"][0] > 0
    assert "Retention summary for the newest snapshot, 2025-01-01" in report.summary()


def test_report_scores_the_plan_against_the_latent_truth_and_an_oracle(trained, capsys):
    settings, _, _ = trained
    home = ["--home", str(settings.churn_home), "report", "--snapshot", "2025-01-01"]
    assert cli_main([*home, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    policies = report["policies"]
    # 2024-10's campaign matured by 2025-01-01: the plan is solved with measured effects, and with assumed ones beside it
    assert report["effect_source"].startswith("measured: ")
    assert list(policies) == [
        "optimised plan (measured effects)", "optimised plan (assumed effects)", "rules (seed)", "highest risk first",
        "oracle (knows the truth)",
    ]
    spends = [p["spend"] for name, p in policies.items() if name.startswith("optimised")]
    assert max(spends) - min(spends) < 10  # compared at equal spend, to within one action's cost
    assert all(p["spend"] <= max(spends) + 1e-6 for p in policies.values())  # a baseline may find less to spend on
    oracle = policies["oracle (knows the truth)"]
    assert oracle["share_of_oracle"] == 1.0 and 0 < report["plan_share_of_oracle"] <= 1.0
    assert report["plan_share_of_oracle"] == policies["optimised plan (measured effects)"]["share_of_oracle"]
    assert {"effect_ci_coverage", "learned_over_assumed_realised_value", "effects"} <= set(report)
    assert {e["action"] for e in report["effects"]} <= {"discount_voucher", "win_back_email", "loyalty_reward"}
    # one matured campaign with 17 controls cannot carry an uplift model: the report says so rather than judge one
    assert report["uplift_qini_vs_truth"] == []
    assert "Qini against the truth not judged: no uplift model: the controls are 17 rows, fewer than 20" in report["notes"]
    assert cli_main(home) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Snapshot 2025-01-01:") and "the plan's effects: measured" in lines[0]
    assert any(line.startswith("oracle (knows the truth)") for line in lines)


def test_zz_overlapping_runs_never_promote_a_worse_model(trained):  # last: it adds versions
    """Three runs for the same month start together, as a user clicking twice and a schedule might:
    one trained as usual, two deliberately weak. No weak version may end as champion."""
    settings, instance, _ = trained
    uri = settings.mlflow_tracking_uri
    before = {v.version for v in MlflowClient(uri).search_model_versions("name = 'churn_model'")}
    common = {
        **os.environ, "CHURN_HOME": str(settings.churn_home), "CHURN_START_DATE": "2024-06-01",
        "CHURN_MAX_TRAINING_ROWS": str(settings.max_training_rows), "PYTHONUNBUFFERED": "1",
    }
    weak = {"CHURN_MAX_TRAINING_ROWS": "40", "CHURN_MODEL_CANDIDATES": "logistic_regression"}
    command = [
        sys.executable, "-m", "dagster", "asset", "materialize", "-m", "churn_assets.definitions",
        "--select", "ml/churn_model", "--partition", "2025-01-01",
    ]
    processes = [
        subprocess.Popen(command, env={**common, **extra}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for extra in ({}, weak, weak)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]

    client = MlflowClient(uri)
    new = [v for v in client.search_model_versions("name = 'churn_model'") if v.version not in before]
    assert len(new) == 3, outputs
    weak_versions = {v.version for v in new if client.get_run(v.run_id).data.params["max_training_rows"] == "40"}
    assert len(weak_versions) == 2
    tags = {v.version: client.get_model_version("churn_model", v.version).tags.get(registry.GATE_TAG) for v in new}
    assert {tags[v] for v in weak_versions} == {"failed"}, tags
    champion = registry.champion(uri)
    assert champion.version not in weak_versions
    assert champion.tags.get(registry.GATE_TAG) != "failed"
    # The runs overlapped in time. Their model steps may overlap too (two processes can both claim
    # the pool's one slot); the gate's own lock keeps compare-and-promote atomic.
    runs = [r for r in instance.get_run_records() if r.dagster_run.tags.get("dagster/partition") == "2025-01-01"
            and r.dagster_run.job_name == "__ASSET_JOB"]
    assert len(runs) == 3, [r.dagster_run.job_name for r in instance.get_run_records()]
    assert max(r.start_time for r in runs) < min(r.end_time for r in runs)
    assert Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///") + ".champion.lock").exists()
