from datetime import date
from pathlib import Path

import pytest

from churn_assets.settings import Settings, SettingsError


def test_environment_overrides_defaults_and_derives_paths():
    settings = Settings.from_env(
        {"CHURN_HOME": "/tmp/churn", "CHURN_START_DATE": "2025-02-01", "CHURN_HORIZON_DAYS": "60"}
    )
    assert settings.churn_home == Path("/tmp/churn")
    assert settings.start_date == date(2025, 2, 1)
    assert settings.churn_horizon_days == 60
    assert settings.landing_dir == Path("/tmp/churn/landing")
    assert settings.warehouse_path == Path("/tmp/churn/warehouse.duckdb")
    assert settings.mlflow_tracking_uri == "sqlite:////tmp/churn/mlflow.db"


def test_unset_variables_keep_defaults():
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CHURN_START_DATE", "2025-02-15", "first day of a month"),
        ("CHURN_START_DATE", "soon", "CHURN_START_DATE='soon' is not a valid date"),
        ("CHURN_HORIZON_DAYS", "-5", "CHURN_HORIZON_DAYS must be positive"),
        ("CHURN_SEED", "x", "CHURN_SEED='x' is not a valid int"),
        ("CHURN_TIMESTAMP_FORMATS", "%Y-%m-%d;12/1/2010", "'12/1/2010' has no strptime directive"),
        ("CHURN_DUCKDB_MEMORY_LIMIT", "4GB'; drop table silver.transactions; --", "must be a size like 4GB"),
        ("CHURN_DUCKDB_MEMORY_LIMIT", "lots", "must be a size like 4GB"),
    ],
)
def test_bad_values_name_the_variable(variable, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({variable: value})


def test_every_setting_is_described_with_its_variable():
    described = {env for env, _, _ in Settings().describe()}
    assert {"CHURN_HOME", "CHURN_START_DATE", "CHURN_HORIZON_DAYS", "CHURN_SEED"} <= described


def test_timestamp_formats_are_a_list():
    settings = Settings.from_env({"CHURN_TIMESTAMP_FORMATS": "%m/%d/%Y %H:%M; %d.%m.%Y"})
    assert settings.timestamp_format_list == ("%m/%d/%Y %H:%M", "%d.%m.%Y")
    assert Settings().timestamp_format_list == ()


def test_column_maps_are_parsed_and_checked():
    settings = Settings.from_env({"CHURN_TRANSACTIONS_COLUMN_MAP": " InvoiceNo = order_id , CustomerID=customer_id"})
    assert settings.column_map("transactions") == {"InvoiceNo": "order_id", "CustomerID": "customer_id"}
    assert settings.column_map("customers") == {}
    with pytest.raises(SettingsError, match="CHURN_TRANSACTIONS_COLUMN_MAP: 'InvoiceNo' is not of the form"):
        Settings.from_env({"CHURN_TRANSACTIONS_COLUMN_MAP": "InvoiceNo"})
    with pytest.raises(SettingsError, match=r"CHURN_CUSTOMERS_COLUMN_MAP: \['shoe_size'\] are not customers columns"):
        Settings.from_env({"CHURN_CUSTOMERS_COLUMN_MAP": "Size=shoe_size"})
