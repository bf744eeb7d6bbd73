"""The landing sensor through a real Dagster instance: new, duplicate, changed, broken, empty."""

import gc
import json

from churn_assets.core.ingestion.landing import file_sha256
from churn_assets.definitions import build_definitions
from churn_assets.defs.ingestion.new_files import landing_ledger
from churn_assets.settings import Settings
from churn_assets_tests.conftest import backdate, fill_disk, land, query
from churn_assets_tests.dagster_helpers import (
    failure_message,
    ingestion_requests,
    launch,
    ledger_requests,
    materialize_file,
    tick,
)

JAN = "order_id,customer_id,order_ts,amount\nO1,1,2024-01-05 10:00:00,10.00\nO2,2,2024-01-06 11:00:00,20.00\n"
FEB = "order_id,customer_id,order_ts,amount\nO3,1,2024-02-05 10:00:00,30.00\n"


def test_new_files_get_one_run_each_keyed_by_content(settings, instance, definitions):
    jan = land(settings, "transactions", "tx_2024-01.csv", JAN)
    land(settings, "customers", "customers_2024-01.csv", "customer_id,segment\n1,vip\n2,consumer\n")
    result = tick(instance, settings)
    requests = {r.partition_key: r for r in ingestion_requests(result)}
    assert set(requests) == {"tx_2024-01.csv", "customers_2024-01.csv"}
    assert requests["tx_2024-01.csv"].run_key == f"transactions/tx_2024-01.csv@{file_sha256(jan)}"
    assert requests["tx_2024-01.csv"].job_name == "ingest_transactions"
    assert instance.get_dynamic_partitions("transactions_files") == ["tx_2024-01.csv"]
    outcomes = launch(instance, definitions, result)
    assert all(o.success for o in outcomes.values())
    assert query(settings, "select count(*) n from bronze.transactions")["n"][0] == 2
    assert query(settings, "select count(*) n from bronze.customers")["n"][0] == 2


def test_the_same_content_is_ingested_once(settings, instance, definitions):
    land(settings, "transactions", "tx_2024-01.csv", JAN)
    first = tick(instance, settings)
    launch(instance, definitions, first)
    assert not ingestion_requests(tick(instance, settings, first.cursor))  # nothing new since last tick
    # A fresh cursor (e.g. after `churn-assets run` or a cursor reset) still finds it ingested.
    assert not ingestion_requests(tick(instance, settings, None))
    land(settings, "transactions", "tx_2024-01_copy.csv", JAN)
    again = tick(instance, settings, first.cursor)
    assert not ingestion_requests(again)
    assert query(settings, "select count(*) n from bronze.transactions")["n"][0] == 2


def test_changed_file_under_an_old_name_is_refused_and_old_rows_stay(settings, instance, definitions):
    path = land(settings, "transactions", "tx_2024-01.csv", JAN)
    first = tick(instance, settings)
    launch(instance, definitions, first)
    before = query(settings, "select * exclude (_ingested_at) from bronze.transactions order by _row_number")
    path.write_text(JAN + "O9,9,2024-01-09 09:00:00,99.00\n")
    backdate(path, 30)
    second = tick(instance, settings, first.cursor)
    assert not ingestion_requests(second)
    assert json.loads(second.cursor)["transactions/tx_2024-01.csv"][2] == file_sha256(path)
    # Launched by hand, the run refuses too and leaves the rows alone ...
    refused = materialize_file(instance, definitions, "transactions", "tx_2024-01.csv")
    assert not refused.success
    assert "refused transactions/tx_2024-01.csv: its content changed" in failure_message(refused)
    after = query(settings, "select * exclude (_ingested_at) from bronze.transactions order by _row_number")
    assert after.equals(before)
    # ... unless the user says to replace them.
    replaced = materialize_file(
        instance, definitions, "transactions", "tx_2024-01.csv", {"allow_changed_content": True}
    )
    assert replaced.success
    assert query(settings, "select count(*) n from bronze.transactions")["n"][0] == 3


def test_broken_file_fails_its_own_run_and_others_flow(settings, instance, definitions):
    land(settings, "transactions", "tx_2024-01.csv", JAN)
    land(settings, "transactions", "legacy.csv", "OrderNo,Client,When,Total\nO1,1,2024-01-01,3\n")
    land(settings, "transactions", "tx_2024-02.csv", FEB)
    outcomes = launch(instance, definitions, tick(instance, settings))
    assert outcomes["tx_2024-01.csv"].success and outcomes["tx_2024-02.csv"].success
    assert not outcomes["legacy.csv"].success
    message = failure_message(outcomes["legacy.csv"])
    assert "transactions/legacy.csv: missing required columns" in message
    assert "['order_id', 'customer_id', 'order_ts', 'amount']" in message
    files = query(settings, "select distinct _source_file f from bronze.transactions order by f")["f"]
    assert files.tolist() == ["tx_2024-01.csv", "tx_2024-02.csv"]


def test_fixed_broken_file_is_ingested_when_it_changes(settings, instance, definitions):
    path = land(settings, "transactions", "late.csv", "OrderNo,Client\nO1,1\n")
    first = tick(instance, settings)
    assert not launch(instance, definitions, first)["late.csv"].success
    path.write_text(FEB)
    backdate(path, 30)
    second = tick(instance, settings, first.cursor)
    assert [r.partition_key for r in ingestion_requests(second)] == ["late.csv"]
    assert launch(instance, definitions, second)["late.csv"].success


