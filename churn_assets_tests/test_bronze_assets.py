"""Bronze assets against a real DuckDB warehouse and Dagster instance."""

import dataclasses
import threading
import time
from datetime import date


from churn_assets.core.sample.generate import SampleConfig, generate_sample
from churn_assets.core.sample.files import write_landing
from churn_assets.core.ingestion.landing import file_sha256
from churn_assets.runner import run_pipeline
from churn_assets.settings import Settings
from churn_assets_tests.conftest import fill_disk, land, project_instance, query
from churn_assets_tests.dagster_helpers import hold_warehouse, launch, materialize_file, tick

JAN = "order_id,customer_id,order_ts,amount\nO1,1,2024-01-05 10:00:00,10.00\nO2,2,2024-01-06 11:00:00,20.00\n"


def test_rematerializing_a_partition_replaces_exactly_its_rows(settings, instance, definitions):
    land(settings, "transactions", "a.csv", JAN)
    land(settings, "transactions", "b.csv", JAN.replace("O1", "O7").replace("O2", "O8"))
    launch(instance, definitions, tick(instance, settings))
    content = "select * exclude (_ingested_at) from bronze.transactions order by _source_file, _row_number"
    before = query(settings, content)
    for _ in range(2):
        assert materialize_file(instance, definitions, "transactions", "a.csv").success
    after = query(settings, content)
    assert len(after) == 4
    assert after.equals(before)


def test_lineage_columns_point_back_to_the_file(settings, instance, definitions):
    path = land(settings, "transactions", "a.csv", JAN)
    outcomes = launch(instance, definitions, tick(instance, settings))
    rows = query(settings, "select * from bronze.transactions order by _row_number")
    assert rows["_source_file"].tolist() == ["a.csv", "a.csv"]
    assert set(rows["_file_sha256"]) == {file_sha256(path)}
    assert rows["_row_number"].tolist() == [1, 2]
    assert rows["order_id"].tolist() == ["O1", "O2"]
    assert rows["_ingested_at"].nunique() == 1
    checks = outcomes["a.csv"].get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("lineage_complete", True)]
    (materialization,) = outcomes["a.csv"].get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["file_sha256"].value == file_sha256(path)
    assert metadata["dagster/row_count"].value == 2


def test_pipeline_ingests_generated_dirty_data_in_few_runs(settings, instance):
    sample = generate_sample(SampleConfig(customers=400, months=4, seed=9, dirty_share=0.02))
    write_landing(sample, settings.landing_dir)
    report = run_pipeline(settings, instance=instance)
    assert query(settings, "select count(*) n from bronze.transactions")["n"][0] == len(sample.transactions)
    assert query(settings, "select count(*) n from bronze.customers")["n"][0] == 400
    assert query(settings, "select count(*) n from bronze.web_sessions")["n"][0] == len(sample.web_sessions)
    # Every defect is still in bronze as landed text; silver decides what to do with it.
    assert query(settings, "select count(*) n from bronze.transactions where order_ts = '2099-01-01 00:00:00'")["n"][0] == (
        sample.transactions["defect"] == "future_date"
    ).sum()
    assert report.failures == [
        "transactions/transactions_legacy_export.csv: missing required columns "
        "['order_id', 'customer_id', 'order_ts', 'amount']; found ['OrderNo', 'Client', 'When', 'Total']. "
        "The file needs columns order_id, customer_id, order_ts plus amount, or plus quantity and unit_price: "
        "rename them and land it again under a new name, or map them with CHURN_TRANSACTIONS_COLUMN_MAP (e.g. 'OrderNo=order_id')."
    ]
    def ingest_runs():
        return [r for r in instance.get_run_records() if r.dagster_run.job_name.startswith("ingest_")]

    assert len(ingest_runs()) == 4  # one per source, plus the refused file's own run
    again = run_pipeline(settings, instance=instance)
    assert len(ingest_runs()) == 4  # nothing new, and the refused file is not retried
    assert again.failures[0].endswith("(unchanged since its failed run)")
    # Silver reconciles with the generator's own record of what it broke.
    reasons = query(settings, "select reason, count(*) n from silver.quarantine group by 1").set_index("reason")["n"]
    expected = {
        "duplicate_order": "exact_duplicate",
        "conflicting_duplicate": "conflicting_duplicate",
        "missing_customer_id": "missing_customer_id",
        "bad_date": "unparseable_order_ts",
        "bad_amount": "unparseable_amount",
        "future_date": "future_order_ts",
    }
    defects = sample.transactions["defect"].value_counts()
    assert {expected[d]: int(n) for d, n in defects.items()} == reasons.to_dict()
    silver_rows = query(settings, "select count(*) n from silver.transactions")["n"][0]
    assert silver_rows == sample.transactions["defect"].isna().sum()


