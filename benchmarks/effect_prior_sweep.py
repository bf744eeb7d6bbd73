"""How firmly the catalogue's effects should hold: a month's plan re-solved with effects learned
at several prior standard deviations, each valued under the generator's truth at equal spend.

    python benchmarks/effect_prior_sweep.py --home H [--snapshot 2026-01-01]

H is a home ``churn-assets run`` built on generated data. Prints, per prior sd, the realised net
value of the measured-effects plan over the assumed-effects plan, and its share of the oracle.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import duckdb

from churn_assets.core.action_effects import learned_catalogue, learned_effects, matured_contacts_sql
from churn_assets.core.campaign_contacts import in_running_campaign
from churn_assets.core.generate import TRUTH_FILE
from churn_assets.core.gold import plan_customers_sql
from churn_assets.core.oracle import ORACLE, compare_with_oracle, truth_at_snapshot
from churn_assets.core.parquet import read_parquet
from churn_assets.core.warehouse import query_frame
from churn_assets.settings import Settings

PRIOR_SDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--snapshot", type=date.fromisoformat, default=date(2026, 1, 1))
    args = parser.parse_args()
    settings = Settings(churn_home=args.home)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        cells = query_frame(connection, matured_contacts_sql(args.snapshot, settings.churn_horizon_days))
        customers = query_frame(connection, plan_customers_sql(args.snapshot.isoformat()))
        running = in_running_campaign(connection, customers, args.snapshot.isoformat(), settings.churn_horizon_days)
    truth = truth_at_snapshot(
        read_parquet(settings.truth_dir / TRUTH_FILE), args.snapshot, settings.churn_horizon_days, settings.value_horizon_days
    )
    print(f"{args.snapshot}: {int(cells['treated'].sum() + cells['controls'].sum()):,} matured contacts, {len(customers):,} customers")
    print("prior_sd  measured/assumed  measured share of oracle")
    for prior_sd in PRIOR_SDS:
        effects = learned_effects(cells, settings.action_catalogue, args.snapshot, prior_sd)
        catalogues = {"measured": learned_catalogue(settings.action_catalogue, effects), "assumed": settings.action_catalogue}
        table = compare_with_oracle(customers, truth, settings, catalogues, running)
        measured, assumed = table.loc["optimised plan (measured)"], table.loc["optimised plan (assumed)"]
        share = measured["realised_net_value"] / table.loc[ORACLE, "realised_net_value"]
        print(f"{prior_sd:8.2f}  {measured['realised_net_value'] / assumed['realised_net_value']:16.3f}  {share:24.3f}")


if __name__ == "__main__":
    main()