def test_empty_file_gives_zero_rows_and_a_table(settings, instance, definitions):
    land(settings, "web_sessions", "sessions_2024-01.csv", "")
    outcomes = launch(instance, definitions, tick(instance, settings))
    assert outcomes["sessions_2024-01.csv"].success
    assert query(settings, "select count(*) n from bronze.web_sessions")["n"][0] == 0


def test_nothing_landed_is_a_skip(settings, instance):
    result = tick(instance, settings)
    assert not result.run_requests
    assert result.skip_reason.skip_message == "no landed files"


def test_sources_with_other_column_names_are_mapped_by_settings(settings, instance, tmp_path):
    import dataclasses

    from churn_assets.definitions import build_definitions

    mapped = dataclasses.replace(
        settings, transactions_column_map="OrderNo=order_id,Client=customer_id,When=order_ts,Total=amount"
    )
    definitions = build_definitions(mapped)
    land(mapped, "transactions", "export.csv", "OrderNo,Client,When,Total,Store\nO1,1,2024-01-01,3.50,Berlin\n")
    outcomes = launch(instance, definitions, tick(instance, mapped))
    assert outcomes["export.csv"].success
    row = query(mapped, "select order_id, customer_id, order_ts, amount, _extra from bronze.transactions")
    assert row.values.tolist() == [["O1", "1", "2024-01-01", "3.50", '{"Store":"Berlin"}']]


def test_a_file_still_being_written_waits_until_it_settles(settings, instance, definitions):
    path = land(settings, "transactions", "copying.csv", JAN, age_seconds=0)  # modified just now
    first = tick(instance, settings)
    assert not ingestion_requests(first)
    assert json.loads(first.cursor) == {}  # not hashed, not remembered: read in full once settled
    backdate(path, settings.settle_seconds + 1)
    second = tick(instance, settings, first.cursor)
    assert [r.partition_key for r in ingestion_requests(second)] == ["copying.csv"]
    assert launch(instance, definitions, second)["copying.csv"].success
    assert query(settings, "select count(*) n from bronze.transactions")["n"][0] == 2
    # ingested as it is now: the ledger says so even inside a longer settle window
    (entry,) = landing_ledger(instance, settings.landing_dir, settle_seconds=3600)
    assert (entry.verdict.value, entry.rows) == ("ingested", 2)


def test_the_sensor_retries_a_file_whose_run_failed_because_the_disk_was_full(small_disk, instance):
    settings = Settings(churn_home=small_disk / "home")
    definitions = build_definitions(settings)
    rows = "".join(f"O{i},{i % 90},2024-01-{i % 28 + 1:02d} 10:00:00,{i % 70 + 1}.00\n" for i in range(40_000))
    land(settings, "transactions", "tx_2024-01.csv", "order_id,customer_id,order_ts,amount\n" + rows)
    first = tick(instance, settings)
    ballast = fill_disk(small_disk)
    failed = launch(instance, definitions, first)["tx_2024-01.csv"]
    assert not failed.success and "No space left on device" in failure_message(failed)
    failed_run = failed.run_id
    del failed  # its traceback holds the failed run's DuckDB connection open
    gc.collect()
    ballast.unlink()
    second = tick(instance, settings, first.cursor)
    (retry,) = ingestion_requests(second)
    assert retry.run_key.endswith(f"/retry-of/{failed_run}")  # one retry per failure, never a loop
    assert launch(instance, definitions, second)["tx_2024-01.csv"].success
    third = tick(instance, settings, second.cursor)
    assert not ingestion_requests(third)
    assert query(settings, "select count(*) n from bronze.transactions")["n"][0] == 40_000


def test_a_content_failure_is_not_retried_by_the_sensor(settings, instance, definitions):
    land(settings, "transactions", "broken.csv", "order_id,customer_id,order_ts,amount\n\"unterminated,1,2024-01-05,1\n")
    first = tick(instance, settings)
    assert not launch(instance, definitions, first)["broken.csv"].success
    assert not ingestion_requests(tick(instance, settings, first.cursor))


def test_the_sensor_takes_the_ledger_once_per_state_of_landing(settings, instance, definitions):
    land(settings, "transactions", "tx_2024-01.csv", JAN)
    land(settings, "transactions", "export.xlsx", "x")
    first = tick(instance, settings)
    (ledger,) = ledger_requests(first)
    assert ledger_requests(tick(instance, settings, first.cursor))[0].run_key == ledger.run_key  # same state, same key
    assert launch(instance, definitions, first, ledger=True)["ledger"].success
    verdicts = query(settings, "select file, verdict, coalesce(rows, -1) from bronze.landing_ledger order by file")
    assert verdicts.values.tolist() == [["transactions/export.xlsx", "refused", -1], ["transactions/tx_2024-01.csv", "ingested", 2]]
    land(settings, "transactions", "tx_2024-02.csv", FEB)
    assert ledger_requests(tick(instance, settings, first.cursor))[0].run_key != ledger.run_key
