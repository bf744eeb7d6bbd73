"""``churn-assets simulate``: the closed loop on generated data as a user would live it.

Each month: the newest plan is valued under the truth (with its measured effects and, beside it,
with the catalogue's assumed ones), executed as contacts that land in ``landing/campaign_contacts/``,
the customers respond, the month that follows is drawn and landed, and ``churn-assets run``'s
pipeline takes it in. What Dagster builds is what its automation conditions select, as always.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Callable

import dagster as dg
import pandas as pd

from churn_assets.commands import read_only_warehouse
from churn_assets.core import tables
from churn_assets.core.errors import ChurnError
from churn_assets.core.sample.generate import SampleData
from churn_assets.core.sample.files import TRUTH_FILE, write_landing, write_truth
from churn_assets.core.ingestion.parquet import read_parquet
from churn_assets.core.sample.report import plan_report
from churn_assets.core.sample.simulation import SIMULATED_CONTACTS_FILE, simulate_month
from churn_assets.core.warehouse import query_frame, table_exists
from churn_assets.runner import run_pipeline
from churn_assets.settings import Settings

_ACQUISITION_MONTHS = 6  # new customers per month: the truth's signups over this many months before


@dataclass
class MonthResult:
    """One month of the loop: the plan executed, its value under the truth with measured and with
    assumed effects at equal spend, and the newest campaign read out after the month landed."""

    snapshot: str
    treated: int
    controls: int
    effect_source: str
    realised_measured: float | None
    realised_assumed: float
    realised_uplift: float | None = None  # with the uplift model, where it beat the segment effects out-of-time
    read_out: str | None = None
    uplift: float | None = None
    uplift_low: float | None = None
    uplift_high: float | None = None
    true_uplift: float | None = None

    def line(self) -> str:
        value = (
            f"realised net value under the truth {self.realised_measured:,.0f} with measured effects, "
            f"{self.realised_assumed:,.0f} with assumed ({self.realised_measured / self.realised_assumed:.2f}x)"
            if self.realised_measured is not None else f"realised net value under the truth {self.realised_assumed:,.0f} (assumed effects)"
        )
        if self.realised_uplift is not None:
            value += f", {self.realised_uplift:,.0f} with the uplift model ({self.realised_uplift / self.realised_assumed:.2f}x)"
        outcome = (
            f"; campaign {self.read_out} read out: uplift {self.uplift:+.3f} [{self.uplift_low:+.3f}, {self.uplift_high:+.3f}], "
            f"true {self.true_uplift:+.3f}" if self.read_out else "; no campaign read out yet"
        )
        return f"{self.snapshot}: {self.treated:,} contacted, {self.controls:,} controls; {value}{outcome}"


def simulate(settings: Settings, months: int, instance: dg.DagsterInstance | None = None,
             echo: Callable[[str], None] = print) -> list[MonthResult]:
    """Run the loop for ``months`` months on the home of ``settings``; raises ``ChurnError`` when
    the home cannot be simulated (no generated truth with true effects, a failed pipeline run)."""
    instance = instance or dg.DagsterInstance.get()
    truth_path = settings.truth_dir / TRUTH_FILE
    if not truth_path.exists():
        raise ChurnError(f"no latent truth at {truth_path}: simulate needs data made by `churn-assets generate`")
    _run(settings, instance, echo)
    results = []
    for _ in range(months):
        truth = read_parquet(truth_path)
        if "effect_discount_voucher" not in truth:
            raise ChurnError("the truth holds no true action effects: generate with campaign contacts (the default sources)")
        with read_only_warehouse(settings) as connection:
            snapshot = _newest_plan(connection)
            valued = plan_report(connection, truth, settings, snapshot)
            plan = query_frame(connection, f"select customer_id, action, is_control from {tables.GOLD_RETENTION_ACTIONS} where snapshot_date = date '{snapshot}'")
        truth, month = simulate_month(
            truth, plan, date.fromisoformat(snapshot), settings.seed, settings.churn_horizon_days, _acquisition(truth, snapshot)
        )
        write_landing(SampleData(month.transactions, month.customers, month.web_sessions, truth, campaign_contacts=month.contacts),
                      settings.landing_dir)
        write_truth(SampleData(month.transactions, None, None, truth), settings.truth_dir, replace=True)
        _keep_contacts(settings, month.contacts)
        _run(settings, instance, echo)
        result = _result(settings, snapshot, valued, month.contacts, truth)
        echo(result.line())
        results.append(result)
    return results


def _run(settings: Settings, instance, echo) -> None:
    report = run_pipeline(settings, instance=instance, settle_seconds=0.0)
    if not report.ok:
        raise ChurnError("the pipeline failed; the loop stops here:\n" + "\n".join(f"  - {f}" for f in report.failures))


def _newest_plan(connection) -> str:
    if not table_exists(connection, "gold", "retention_actions"):
        raise ChurnError("no plan yet: the data has no month with a model")
    return str(connection.execute(f"select max(snapshot_date) from {tables.GOLD_RETENTION_ACTIONS}").fetchall()[0][0])[:10]


def _acquisition(truth: pd.DataFrame, snapshot: str) -> int:
    """New customers a month, at the pace of the truth's signups in the months before."""
    end = pd.Timestamp(snapshot)
    recent = truth["signup_ts"].between(end - pd.DateOffset(months=_ACQUISITION_MONTHS), end, inclusive="left")
    return int(round(recent.sum() / _ACQUISITION_MONTHS))


