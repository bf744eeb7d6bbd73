"""Time and peak memory of one snapshot's customer features on an existing warehouse.

Usage: CHURN_HOME=... python benchmarks/snapshot_features.py [--snapshot 2025-07-01]
(after `churn-assets run` has built silver there). Runs the same SQL as the asset, through DuckDB:
the shared typed inputs once, then the snapshot's query; reports both times, rows and peak memory.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import date

import duckdb

from churn_assets.core.silver.features import customer_features_sql, feature_inputs_statements
from churn_assets.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=date.fromisoformat, default=date(2025, 7, 1))
    args = parser.parse_args()
    settings = Settings.from_env()
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        transactions = connection.execute("select count(*) from silver.transactions").fetchall()[0][0]
        started = time.perf_counter()
        for statement in feature_inputs_statements(connection, settings.timestamp_rules):
            connection.execute(statement)
        prepared = time.perf_counter() - started
        features = connection.execute(customer_features_sql(args.snapshot, prepared=True)).df()
        seconds = time.perf_counter() - started - prepared
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"snapshot {args.snapshot}: {len(features):,} customers from {transactions:,} transactions "
        f"in {seconds:.2f} s, after {prepared:.2f} s preparing the inputs all snapshots share; "
        f"peak RSS {peak_mb:,.0f} MB"
    )


if __name__ == "__main__":
    main()
