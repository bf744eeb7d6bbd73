"""A corpus of bad landed files, each with its expected outcome, through a real instance and warehouse.

Every case ends either refused with a message that names the file (and the row and column where
there is one) or with its rows in silver or the quarantine under a reason; row accounting holds
for every file that was ingested, and nothing that landed is lost.
"""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from churn_assets.runner import run_pipeline
from churn_assets_tests.conftest import backdate, land, project_instance, query

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
    "bom_crlf.csv": (("\ufeff" + _rows("E1,C3,2024-03-01,10,home,web", "E2,C3,2024-03-02,11,home,web")).replace("\n", "\r\n"),
                     ("rows", {None: 2})),
    "padded_header.csv": (" order_id , customer_id ,order_ts, amount\nE3,C3,2024-03-03,12\n", ("rows", {None: 1})),
    "quoted_line_breaks.csv": (_rows('E4,C3,2024-03-04,13,"home\nand garden",web', 'E5,C3,2024-03-05,14,"a, b",web'),
                               ("rows", {None: 2})),
    # the same instant with an offset and as Z: one order and its exact duplicate, not a conflict
    "time_zone_offsets.csv": (_rows("E6,C4,2024-03-05T10:00:00+02:00,15,home,web", "E6,C4,2024-03-05T08:00:00Z,15,home,web"),
                              ("rows", {None: 1, "exact_duplicate": 1})),
    "quantity_overflow.csv": (
        "order_id,customer_id,order_ts,quantity,unit_price\nE7,C5,2024-03-06,2,5.5\nE8,C5,2024-03-07,3000000000,0.000001\n",
        ("rows", {None: 1, "quantity_out_of_range": 1}),
    ),
    "repeated_header.csv": ("order_id,customer_id,order_ts,amount,amount\nE9,C5,2024-03-08,1,2\n",
                            ("refused", ["repeated_header.csv", "amount", "more than once"])),
    "gzipped.csv.gz": (gzip.compress(_rows("G1,C6,2024-03-09,16,home,web", "G2,C6,2024-03-10,17,home,web").encode()),
                       ("rows", {None: 2})),
    "damaged.csv.gz": (b"\x1f\x8b\x08\x00not really gzip at all", ("refused", ["damaged.csv.gz", "gzip"])),
    "account_ids.csv": (_rows("E10,ACCT-1.0,2024-03-11,18,home,web"), ("rows", {None: 1})),
    "float_text_ids.csv": (_rows("E20,1001.0,2024-03-11,18,home,web"), ("rows", {None: 1})),
    "null_words.csv": (_rows("E11,C7,2024-03-12,NULL,home,web", "E12,C7,NaN-ish,5,home,web"),
                       ("rows", {"unparseable_amount": 1, "unparseable_order_ts": 1})),
    "currency_symbols.csv": (_rows("E13,C7,2024-03-13,$10.00,home,web", "E14,C7,2024-03-13,\"1,000.00\",home,web"),
                             ("rows", {"unparseable_amount": 2})),
    "zero_amount.csv": (_rows("E15,C8,2024-03-14,0,home,web"), ("rows", {None: 1})),
    "epoch_seconds.csv": (_rows("E16,C8,1709640000,5,home,web"), ("rows", {"unparseable_order_ts": 1})),
    "blank_lines.csv": (HEADER + "E17,C8,2024-03-15,5,home,web\n\n\nE18,C8,2024-03-16,6,home,web\n", ("rows", {None: 2})),
    "binary.csv": (b"\x00\xff\xfe\x00\x89PNG\r\n", ("refused", ["binary.csv", "UTF-8"])),
    "tab_separated.csv": ("order_id\tcustomer_id\torder_ts\tamount\nE19\tC9\t2024-03-17\t5\n",
                          ("refused", ["tab_separated.csv", "customer_id"])),
}
# Files the landing scan refuses unopened: path inside landing/ -> words the refusal holds.
PLACED = {
    "transactions/export.xlsx": ("x", [".xlsx files are not read", "CSV"]),
    "transactions/orders.json": ("[]", [".json files are not read"]),
    "transactions/archive.zip": ("PK", [".zip files are not read", "unzip"]),
    "transactions/notes.txt": ("x", [".txt files are not read"]),
    "transactions/2024/05/nested.csv": (HEADER, ["subfolders are not read"]),
    "stray.csv": (HEADER, ["not in a source folder"]),
    "transactions/bad name!.csv": (HEADER, ["is not allowed"]),
}
OUTSIDE_LINE = "first line of a file outside landing that no message may quote"
LARGE_ROWS = 150_000


