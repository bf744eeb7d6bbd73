"""The closed loop lived month by month on a copy of a generated home, through the real pipeline."""

import dataclasses
import math

import duckdb
import numpy as np
import pandas as pd

from churn_assets.core.sample.files import TRUTH_FILE
from churn_assets.core.ingestion.parquet import read_parquet
from churn_assets.core.sample.report import plan_report
from churn_assets.core.sample.simulation import SIMULATED_CONTACTS_FILE
from churn_assets.simulate import simulate
from churn_assets_tests.conftest import query

MONTHS = [f"2025-{m:02d}-01" for m in range(1, 7)]


def test_six_months_of_the_loop_execute_each_plan_land_each_month_and_read_out_the_matured(copied):
    settings, instance = copied
    # six monthly models, kept quick; plans may use the uplift model where it wins out-of-time
    settings = dataclasses.replace(settings, model_candidates="logistic_regression", effect_source="uplift")
    customers_before = len(read_parquet(settings.truth_dir / TRUTH_FILE))
    lines = []
    results = simulate(settings, 6, instance=instance, echo=lines.append)
    assert [r.snapshot for r in results] == MONTHS and len(lines) == 6
    # each month's plan landed as that month's campaign: its treated and its controls
    plans = query(settings, "select strftime(snapshot_date, '%Y-%m-%d') as s, count(*) filter (where not is_control) as treated, "
                            "count(*) filter (where is_control) as controls from gold.retention_actions group by 1").set_index("s")
    contacts = query(settings, "select strftime(snapshot_date, '%Y-%m-%d') as s, count(*) filter (where not is_control) as treated, "
                               "count(*) filter (where is_control) as controls from silver.campaign_contacts group by 1").set_index("s")
    for result in results:
        assert (result.treated, result.controls) == tuple(plans.loc[result.snapshot]) == tuple(contacts.loc[result.snapshot])
    assert query(settings, "select count(*) as n from silver.campaign_contacts_quarantine")["n"][0] == 0
    # every month landed: orders through June 2025, the plan of July built from them
    newest = query(settings, "select (select max(order_ts) from silver.transactions) as t, "
                             "(select max(snapshot_date) from gold.retention_actions) as s")
    assert pd.Timestamp(newest["t"][0]).strftime("%Y-%m") == "2025-06" and str(newest["s"][0])[:10] == "2025-07-01"
    # the simulated campaigns are read out once their horizon is observed, never before
    read_out = set(query(settings, "select distinct strftime(snapshot_date, '%Y-%m-%d') as s from gold.campaign_outcomes")["s"])
    assert {"2025-01-01", "2025-02-01"} <= read_out and "2025-05-01" not in read_out
    last = results[-1]
    assert last.read_out in read_out and last.uplift_low <= last.uplift <= last.uplift_high
    assert last.true_uplift is not None and math.isfinite(last.true_uplift)
    assert all(math.isfinite(r.realised_assumed) for r in results)
    # by July the matured campaigns both teach the uplift model and test it, out-of-time
    validation = query(settings, "select * from gold.uplift_validation where snapshot_date = '2025-07-01'")
    assert len(validation) == 3 and (validation["test_campaigns"] >= 1).all()
    # an action the test campaigns gave to no one (the plans chose others) cannot be tested, and says so
    tested = validation[(validation["test_treated"] > 0) & (validation["test_controls"] > 0)]
    assert len(tested) >= 2, validation.to_string()
    assert tested["auuc_uplift"].notna().all() and (tested["auuc_gain_low"] <= tested["auuc_gain_high"]).all()
    untested = validation.drop(tested.index)
    assert untested["reason"].str.startswith("not tested: the test campaigns have no treated or no control").all()
    assert (validation["uses_uplift"] == (validation["auuc_gain_low"] > 0)).all()
    assert all((r.realised_uplift is not None) == (r.effect_source == "uplift") for r in results)
    # the report judges the uplift model's ranking by the true churn prevented: no ranking beats the truth's own
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        qini = plan_report(connection, read_parquet(settings.truth_dir / TRUTH_FILE), settings).qini
    assert set(qini["ranking"]) == {"uplift model", "segment estimates", "highest risk first", "truth", "random"}
    assert (qini.loc[qini["ranking"] == "truth", "qini_share"] == 1.0).all()
    truth_order = qini[qini["ranking"] == "truth"].set_index("action")["auuc"]
    assert (qini.groupby("action")["auuc"].max() - truth_order <= 1e-12).all()
    # the truth grew by the customers who signed up, and keeps every simulated contact's two potential outcomes
    truth = read_parquet(settings.truth_dir / TRUTH_FILE)
    assert len(truth) > customers_before and truth["customer_id"].is_unique
    simulated = read_parquet(settings.truth_dir / SIMULATED_CONTACTS_FILE)
    assert sorted(simulated["campaign_id"].unique()) == MONTHS
    assert np.all((simulated[["churn_if_treated", "churn_if_control"]] >= 0) & (simulated[["churn_if_treated", "churn_if_control"]] <= 1))
    assert "campaign" in lines[-1] and "true" in lines[-1]
