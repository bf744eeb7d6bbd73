"""The newest month's model against its references, out-of-time, and the BG/NBD fit time.

Usage: python -m benchmarks.model_references --customers 100000 [--sources transactions] --workdir DIR

Generates the sample into DIR (reused when DIR/landing exists), builds the warehouse with the plain
pipeline (the same core functions the assets call), then trains the newest snapshot's candidates
and prints ROC-AUC and Brier on its out-of-time validation snapshot for: every candidate, the
chosen one, BG/NBD's probability of no purchase within the horizon, recency alone and a logistic
regression on recency, frequency, monetary value and tenure only. Last, it fits BG/NBD on every
customer's history as of the newest snapshot and says how long that took.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd


@contextmanager
def _untimed(_name):
    class Step:
        rows = None

    yield Step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--sources", default="transactions,customers,web_sessions")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    from churn_assets.core.ml.btyd import fit_bgnbd, repeat_summary
    from churn_assets.core.sample.generate import SampleConfig, generate_sample
    from churn_assets.core.sample.files import write_landing
    from churn_assets.core.ml.model import train_and_select
    from churn_assets.core.ml.training import snapshot_features_sql, training_data
    from churn_assets.core.warehouse import query_frame
    from benchmarks.plain_pipeline import run_plain_pipeline
    from churn_assets.settings import Settings

    settings = Settings.from_env(churn_home=args.workdir.resolve())
    if not settings.landing_dir.is_dir():
        config = SampleConfig(customers=args.customers, seed=args.seed, sources=tuple(args.sources.split(",")))
        started = time.perf_counter()
        write_landing(generate_sample(config), settings.landing_dir)
        print(f"generated {args.customers:,} customers ({args.sources}) in {time.perf_counter() - started:.1f} s")
    if not settings.warehouse_path.exists():
        started = time.perf_counter()
        newest = run_plain_pipeline(settings, _untimed)
        print(f"plain pipeline in {time.perf_counter() - started:.1f} s")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        transactions = connection.execute("select count(*) from silver.transactions").fetchall()[0][0]
        newest = str(connection.execute("select max(snapshot_date) from silver.customer_features").fetchall()[0][0])[:10]
        data = training_data(connection, settings, date.fromisoformat(newest))
        everyone = query_frame(connection, snapshot_features_sql(newest))
    started = time.perf_counter()
    result = train_and_select(
        data.train, data.validation, data.window, seed=settings.seed, threshold=settings.decision_threshold,
        contact_cost=settings.contact_cost, action_effect=settings.action_effect,
        candidates=settings.candidate_list, horizon_days=settings.churn_horizon_days, btyd_features=True,
    )
    seconds = time.perf_counter() - started
    rows = {name: c.metrics for name, c in result.candidates.items()} | result.references
    table = pd.DataFrame(rows).T[["roc_auc", "brier", "pr_auc", "top_decile_lift"]]
    print(f"\n{transactions:,} transactions; model for {newest}, validated on {result.window.validation} "
          f"({result.validation_rows:,} rows), trained on {result.train_rows:,} rows in {seconds:.1f} s; "
          f"chosen: {result.chosen}")
    print(f"dropped features: {result.dropped_features or 'none'}")
    print(table.round(4).to_string())
    started = time.perf_counter()
    bgnbd = fit_bgnbd(*repeat_summary(everyone))
    print(f"\nBG/NBD on all {len(everyone):,} customers as of {newest}: {time.perf_counter() - started:.2f} s, {bgnbd}")


if __name__ == "__main__":
    main()