def _large_file(quoted_breaks: bool = False) -> str:
    """LARGE_ROWS orders; with ``quoted_breaks`` every 997th category is a quoted value over two
    lines, so some fall on the reader's block boundaries."""
    category = lambda i: '"home\nand garden"' if quoted_breaks and i % 997 == 0 else "home"  # noqa: E731
    ids = range(LARGE_ROWS)
    return HEADER + "".join(f"L{i},C{i % 5000},2024-05-{i % 28 + 1:02d} 12:00:00,{i % 90 + 1},{category(i)},web\n" for i in ids)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from churn_assets.settings import Settings

    root = tmp_path_factory.mktemp("corpus")
    settings = Settings(churn_home=root / "home")
    for name, (content, _) in CORPUS.items():
        land(settings, "transactions", name, content)
    land(settings, "transactions", "large.csv", _large_file())
    for inside, (content, _) in PLACED.items():
        (settings.landing_dir / inside).parent.mkdir(parents=True, exist_ok=True)
        (settings.landing_dir / inside).write_text(content)
    outside = root / "outside.csv"  # a link to a file outside landing/ is refused, never opened
    outside.write_text(OUTSIDE_LINE + "\n")
    (settings.landing_dir / "transactions" / "linked.csv").symlink_to(outside)
    land(settings, "transactions", "large_line_breaks.csv", _large_file(quoted_breaks=True).replace("L", "M"))  # about 6 MB: many reader blocks
    pd.DataFrame({
        "order_id": ["F1", "F2"], "customer_id": [1001.0, 1002.5], "order_ts": ["2024-03-20", "2024-03-21"], "amount": [3.0, 4.0],
    }).to_parquet(settings.landing_dir / "transactions" / "float_ids.parquet")
    pd.DataFrame({"id": ["P1"], "value": [1.5]}).to_parquet(settings.landing_dir / "transactions" / "other_schema.parquet")
    for path in settings.landing_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            backdate(path, 60)  # landed a minute ago, past the settle interval
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
        backdate(changed, 30)
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
    from churn_assets.core.silver.transactions import row_accounting_sql

    accounting = query(settings, row_accounting_sql("bronze.transactions", "silver.transactions", "silver.quarantine"))
    assert (accounting["unaccounted"] == 0).all()
    landed_rows = {name: sum(expected.values()) for name, (_, (kind, expected)) in CORPUS.items() if kind == "rows"}
    landed_rows.update({"large.csv": LARGE_ROWS, "large_line_breaks.csv": LARGE_ROWS, "float_ids.parquet": 2})
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


# Every case of the corpus, with what it ends as.
EXTRA_CASES = {
    "large.csv": "ingested", "large_line_breaks.csv": "ingested", "float_ids.parquet": "ingested",
    "typed_with_extra.parquet": "ingested", "other_schema.parquet": "refused", "linked.csv": "refused",
    "duplicates_a_again.csv": "duplicate_content", "duplicates_b.csv (changed after ingestion)": "refused",
}


def test_the_corpus_holds_at_least_35_cases():
    assert len(CORPUS) + len(PLACED) + len(EXTRA_CASES) >= 35


def test_the_landing_ledger_gives_every_file_its_verdict_and_rows(corpus):
    settings, first, second = corpus
    ledger = query(settings, "select * from bronze.landing_ledger").set_index("file")
    expected = {f"transactions/{name}": ("refused" if kind == "refused" else "ingested") for name, (_, (kind, _)) in CORPUS.items()}
    expected |= {inside: "refused" for inside in PLACED}
    expected |= {f"transactions/{name.split(' ')[0]}": verdict for name, verdict in EXTRA_CASES.items()}
    assert ledger["verdict"].to_dict() == expected
    rows = query(settings, "select _source_file, count(*) n from bronze.transactions group by 1")
    # per file, the ledger's rows are bronze's: ingested files, and the changed one's earlier rows
    assert {f"transactions/{f}": n for f, n in zip(rows["_source_file"], rows["n"])} == {
        f: n for f, n in ledger["rows"].dropna().items() if n > 0
    }
    for inside, (_, words) in PLACED.items():
        for word in words:
            assert word in ledger.loc[inside, "reason"], (inside, word)
    assert "symbolic link" in ledger.loc["transactions/linked.csv", "reason"]
    # the refused files fail both runs; the summary lists every file's verdict
    assert not first.ok and not second.ok
    assert any(line.startswith("Landing ledger:") for line in second.summary().splitlines())


def test_nothing_outside_landing_is_opened_not_even_for_a_message(corpus):
    settings, first, second = corpus
    said = "\n".join([*first.failures, *first.notices, *second.failures, *second.notices, second.summary()])
    assert OUTSIDE_LINE not in said
    assert "linked.csv" in said
    ledger = query(settings, "select * from bronze.landing_ledger")
    assert not ledger.astype(str).apply(lambda column: column.str.contains(OUTSIDE_LINE)).any().any()
    assert query(settings, "select count(*) n from bronze.transactions where _source_file = 'linked.csv'")["n"][0] == 0


def test_ids_read_alike_from_every_format(corpus):
    settings, _, _ = corpus
    ids = query(settings, """
        select _source_file, customer_id from silver.transactions
        where _source_file in ('float_ids.parquet', 'float_text_ids.csv', 'account_ids.csv') order by 2, 1
    """)
    # the float 1001.0 in Parquet and the text 1001.0 in a CSV are the same customer 1001
    assert ids.values.tolist() == [
        ["float_ids.parquet", "1001"], ["float_text_ids.csv", "1001"], ["float_ids.parquet", "1002.5"], ["account_ids.csv", "ACCT-1.0"],
    ]
