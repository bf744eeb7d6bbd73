"""Layouts real exports have, end to end through a real instance, DuckDB file and MLflow store:
a transactions-only export (with free orders) and a single signup cohort."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from churn_assets.core.ml import registry
from churn_assets.core.sample.generate import SampleConfig, generate_sample
from churn_assets.core.sample.files import write_landing, write_truth
from churn_assets.defs.ml.model import CHURN_MODEL
from churn_assets.runner import run_pipeline
from churn_assets.settings import Settings
from churn_assets_tests.conftest import project_instance, query

LAYOUTS = {
    "transactions_only": SampleConfig(customers=900, months=12, seed=21, sources=("transactions",), zero_amount_share=0.02),
    "single_cohort": SampleConfig(customers=900, months=12, seed=22, cohort_weeks=4),
}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def pipeline(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    settings = Settings(churn_home=root / "home", start_date=date(2024, 6, 1), max_training_rows=8000)
    sample = generate_sample(LAYOUTS[request.param])
    write_landing(sample, settings.landing_dir)
    write_truth(sample, settings.truth_dir)
    with project_instance(root / "dagster") as instance:
        report = run_pipeline(settings, instance=instance)
        yield request.param, settings, instance, report


def test_every_scorable_month_gets_a_gated_model_predictions_value_and_a_plan(pipeline):
    layout, settings, instance, report = pipeline
    assert report.ok, report.failures
    uri = settings.mlflow_tracking_uri
    modelled = sorted(v.tags["snapshot"] for v in registry._all_versions(uri))
    assert modelled == ["2024-10-01", "2024-11-01", "2024-12-01", "2025-01-01"], layout
    assert all(v.tags[registry.GATE_TAG] == "passed" for v in registry._all_versions(uri))
    per_month = query(settings, """
        with planned as (select snapshot_date, count(*) as planned from gold.retention_actions group by 1)
        select f.snapshot_date::date::varchar as snapshot, count(*) as features,
               count(distinct p.customer_id) as predicted, count(distinct v.customer_id) as valued,
               any_value(coalesce(a.planned, 0)) as planned
        from silver.customer_features f
        left join ml.churn_predictions p using (snapshot_date, customer_id)
        left join gold.customer_value v using (snapshot_date, customer_id)
        left join planned a using (snapshot_date)
        group by 1 order by 1
    """).set_index("snapshot")
    for month in modelled:
        row = per_month.loc[month]
        assert row["features"] == row["predicted"] == row["valued"] > 300, (layout, month)
        assert row["planned"] > 0, (layout, month)


def test_the_model_metadata_lists_the_features_it_dropped(pipeline):
    layout, settings, instance, _ = pipeline
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CHURN_MODEL, asset_partitions=["2025-01-01"]), limit=1
    ).records[0]
    dropped = record.asset_materialization.metadata["features_dropped"].value
    if layout == "transactions_only":  # no customers or web-sessions file: their features say nothing
        for feature in ("segment", "loyalty_points", "marketing_opt_in", "sessions_30d", "days_since_last_session"):
            assert feature in dropped
    else:
        assert "sessions_30d" not in dropped and "segment" not in dropped


def test_free_orders_keep_their_customers_in_features_and_predictions(pipeline):
    layout, settings, _, _ = pipeline
    if layout != "transactions_only":
        pytest.skip("free orders are generated in the transactions-only export")
    free_only = query(settings, """
        select customer_id from silver.transactions where order_ts < '2025-01-01'
        group by 1 having max(amount) = 0 and min(amount) = 0
    """)
    assert len(free_only) > 0
    scored = query(settings, "select customer_id from ml.churn_predictions where snapshot_date = '2025-01-01'")
    assert set(free_only["customer_id"]) <= set(scored["customer_id"])


def test_a_failing_model_names_its_asset_month_and_root_cause(tmp_path):
    """MLflow cannot write its artifacts (a file stands where their folder should be): the CLI's
    summary and the step failure in the UI say so, not a wrapper's first line."""
    settings = Settings(churn_home=tmp_path / "home", start_date=date(2024, 8, 1), max_training_rows=3000)
    write_landing(generate_sample(SampleConfig(customers=500, months=12, seed=23)), settings.landing_dir)
    settings.churn_home.mkdir(parents=True, exist_ok=True)
    settings.mlflow_artifact_root.write_text("not a folder")
    with project_instance(tmp_path / "dagster") as instance:
        report = run_pipeline(settings, instance=instance)
        failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        step_failures = [
            event.dagster_event.step_failure_data.user_failure_data.description
            for event in instance.all_logs(failed[0].run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        ]
    # every month's model is trained in one run, oldest first; the first that could be trained fails
    expected = "ml.churn_model for 2024-08-01 .. 2025-01-01: NotADirectoryError: "
    assert len(report.failures) == 1 and expected in report.failures[0], report.failures
    assert "mlartifacts" in report.failures[0]
    assert step_failures and step_failures[0].startswith(expected)
