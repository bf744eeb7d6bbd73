from pathlib import Path

import pytest

from churn_assets.core.ingestion.landing import (
    LandedFile,
    LandingError,
    Verdict,
    check_file_name,
    decide_ingestion,
    file_sha256,
    landed_path,
    scan_landing,
)


def _file(name, source="transactions"):
    return LandedFile(source, name, Path(f"/landing/{source}/{name}"), 10, 1)


@pytest.mark.parametrize(
    "name", ["../escape.csv", "a/b.csv", ".hidden.csv", "notes.txt", "x..csv", "", "ü.csv", "a" * 201 + ".csv"]
)
def test_unsafe_or_unsupported_names_are_refused(name):
    with pytest.raises(LandingError):
        check_file_name(name)


def test_landed_path_stays_in_its_folder(tmp_path):
    assert landed_path(tmp_path, "transactions", "t_2024-01.csv") == (tmp_path / "transactions" / "t_2024-01.csv").resolve()
    with pytest.raises(LandingError, match="not allowed"):
        landed_path(tmp_path, "transactions", "../customers/c.csv")
    with pytest.raises(LandingError, match="unknown source"):
        landed_path(tmp_path, "orders", "o.csv")


def test_scan_lists_supported_files_and_refuses_every_other_file_saying_what_to_do(tmp_path):
    for rel in ["transactions/a.csv", "transactions/b.parquet", "customers/c.csv", "transactions/readme.txt", "other/x.csv"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / "transactions" / ".partial.csv").write_text("x")
    for rel in ["transactions/2024/05/d.csv", "transactions/export.xlsx", "stray.csv"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    files, refused = scan_landing(tmp_path)
    assert [f.file_id for f in files] == ["transactions/a.csv", "transactions/b.parquet", "customers/c.csv"]
    assert [r.message for r in refused] == [
        "refused transactions/2024/05/d.csv: files in subfolders are not read; move it into landing/transactions/ under a unique name",
        "refused transactions/export.xlsx: .xlsx files are not read; save the sheet as CSV (UTF-8) and land that",
        "refused transactions/readme.txt: .txt files are not read; rename it to .csv if it is comma-separated",
        "refused other/x.csv: not in a source folder; land it in one of landing/transactions/, landing/customers/, landing/web_sessions/, landing/campaign_contacts/",
        "refused stray.csv: not in a source folder; land it in one of landing/transactions/, landing/customers/, landing/web_sessions/, landing/campaign_contacts/",
    ]


def test_sha256_matches_known_digest(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"abc")
    assert file_sha256(path, chunk_size=1) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_decisions_for_new_known_changed_and_duplicate_files():
    ingested = {"transactions": {"jan.csv": "s1", "feb.csv": "s2"}}
    decisions = decide_ingestion(
        [
            (_file("jan.csv"), "s1"),        # same name, same content
            (_file("feb.csv"), "s2-new"),    # same name, new content
            (_file("jan_copy.csv"), "s1"),   # another name, known content
            (_file("mar.csv"), "s3"),        # new
            (_file("mar_again.csv"), "s3"),  # same content twice in one batch
            (_file("jan.csv", "customers"), "s1"),  # other source: content is judged per source
        ],
        ingested,
    )
    assert [d.verdict for d in decisions] == [
        Verdict.ALREADY_INGESTED,
        Verdict.CHANGED_CONTENT,
        Verdict.DUPLICATE_CONTENT,
        Verdict.NEW,
        Verdict.DUPLICATE_CONTENT,
        Verdict.NEW,
    ]
    assert "transactions/feb.csv" in decisions[1].message and "under a new file name" in decisions[1].message
    assert "transactions/jan.csv" in decisions[2].message
    assert decisions[3].run_key == "transactions/mar.csv@s3"


def test_a_requested_file_that_never_landed_in_bronze_may_come_back_with_new_content():
    decisions = decide_ingestion(
        [(_file("broken.csv"), "fixed"), (_file("other.csv"), "pending")],
        ingested={},
        requested={"transactions": {"broken.csv": "broken", "queued.csv": "pending"}},
    )
    assert [d.verdict for d in decisions] == [Verdict.NEW, Verdict.DUPLICATE_CONTENT]


def test_content_must_match_what_was_requested_and_ingested():
    from churn_assets.core.ingestion.landing import check_content_unchanged

    check_content_unchanged("t/a.csv", "s1", "s1", "s1", allow_change=False)
    check_content_unchanged("t/a.csv", "s2", None, "s1", allow_change=True)
    with pytest.raises(LandingError, match="t/a.csv changed after it was requested"):
        check_content_unchanged("t/a.csv", "s2", "s1", None, allow_change=True)
    with pytest.raises(LandingError, match="refused t/a.csv: its content changed since it was ingested"):
        check_content_unchanged("t/a.csv", "s2", None, "s1", allow_change=False)
