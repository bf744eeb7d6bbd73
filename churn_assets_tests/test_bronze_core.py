import gzip
import json

import pandas as pd
import pytest

from churn_assets.core.ingestion.bronze import bronze_schema, check_landed_columns, read_landed_file
from churn_assets.core.ingestion.landing import LandingError
from churn_assets.core.ingestion.sources import CUSTOMERS, TRANSACTIONS, WEB_SESSIONS

SHA = "ab" * 32
WHEN = pd.Timestamp("2025-01-02 03:04:05")


def _read(path, source=TRANSACTIONS):
    return read_landed_file(path, source, sha256=SHA, ingested_at=WHEN)


def test_rows_are_kept_as_landed_text_with_lineage(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "order_id,customer_id,order_ts,amount,coupon\n"
        "O1,0042,2024-01-05 10:00:00,19.90,SPRING\n"
        "O2,,not a date,12;5,\n"
    )
    frame = _read(path)
    bronze_schema(TRANSACTIONS).validate(frame)
    assert frame["customer_id"].tolist() == ["0042", pd.NA]  # leading zero kept: text as landed
    assert frame["order_ts"].tolist() == ["2024-01-05 10:00:00", "not a date"]
    assert frame["amount"].tolist() == ["19.90", "12;5"]
    assert frame["quantity"].isna().all()  # optional column absent from the file
    assert json.loads(frame.loc[0, "_extra"]) == {"coupon": "SPRING"}
    assert frame["_source_file"].tolist() == ["t.csv", "t.csv"]
    assert frame["_file_sha256"].tolist() == [SHA, SHA]
    assert frame["_ingested_at"].tolist() == [WHEN, WHEN]
    assert frame["_row_number"].tolist() == [1, 2]
    assert list(frame.columns) == list(bronze_schema(TRANSACTIONS).columns)


def test_missing_required_columns_name_the_file_and_columns(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("OrderNo,customer_id,When,amount\nO1,1,2024-01-01,3\n")
    with pytest.raises(LandingError, match=r"transactions/export.csv: missing required columns \['order_id', 'order_ts'\]"):
        _read(path)
    with pytest.raises(LandingError, match="missing required columns"):
        check_landed_columns(path, TRANSACTIONS)


UCI_MAP = {
    "InvoiceNo": "order_id", "CustomerID": "customer_id", "InvoiceDate": "order_ts",
    "Quantity": "quantity", "UnitPrice": "unit_price",
}
UCI_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def test_order_line_exports_are_mapped_by_configuration(tmp_path):
    path = tmp_path / "online_retail.csv"
    path.write_text(UCI_HEADER + "536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\n")
    check_landed_columns(path, TRANSACTIONS, UCI_MAP)
    frame = read_landed_file(path, TRANSACTIONS, sha256=SHA, ingested_at=WHEN, column_map=UCI_MAP)
    bronze_schema(TRANSACTIONS).validate(frame)
    row = frame.iloc[0]
    assert (row["order_id"], row["quantity"], row["unit_price"], row["customer_id"]) == ("536365", "6", "2.55", "17850.0")
    assert pd.isna(row["amount"])  # silver values the line as quantity x unit price
    assert json.loads(row["_extra"]) == {
        "StockCode": "85123A", "Description": "WHITE HANGING HEART", "Country": "United Kingdom"
    }


def test_a_line_export_without_unit_price_names_both_alternatives(tmp_path):
    path = tmp_path / "lines.csv"
    path.write_text("order_id,customer_id,order_ts,quantity\nO1,1,2024-01-01,3\n")
    with pytest.raises(LandingError, match=r"missing required columns \['amount'\].*plus amount, or plus quantity and unit_price"):
        _read(path)


def test_wrong_delimiter_is_a_missing_columns_error(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("order_id;customer_id;order_ts;amount\nO1;1;2024-01-01;3\n")
    with pytest.raises(LandingError, match="missing required columns"):
        _read(path)


def test_empty_and_header_only_files_give_zero_rows(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header_only = tmp_path / "header.csv"
    header_only.write_text("customer_id,session_ts\n")
    check_landed_columns(empty, WEB_SESSIONS)
    for path in (empty, header_only):
        frame = _read(path, WEB_SESSIONS)
        assert len(frame) == 0
        bronze_schema(WEB_SESSIONS).validate(frame)


def test_bytes_that_are_not_utf8_are_located(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("customer_id,segment\n1,consumer\n2,caf\xe9\n".encode("latin-1"))
    with pytest.raises(LandingError, match=r"customers/latin1.csv: line 3, column 'segment'"):
        _read(path, CUSTOMERS)


def test_ragged_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("customer_id,session_ts\n1,2024-01-01\n2,2024-01-02,extra,fields\n")
    with pytest.raises(LandingError, match="web_sessions/ragged.csv: not a readable CSV file.*line 3"):
        _read(path, WEB_SESSIONS)


def test_parquet_values_become_text(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {
            "order_id": ["O1", "O2"],
            "customer_id": [42, 43],
            "order_ts": pd.to_datetime(["2024-01-05 10:00:00", None]),
            "amount": [19.9, None],
        }
    ).to_parquet(path)
    frame = _read(path)
    assert frame["customer_id"].tolist() == ["42", "43"]
    assert frame["order_ts"].tolist() == ["2024-01-05 10:00:00", pd.NA]
    assert frame["amount"].tolist() == ["19.9", pd.NA]


def test_damaged_parquet_is_a_clear_error(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(LandingError, match="transactions/t.parquet: not a readable Parquet file"):
        _read(path)


def test_gzip_compressed_csv_is_read_and_its_faults_are_named(tmp_path):
    body = "order_id,customer_id,order_ts,amount\nA1,1,2024-01-01,5.00\nA2,2,2024-01-02,6.00\n"
    (tmp_path / "orders.csv.gz").write_bytes(gzip.compress(body.encode()))
    frame = read_landed_file(tmp_path / "orders.csv.gz", TRANSACTIONS, sha256="s", ingested_at=pd.Timestamp("2025-01-01"))
    assert frame["order_id"].tolist() == ["A1", "A2"] and frame["_row_number"].tolist() == [1, 2]
    (tmp_path / "ragged.csv.gz").write_bytes(gzip.compress((body + "A3,3\n").encode()))
    with pytest.raises(LandingError, match=r"transactions/ragged.csv.gz: not a readable CSV file: line 4 has 2 fields"):
        read_landed_file(tmp_path / "ragged.csv.gz", TRANSACTIONS, sha256="s", ingested_at=pd.Timestamp("2025-01-01"))
    (tmp_path / "damaged.csv.gz").write_bytes(b"\x1f\x8b not gzip at all")
    with pytest.raises(LandingError, match=r"transactions/damaged.csv.gz: not a readable gzip file"):
        check_landed_columns(tmp_path / "damaged.csv.gz", TRANSACTIONS)
