"""Latency of scoring one customer on demand (``churn-assets score``), in process.

Usage: python benchmarks/score_latency.py --home DIR [--customers 200] [--as-of YYYY-MM-DD]

DIR is a home ``churn-assets run`` built. Loads the model once, then scores customers drawn
(seeded) from the snapshot's predictions one at a time, each from the warehouse as the command
does, and prints the median and the 99th percentile in milliseconds.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import duckdb
import numpy as np

from churn_assets.core.on_demand import score_customer
from churn_assets.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None)
    args = parser.parse_args()
    settings = Settings.from_env(churn_home=args.home)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        as_of = args.as_of or connection.execute("select max(snapshot_date) from ml.churn_predictions").fetchall()[0][0].date()
        ids = [r[0] for r in connection.execute(
            "select customer_id from ml.churn_predictions where snapshot_date = ? order by hash(customer_id || 'seed') limit ?",
            [as_of, args.customers],
        ).fetchall()]
        score_customer(connection, settings, ids[0], as_of)  # loads the model and its profile once
        milliseconds = []
        for customer in ids:
            started = time.perf_counter()
            score_customer(connection, settings, customer, as_of)
            milliseconds.append((time.perf_counter() - started) * 1000)
    p50, p99 = np.percentile(milliseconds, [50, 99])
    print(f"{len(ids)} customers as of {as_of}, one at a time from the warehouse, in process: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
