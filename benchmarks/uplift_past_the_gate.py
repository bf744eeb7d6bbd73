"""What the uplift model's plan would realise had it passed its out-of-time gate: a month's plan
re-solved with the model for chosen actions, its estimates raw and scaled to the segments'
measured effects (as the plan uses them), valued under the generator's truth at equal spend
beside the plans with measured and with assumed effects.

    python benchmarks/uplift_past_the_gate.py --home H [--snapshot 2026-01-01]

H is a home ``churn-assets run`` built on generated data.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import duckdb

from churn_assets.core.silver.campaign_contacts import in_running_campaign
from churn_assets.core.sample.files import TRUTH_FILE
from churn_assets.core.gold.retention import plan_customers_sql
from churn_assets.core.gold.oracle import compare_with_oracle, truth_at_snapshot
from churn_assets.core.ingestion.parquet import read_parquet
from churn_assets.core.gold.plan_effects import model_uplift, plan_effects, scaled_to_segments
from churn_assets.core.warehouse import query_frame
from churn_assets.settings import Settings

FORCED = {
    "uplift model for voucher and email": {"discount_voucher", "win_back_email"},
    "uplift model for every action": {"discount_voucher", "win_back_email", "loyalty_reward"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--snapshot", type=date.fromisoformat, default=date(2026, 1, 1))
    args = parser.parse_args()
    settings = Settings(churn_home=args.home)
    snapshot = args.snapshot.isoformat()
    truth = truth_at_snapshot(
        read_parquet(settings.truth_dir / TRUTH_FILE), args.snapshot, settings.churn_horizon_days, settings.value_horizon_days
    )
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        customers = query_frame(connection, plan_customers_sql(snapshot))
        customers = customers[customers["customer_id"].isin(truth["customer_id"])].reset_index(drop=True)
        measured = plan_effects(connection, customers, snapshot, settings, "measured")
        running = in_running_campaign(connection, customers, snapshot, settings.churn_horizon_days)
        catalogues = {"measured effects": measured.catalogue, "assumed effects": settings.action_catalogue}
        uplifts = {}
        for name, actions in FORCED.items():
            raw, _ = model_uplift(connection, customers, snapshot, settings, measured.catalogue, actions)
            uplifts[f"{name}, raw"] = raw
            uplifts[f"{name}, scaled"] = scaled_to_segments(raw, customers, measured.catalogue)
        catalogues.update({name: measured.catalogue for name in uplifts})
    table = compare_with_oracle(customers, truth, settings, catalogues, running, uplifts)
    print(f"Snapshot {snapshot}, budget {settings.budget:,.0f}, valued under the truth at equal spend:")
    print(table.round({"customers": 0, "spend": 0, "expected_net_value": 0, "realised_net_value": 0, "share_of_oracle": 3}).to_string())


if __name__ == "__main__":
    main()
