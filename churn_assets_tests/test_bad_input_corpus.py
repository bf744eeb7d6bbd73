"""A corpus of bad landed files, each with its expected outcome, through a real instance and warehouse.

Every case ends either refused with a message that names the file (and the row and column where
there is one) or with its rows in silver or the quarantine under a reason; row accounting holds
for every file that was ingested, and nothing that landed is lost.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest

from churn_assets.runner import run_pipeline
from churn_assets_tests.conftest import land, project_instance, query

HEADER = "order_id,customer_id,order_ts,amount,product_category,channel\n"


def _rows(*rows: str) -> str:
    return HEADER + "".join(r + "\n" for r in rows)


# name -> (content, expected): ("refused", words the message must hold) or ("rows", {reason: count}),
# where reason None counts rows that reached silver.
CORPUS: dict[str, tuple[object, tuple]] = {
    "wrong_header.csv": ("id,cust,when,amt\nX1,C1,2024-03-01,10\n", ("refused", ["wrong_header.csv", "order_id", "customer_id"])),
    "missing_customer_column.csv": (
        "order_id,order_ts,amount\nX2,2024-03-01,10\n", ("refused", ["missing_customer_column.csv", "customer_id"])
    ),
    "semicolons.csv": (
        "order_id;customer_id;order_ts;amount\nX3;C1;2024-03-01;10\n", ("refused", ["semicolons.csv", "customer_id"])
    ),
    "latin1.csv": (
        (HEADER + "X4,C1,2024-03-01,10,caf\xe9,web\n").encode("latin-1"),
        ("refused", ["latin1.csv", "line 2", "product_category", "UTF-8"]),
    ),
    "ragged.csv": (HEADER + "X5,C1,2024-03-01,10,home,web,extra\n", ("refused", ["ragged.csv", "line 2", "7 fields"])),
    "bad_values.csv": (
        _rows(
            "B1,C1,not-a-date,10,home,web",
            "B2,C1,2024-03-01,12;50,home,web",
            "B3,C1,2024-03-01,-5,home,web",  # a refund
            "B4,C1,2024-03-01,1e12,home,web",
            "B5,C1,2099-01-01,10,home,web",
            "B6,,2024-03-01,10,home,web",
            ",C1,2024-03-01,10,home,web",
            "B7,C1,2024-03-01 10:00:00,10,home,web",
        ),
        ("rows", {"unparseable_order_ts": 1, "unparseable_amount": 1, "amount_out_of_range": 1,
                  "future_order_ts": 1, "missing_customer_id": 1, "missing_order_id": 1, None: 2}),
    ),
    "duplicates_a.csv": (
        _rows("D1,C2,2024-04-01,20,home,web", "D1,C2,2024-04-01,20,home,web", "D2,C2,2024-04-02,30,home,web"),
        ("rows", {None: 2, "exact_duplicate": 1}),
    ),
    "duplicates_b.csv": (
        _rows("D2,C2,2024-04-02,30,home,web", "D1,C9,2024-04-01,99,home,web"),
        ("rows", {"exact_duplicate": 1, "conflicting_duplicate": 1}),
    ),
    "empty.csv": (b"", ("rows", {})),
    "header_only.csv": (HEADER, ("rows", {})),
}
LARGE_ROWS = 150_000


def _large_file() -> str:
    ids = range(LARGE_ROWS)
    return HEADER + "".join(f"L{i},C{i % 5000},2024-05-{i % 28 + 1:02d} 12:00:00,{i % 90 + 1},home,web\n" for i in ids)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from churn_assets.settings import Settings

    root = tmp_path_factory.mktemp("corpus")
    settings = Settings(churn_home=root / "home")
    for name, (content, _) in CORPUS.items():
        land(settings, "transactions", name, content)
    land(settings, "transactions", "large.csv", _large_file())
    pd.DataFrame({"id": ["P1"], "value": [1.5]}).to_parquet(settings.landing_dir / "transactions" / "other_schema.parquet")
    pd.DataFrame({
        "order_id": ["Q1"], "customer_id": [7], "order_ts": [pd.Timestamp("2024-03-03 09:00")], "amount": [12.5],
        "store": ["north"],
    }).to_parquet(settings.landing_dir / "transactions" / "typed_with_extra.parquet")
    with project_instance(root / "dagster") as instance:
        first = run_pipeline(settings, instance=instance)
        # The same content under a new name, and new content under an ingested name.
        (settings.landing_dir / "transactions" / "duplicates_a_again.csv").write_bytes(
            (settings.landing_dir / "transactions" / "duplicates_a.csv").read_bytes()
        )
        changed = settings.landing_dir / "transactions" / "duplicates_b.csv"
        changed.write_text(_rows("D2,C2,2024-04-02,31,home,web"))
        os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
        second = run_pipeline(settings, instance=instance)
        yield settings, first, second


def test_each_unreadable_file_is_refused_with_a_message_naming_file_row_and_column(corpus):
    _, first, _ = corpus
    failures = "\n".join(first.failures)
    for name, (_, (kind, words)) in CORPUS.items():
        if kind == "refused":
            line = next((f for f in first.failures if name in f), None)
            assert line is not None, f"{name} was not refused:\n{failures}"
            for word in words:
                assert word in line, (name, word, line)
    line = next(f for f in first.failures if "other_schema.parquet" in f)
    assert "order_id" in line and "customer_id" in line


def test_each_readable_file_ends_in_silver_or_quarantine_with_its_reason(corpus):
    settings, _, _ = corpus
    outcomes = query(settings, """
        select _source_file, reason, count(*) as n from (
            select _source_file, null as reason from silver.transactions
            union all select _source_file, reason from silver.quarantine
        ) group by all
    """)
    for name, (_, (kind, expected)) in CORPUS.items():
        if kind != "rows":
            continue
        found = outcomes[outcomes["_source_file"] == name]
        got = {(None if pd.isna(r) else r): int(n) for r, n in zip(found["reason"], found["n"])}
        assert got == expected, name
    large = outcomes[outcomes["_source_file"] == "large.csv"]
    assert int(large["n"].sum()) == LARGE_ROWS and large["reason"].isna().all()
    typed = outcomes[outcomes["_source_file"] == "typed_with_extra.parquet"]
    assert typed["reason"].isna().all() and int(typed["n"].sum()) == 1
    extra = query(settings, "select _extra from bronze.transactions where _source_file = 'typed_with_extra.parquet'")
    assert '"store":"north"' in extra["_extra"][0]


def test_row_accounting_holds_for_every_ingested_file_and_nothing_is_lost(corpus):
    settings, first, second = corpus
    from churn_assets.core.silver import row_accounting_sql

    accounting = query(settings, row_accounting_sql("bronze.transactions", "silver.transactions", "silver.quarantine"))
    assert (accounting["unaccounted"] == 0).all()
    landed_rows = {name: content.count("\n") - 1 for name, (content, _) in CORPUS.items()
                   if isinstance(content, str) and CORPUS[name][1][0] == "rows"}
    landed_rows["large.csv"] = LARGE_ROWS
    bronze = query(settings, "select _source_file, count(*) as n from bronze.transactions group by 1")
    counts = dict(zip(bronze["_source_file"], bronze["n"]))
    for name, rows in landed_rows.items():
        assert counts.get(name, 0) == rows, name
    assert "empty.csv" not in counts  # zero rows in bronze, so nothing to account for
    assert first.ingested["transactions"] == sum(counts.values())


def test_a_renamed_copy_is_skipped_and_a_changed_file_is_refused_keeping_its_old_rows(corpus):
    settings, _, second = corpus
    notices = "\n".join(second.notices)
    assert "duplicates_a_again.csv: same content as transactions/duplicates_a.csv" in notices
    # a changed file is a refusal: it fails the run, naming the file, until it is landed anew
    assert [f for f in second.failures if "duplicates_b.csv" in f and "content changed" in f]
    assert not second.ok
    assert second.ingested == {}
    kept = query(settings, "select count(*) as n from bronze.transactions where _source_file = 'duplicates_b.csv'")
    assert int(kept["n"][0]) == 2
    assert query(settings, "select count(*) as n from bronze.transactions where _source_file = 'duplicates_a_again.csv'")["n"][0] == 0
