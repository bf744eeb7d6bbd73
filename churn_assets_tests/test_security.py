"""Security basics that need no server: no secrets in the repository, and settings that reach SQL
text cannot change the statement (the webserver's loopback binding is checked live in
test_live_ui.py, landing names that would escape their folder in test_landing.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest

from churn_assets.core.ingestion.sources import timestamp_sql
from churn_assets.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s:@'\"]+@"),
    "assigned secret": re.compile(
        r"(?i)\b(password|passwd|secret|api[_-]?key|access[_-]?token)\b\s*[:=]\s*['\"][^'\"\s]{8,}['\"]"
    ),
}


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing tells which files the repository holds")
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    return [PROJECT_ROOT / name for name in names if name and (PROJECT_ROOT / name).is_file()]


def test_no_secrets_in_the_repository():
    files = _tracked_files()
    assert len(files) > 20
    found = []
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="ignore")
        found += [f"{path.relative_to(PROJECT_ROOT)}: {kind}" for kind, pattern in SECRET_PATTERNS.items()
                  if pattern.search(text) and path.name != "test_security.py"]
    assert found == []


def test_the_secret_scan_finds_what_it_looks_for():
    planted = "aws = 'AKIA" + "ABCDEFGHIJKLMNOP'\napi_key = \"" + "s3cr3t-value-123\"\nuri = 'postgres://app:" + "hunter22@db'"
    assert {kind for kind, pattern in SECRET_PATTERNS.items() if pattern.search(planted)} == {
        "AWS access key", "assigned secret", "credentials in a URL"
    }


def test_a_hostile_timestamp_format_is_quoted_not_executed():
    # Spliced in unquoted, this would close the list and add a second row to the result.
    hostile = "%d/%m/%Y']) as ts from landed union all select 'injected' --"
    settings = Settings.from_env({"CHURN_TIMESTAMP_FORMATS": hostile})
    with duckdb.connect() as connection:
        connection.execute("create table landed as select '02/01/2024' as ts")
        parsed = connection.sql(
            f"select {timestamp_sql('ts', settings.timestamp_rules)} from landed"
        ).fetchall()
        assert parsed == [(None,)]  # the quote is part of the format, so nothing matches it


def test_settings_that_reach_sql_are_typed_or_checked():
    settings = Settings.from_env({"CHURN_SEED": "7", "CHURN_MAX_TRAINING_ROWS": "100", "CHURN_START_DATE": "2024-06-01"})
    assert isinstance(settings.seed, int) and isinstance(settings.max_training_rows, int)
    assert settings.start_date == date(2024, 6, 1)
    assert settings.duckdb_config == {"memory_limit": "3GB"}
    with duckdb.connect(config=Settings.from_env({"CHURN_DUCKDB_MEMORY_LIMIT": "512 MB"}).duckdb_config) as connection:
        assert connection.sql("select current_setting('memory_limit')").fetchall()[0][0].startswith("488")
