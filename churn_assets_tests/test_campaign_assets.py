"""Campaign contacts, their read-out and their execution through a real instance and warehouse."""

import dagster as dg
import pandas as pd

from churn_assets.definitions import build_definitions
from churn_assets.lib.keys import (
    ACTION_EFFECTS,
    CAMPAIGN_CONTACTS,
    CAMPAIGN_EXECUTION,
    CAMPAIGN_OUTCOMES,
    RETENTION_ACTIONS,
    UPLIFT_VALIDATION,
)
from churn_assets.runner import run_pipeline
from churn_assets_tests.conftest import query
from churn_assets_tests.dagster_helpers import QUIET, failure_message, materialize_file

CONTACTS_FILE = "campaign_contacts_2024-10.csv"


def _partitions(instance, key: dg.AssetKey) -> set[str]:
    return set(instance.get_materialized_partitions(key))


def _check(instance, key: dg.AssetKey, name: str):
    history = instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(key, name), limit=1)
    return history[0].evaluation


def test_only_campaigns_whose_horizon_is_observed_are_read_out(trained):
    settings, instance, _ = trained
    contacts = query(settings, "select strftime(snapshot_date, '%Y-%m-%d') as campaign, count(*) as n from silver.campaign_contacts group by 1")
    assert set(contacts["campaign"]) == {"2024-10-01", "2024-11-01", "2024-12-01"}
    # data ends 2024-12-31: only 2024-10-01's 90-day horizon is observed
    assert _partitions(instance, CAMPAIGN_OUTCOMES) == {"2024-10-01"}
    outcomes = query(settings, "select * from gold.campaign_outcomes")
    total = outcomes[outcomes["action"] == "all"].iloc[0]
    cells = outcomes[outcomes["action"] != "all"]
    landed = int(contacts.loc[contacts["campaign"] == "2024-10-01", "n"].iloc[0])
    assert total["treated"] + total["controls"] + total["unlabelled"] == landed
    assert total["unlabelled"] == 0
    assert cells["treated"].sum() == total["treated"] and cells["controls"].sum() == total["controls"]
    assert total["uplift_low"] <= total["uplift"] <= total["uplift_high"]
    assert _check(instance, CAMPAIGN_OUTCOMES, "sample_ratio").passed
    assert _check(instance, CAMPAIGN_CONTACTS, "row_accounting").passed
    # every campaign with a plan for its snapshot has its execution measured
    plans = set(query(settings, "select distinct strftime(snapshot_date, '%Y-%m-%d') as s from gold.retention_actions")["s"])
    assert _partitions(instance, CAMPAIGN_EXECUTION) == plans & set(contacts["campaign"])


def _metadata(instance, key: dg.AssetKey, partition: str) -> dict:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
    return records[0].asset_materialization.metadata


def test_the_plan_learns_its_effects_from_the_matured_campaign(trained):
    settings, instance, _ = trained
    effects = query(settings, "select strftime(snapshot_date, '%Y-%m-%d') as s, * exclude (snapshot_date) from gold.action_effects")
    # 2024-10-01's campaign matured by 2025-01-01 (its horizon ended 2024-12-30), by no earlier month
    assert set(effects["s"]) == {"2025-01-01"}
    assert "2024-12-01" in _partitions(instance, ACTION_EFFECTS)  # built, empty: nothing matured yet
    contacts = query(settings, "select action, count(*) filter (where not is_control) as treated, count(*) filter (where is_control) "
                               "as controls from silver.campaign_contacts where snapshot_date = '2024-10-01' group by 1")
    learned = effects.groupby("action")[["treated", "controls"]].sum()
    assert learned.loc[contacts["action"], "treated"].tolist() == contacts["treated"].tolist()
    assert learned.loc[contacts["action"], "controls"].tolist() == contacts["controls"].tolist()
    measured = effects[effects["measured_effect"].notna()]
    assert len(measured) and ((measured["effect"] - measured["prior_effect"]).abs() < (measured["measured_effect"] - measured["prior_effect"]).abs() + 1e-12).all()
    newest = _metadata(instance, RETENTION_ACTIONS, "2025-01-01")
    assert newest["effect_source"].value.startswith("measured: ")
    # one matured campaign cannot both teach the uplift model and test it: no action uses it, and the table says why
    validation = query(settings, "select * from gold.uplift_validation where snapshot_date = '2025-01-01'")
    assert len(validation) == 3 and not validation["uses_uplift"].any()
    assert validation["reason"].str.contains("1 matured campaign").all()
    assert _partitions(instance, UPLIFT_VALIDATION) == _partitions(instance, ACTION_EFFECTS)
    assert _metadata(instance, RETENTION_ACTIONS, "2024-12-01")["effect_source"].value.startswith("assumed: no campaign had matured")


def test_a_campaign_is_not_read_out_before_its_horizon_is_observed(copied):
    settings, instance = copied
    job = build_definitions(settings).resolve_job_def("refresh_tables")
    result = job.execute_in_process(
        instance=instance, partition_key="2024-12-01", asset_selection=[CAMPAIGN_OUTCOMES], run_config=QUIET, raise_on_error=False
    )
    assert not result.success
    assert "2024-12-01" in failure_message(result) and "horizon is not observed" in failure_message(result)
    assert "2024-12-01" not in _partitions(instance, CAMPAIGN_OUTCOMES)


def test_a_tampered_contact_file_fails_the_sample_ratio_check(copied):
    copy, copied_instance = copied
    path = copy.landing_dir / "campaign_contacts" / CONTACTS_FILE
    landed = pd.read_csv(path, dtype=str)
    treated = landed.index[landed["is_control"].str.lower() == "false"]
    assert len(treated) >= 50
    landed.loc[treated[::2], "is_control"] = "True"  # every other treated contact recorded as a control
    landed.to_csv(path, index=False)
    replaced = materialize_file(
        copied_instance, build_definitions(copy), "campaign_contacts", CONTACTS_FILE, {"allow_changed_content": True}
    )
    assert replaced.success
    report = run_pipeline(copy, instance=copied_instance)
    check = _check(copied_instance, CAMPAIGN_OUTCOMES, "sample_ratio")
    assert not check.passed, check.metadata
    assert report.ok  # a failed check is reported in the UI, not a failed run