def test_a_file_that_failed_while_another_process_held_the_warehouse_is_ingested_by_the_next_run(settings, instance):
    """The lock is the machine's fault, not the file's: the run fails and says so, and the next
    run, once the lock is released, ingests the file with no manual step."""
    land(settings, "transactions", "orders.csv", "order_id,customer_id,order_ts,amount\nA1,1,2024-05-01,5\nA2,2,2024-05-02,6\n")
    settings.churn_home.mkdir(parents=True, exist_ok=True)
    with hold_warehouse(settings):
        held = run_pipeline(settings, instance=instance)  # gives up after the IO manager's retries
    assert len(held.failures) == 1 and "the next run tries them again" in held.failures[0], held.failures
    assert "lock" in held.failures[0].lower()
    healed = run_pipeline(settings, instance=instance)
    assert healed.ok, healed.failures
    assert healed.ingested == {"transactions": 2}
    assert query(settings, "select count(*) n from silver.transactions")["n"][0] == 2


def test_a_full_disk_is_named_and_the_next_run_after_freeing_space_ingests_everything(small_disk, tmp_path):
    """DuckDB reports a full disk at commit as a TransactionException; the run must still say
    'No space left on device', fail with exit status 1 and leave the files for the next run."""
    settings = Settings(churn_home=small_disk / "home", start_date=date(2024, 9, 1), settle_seconds=0)
    write_landing(generate_sample(SampleConfig(customers=400, months=12, seed=3)), settings.landing_dir)
    ballast = fill_disk(small_disk)
    with project_instance(tmp_path / "dagster") as instance:
        full = run_pipeline(settings, instance=instance)
        assert not full.ok
        assert any("No space left on device" in f and "the next run tries them again" in f for f in full.failures), full.failures
        ballast.unlink()
        freed = run_pipeline(settings, instance=instance)
        assert freed.ok, freed.failures
        landed_rows = sum(freed.ingested.values()) + sum(full.ingested.values())
        ledger = query(settings, "select verdict, sum(rows) n, count(*) files from bronze.landing_ledger group by 1")
    assert ledger["verdict"].tolist() == ["ingested"]
    assert int(ledger["n"][0]) == landed_rows


def test_a_run_waits_for_a_file_still_being_copied_and_reads_it_whole(settings, instance):
    settings = dataclasses.replace(settings, settle_seconds=1.0)
    path = settings.landing_dir / "transactions" / "copying.csv"
    path.parent.mkdir(parents=True)
    lines = [f"W{i},{i % 50},2024-05-{i % 28 + 1:02d} 10:00:00,{i % 90 + 1}\n" for i in range(3000)]
    path.write_text("order_id,customer_id,order_ts,amount\n" + "".join(lines[:1000]))

    def copy_the_rest():  # a slow copy: a chunk every 0.6 s, each sooner than the settle interval
        for chunk in (lines[1000:2000], lines[2000:]):
            time.sleep(0.6)
            with open(path, "a") as handle:
                handle.write("".join(chunk))

    copier = threading.Thread(target=copy_the_rest)
    copier.start()
    said: list[str] = []
    report = run_pipeline(settings, instance=instance, echo=said.append)
    copier.join()
    assert any(line.startswith("Waiting for 1 file(s) still being written: transactions/copying.csv") for line in said)
    assert report.ok, report.failures
    assert report.ingested == {"transactions": 3000}
    ledger = query(settings, "select verdict, rows from bronze.landing_ledger")
    assert ledger.values.tolist() == [["ingested", 3000]]