def _keep_contacts(settings: Settings, contacts: pd.DataFrame) -> None:
    """The simulated contacts with their potential outcomes, beside the truth (for evaluation only)."""
    path = settings.truth_dir / SIMULATED_CONTACTS_FILE
    kept = pd.concat([read_parquet(path), contacts], ignore_index=True) if path.exists() else contacts
    kept.to_parquet(path, index=False)


def _result(settings: Settings, snapshot: str, valued, contacts: pd.DataFrame, truth: pd.DataFrame) -> MonthResult:
    policies = valued.policies
    def realised(effects: str) -> float | None:
        row = f"optimised plan ({effects})"
        return float(policies.loc[row, "realised_net_value"]) if row in policies.index else None

    result = MonthResult(
        snapshot, int((~contacts["is_control"]).sum()), int(contacts["is_control"].sum()), valued.effect_source.split(":")[0],
        realised("measured effects"), realised("assumed effects"), realised("uplift model"),
    )
    with read_only_warehouse(settings) as connection:
        if not table_exists(connection, "gold", "campaign_outcomes"):
            return result
        newest = query_frame(connection, f"select * from {tables.GOLD_CAMPAIGN_OUTCOMES} where action = 'all' order by snapshot_date desc limit 1")
    if newest.empty:
        return result
    row = newest.iloc[0]
    result.read_out = pd.Timestamp(row["snapshot_date"]).strftime("%Y-%m-%d")
    result.uplift, result.uplift_low, result.uplift_high = float(row["uplift"]), float(row["uplift_low"]), float(row["uplift_high"])
    result.true_uplift = true_uplift(settings, truth, result.read_out)
    return result


def true_uplift(settings: Settings, truth: pd.DataFrame, campaign: str) -> float | None:
    """Control churn minus treated churn over all of a campaign's contacts under the truth: from the
    simulated contacts' expected potential outcomes, or the generated history's drawn ones."""
    path = settings.truth_dir / SIMULATED_CONTACTS_FILE
    if path.exists():
        simulated = read_parquet(path)
        simulated = simulated[simulated["campaign_id"] == campaign]
        if len(simulated):
            return float((simulated["churn_if_control"] - simulated["churn_if_treated"]).mean())
    if "campaign_snapshot" not in truth:
        return None
    history = truth[truth["campaign_snapshot"] == pd.Timestamp(campaign)]
    if history.empty:
        return None
    return float((history["contact_churn_if_control"].astype(float) - history["contact_churn_if_treated"].astype(float)).mean())

