"""How firmly the learned effects should hold: months' plans re-solved with effects learned at
several action-level prior sds (``CHURN_EFFECT_PRIOR_SD``) and segment sds
(``CHURN_SEGMENT_EFFECT_SD``), each valued under the generator's truth at equal spend.

    python benchmarks/effect_prior_sweep.py --home H [--snapshots 2025-09-01 2026-01-01]

H is a home ``churn-assets run`` built on generated data. Prints, per snapshot and pair of sds,
the realised net value of the measured-effects plan over the assumed-effects plan.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from churn_assets.core.gold.action_effects import learned_catalogue, learned_effects, matured_contacts_sql
from churn_assets.core.silver.campaign_contacts import in_running_campaign
from churn_assets.core.sample.files import TRUTH_FILE
from churn_assets.core.gold.retention import plan_customers_sql
from churn_assets.core.gold.oracle import ORACLE, compare_with_oracle, truth_at_snapshot
from churn_assets.core.ingestion.parquet import read_parquet
from churn_assets.core.warehouse import query_frame
from churn_assets.settings import Settings

PRIOR_SDS = (0.05, 0.1, 0.15, 0.2, 0.3)
SEGMENT_SDS = (0.025, 0.05, 0.1, 0.2, 1.0)  # 1.0: segments hardly borrow from each other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--snapshots", type=date.fromisoformat, nargs="+",
                        default=[date(2025, m, 1) for m in (9, 10, 11, 12)] + [date(2026, 1, 1)])
    args = parser.parse_args()
    settings = Settings(churn_home=args.home)
    raw_truth = read_parquet(settings.truth_dir / TRUTH_FILE)
    ratios = {}
    for snapshot in args.snapshots:
        with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
            cells = query_frame(connection, matured_contacts_sql(snapshot, settings.churn_horizon_days))
            customers = query_frame(connection, plan_customers_sql(snapshot.isoformat()))
            running = in_running_campaign(connection, customers, snapshot.isoformat(), settings.churn_horizon_days)
        truth = truth_at_snapshot(raw_truth, snapshot, settings.churn_horizon_days, settings.value_horizon_days)
        catalogues = {"assumed": settings.action_catalogue}
        for prior_sd in PRIOR_SDS:
            for segment_sd in SEGMENT_SDS:
                effects = learned_effects(cells, settings.action_catalogue, snapshot, prior_sd, segment_sd)
                catalogues[(prior_sd, segment_sd)] = learned_catalogue(settings.action_catalogue, effects)
        table = compare_with_oracle(customers, truth, settings, catalogues, running)
        assumed = table.loc["optimised plan (assumed)", "realised_net_value"]
        ratios[snapshot.isoformat()] = {
            key: table.loc[f"optimised plan ({key})", "realised_net_value"] / assumed for key in catalogues if key != "assumed"
        }
        ratios[snapshot.isoformat()]["oracle"] = table.loc[ORACLE, "realised_net_value"] / assumed
        print(f"{snapshot}: {int(cells['treated'].sum() + cells['controls'].sum()):,} matured contacts", flush=True)
    frame = pd.DataFrame(ratios)
    frame["mean"] = frame.mean(axis=1)
    print("\nRealised net value over the assumed-effects plan's, at equal spend (rows: prior sd, segment sd):")
    print(frame.round(3).to_string())


if __name__ == "__main__":
    main()
