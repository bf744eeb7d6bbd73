"""Synthetic non-contractual e-commerce data with a known latent truth.

Each customer joins at some time, buys as a Poisson process at their own rate (seasonal, and
slowing in the weeks before they leave), spends around their own level (gamma-gamma), and stops
buying at an unobserved dropout time. Web sessions fade before dropout. Past randomised retention
campaigns contact some customers each month, who respond with their own true effect
(``campaign_history.py``). The truth (dropout time, rate, spend level, true effects, contacts) is
returned separately so evaluation can score decisions against it; the pipeline never reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from churn_assets.core.sample.campaign_history import (
    ACTIONS,
    CampaignDesign,
    potential_churn,
    run_campaigns,
    snapshot_days,
    true_effects,
)
from churn_assets.core.sample.draws import (
    FIRST_CUSTOMER_ID,
    customer_ids,
    customer_tables,
    draw_customers,
    draw_orders,
    draw_refunds,
    draw_sessions,
    number_orders,
    timestamps,
    transactions_table,
)
from churn_assets.core.sample.files import bad_header_file, inject_defects, order_lines


SOURCE_NAMES = ("transactions", "customers", "web_sessions", "campaign_contacts")

LAYOUTS = ("orders", "order_lines")

@dataclass(frozen=True)
class SampleConfig:
    """What to generate. ``sources`` are the files written (the truth always covers everyone);
    ``cohort_weeks`` puts every first purchase in the first N weeks; ``zero_amount_share`` of
    orders have amount 0; ``layout`` writes one row per order or per invoice line. Campaigns run
    monthly from month ``campaign_first_month`` (None: never) when ``campaign_contacts`` is among
    the sources, holding out ``campaign_control_share`` of each action."""

    customers: int = 20_000
    start: date = date(2024, 1, 1)
    months: int = 24
    seed: int = 42
    dirty_share: float = 0.0
    first_customer_id: int = FIRST_CUSTOMER_ID
    sources: tuple[str, ...] = SOURCE_NAMES
    cohort_weeks: int | None = None
    zero_amount_share: float = 0.0
    layout: str = "orders"
    campaign_first_month: int | None = 10
    campaign_control_share: float = 0.1

    def __post_init__(self) -> None:
        if self.customers <= 0 or self.months <= 0:
            raise ValueError("customers and months must be positive")
        if not 0.0 <= self.dirty_share < 0.5:
            raise ValueError(f"dirty share must be in [0, 0.5), got {self.dirty_share}")
        if not 0.0 <= self.zero_amount_share < 0.5:
            raise ValueError(f"zero-amount share must be in [0, 0.5), got {self.zero_amount_share}")
        if self.first_customer_id < 1:
            raise ValueError(f"the first customer id must be positive, got {self.first_customer_id}")
        unknown = sorted(set(self.sources) - set(SOURCE_NAMES))
        if unknown or "transactions" not in self.sources:
            raise ValueError(f"sources must include transactions and come from {list(SOURCE_NAMES)}, got {list(self.sources)}")
        if self.cohort_weeks is not None and not 1 <= self.cohort_weeks * 7 <= (self.end - pd.Timestamp(self.start)).days:
            raise ValueError(f"cohort weeks must be at least 1 and fit in the generated months, got {self.cohort_weeks}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {self.layout!r}")
        if not 0.0 < self.campaign_control_share < 1.0:
            raise ValueError(f"campaign control share must be in (0, 1), got {self.campaign_control_share}")
        if self.campaign_first_month is not None and self.campaign_first_month < 1:
            raise ValueError(f"the first campaign month must be at least 1, got {self.campaign_first_month}")
        if self.layout == "order_lines" and self.dirty_share:
            raise ValueError("defects are injected into the orders layout only; use --dirty-share 0 with order lines")

    @property
    def end(self) -> pd.Timestamp:
        return pd.Timestamp(self.start) + pd.DateOffset(months=self.months)

@dataclass(frozen=True)
class SampleData:
    """Generated tables. ``transactions`` values are text when defects were injected."""

    transactions: pd.DataFrame
    customers: pd.DataFrame | None  # None when the source is not generated
    web_sessions: pd.DataFrame | None
    truth: pd.DataFrame
    bad_header_file: pd.DataFrame | None = None
    first_customer_id: int = FIRST_CUSTOMER_ID
    campaign_contacts: pd.DataFrame | None = None

def generate_sample(config: SampleConfig) -> SampleData:
    """All tables for ``config``; the same config always gives the same data."""
    rng = np.random.default_rng(config.seed)
    start = pd.Timestamp(config.start)
    horizon_days = (config.end - start).days
    people = draw_customers(rng, config.customers, horizon_days, config.cohort_weeks)
    # In a cohort study a customer enters the data with their first purchase.
    first_order_share = 0.9 if config.cohort_weeks is None else 1.0
    orders = draw_orders(rng, people, start, horizon_days, config.zero_amount_share, first_order_share)
    contacts = None
    if "campaign_contacts" in config.sources and config.campaign_first_month is not None:
        people, orders, contacts = _with_campaigns(config, people, orders, start, horizon_days)
    refunds = draw_refunds(rng, orders, start, horizon_days)
    rows = number_orders(pd.concat([orders, refunds], ignore_index=True), config.first_customer_id)
    first_id = config.first_customer_id
    transactions = transactions_table(rows, start, first_id)
    sessions = draw_sessions(rng, people, start, horizon_days, first_id)
    customers, truth = customer_tables(people, start, first_id)
    if contacts is not None:
        truth = _with_campaign_truth(truth, people, contacts, start)
        contacts = contacts_table(contacts, start, first_id)
    bad_header = None
    if config.dirty_share > 0:
        transactions = inject_defects(transactions, rng, config.dirty_share)
        bad_header = bad_header_file(transactions)
    if config.layout == "order_lines":
        transactions = order_lines(transactions, rng)
    return SampleData(
        transactions,
        customers if "customers" in config.sources else None,
        sessions if "web_sessions" in config.sources else None,
        truth,
        bad_header,
        first_id,
        contacts,
    )

def _with_campaigns(config: SampleConfig, people, orders: pd.DataFrame, start, horizon_days):
    """People with their dropout after the campaigns' contacts, their orders redrawn from the
    contact on where that changed, and the contacts. A separate seeded stream, so the draws of
    everything else do not depend on the campaigns."""
    rng = np.random.default_rng([config.seed, 1])
    design = CampaignDesign(config.campaign_first_month, control_share=config.campaign_control_share)
    effects = true_effects(rng, people["segment"], people["opt_in"])
    days = [day for _, day in snapshot_days(start, config.months, config.campaign_first_month)]
    owner, t = orders["customer_index"].to_numpy(), orders["t"].to_numpy()
    campaigns = run_campaigns(rng, owner, t, people["dropout"], people["opt_in"], effects, days, design)
    # every contacted customer a treatment moves gets the orders it would bring, controls too, so
    # the truth holds both potential outcomes; only the treated customers' land
    moved = np.flatnonzero(campaigns.if_treated != people["dropout"])
    contact_day = np.full(people["dropout"].size, np.inf)
    contact_day[campaigns.contacts["customer_index"].to_numpy()] = campaigns.contacts["contacted_day"].to_numpy()
    tail_people = {name: values[moved] for name, values in people.items()}
    tail_people["signup"], tail_people["dropout"] = contact_day[moved], campaigns.if_treated[moved]
    tails = draw_orders(rng, tail_people, start, horizon_days, config.zero_amount_share, first_order_share=0.0)
    tails["customer_index"] = moved[tails["customer_index"].to_numpy()]
    redrawn = campaigns.dropout != people["dropout"]
    kept = orders[~redrawn[owner] | (t < contact_day[owner])]
    contacts = potential_churn(campaigns.contacts, orders, tails, moved, design.horizon_days)
    people = {
        **people, "dropout": campaigns.dropout, "untreated_dropout": people["dropout"],
        **{f"effect_{a}": effects[a] for a in ACTIONS},
    }
    landed_tails = tails[redrawn[tails["customer_index"].to_numpy()]]
    return people, pd.concat([kept, landed_tails], ignore_index=True), contacts

def _with_campaign_truth(truth: pd.DataFrame, people, contacts: pd.DataFrame, start) -> pd.DataFrame:
    """The truth with each customer's dropout had no campaign reached them, their true effect of
    each action, and their contact (snapshot, action, control) if any."""
    index = contacts["customer_index"].to_numpy()
    snapshot = pd.Series(pd.NaT, index=truth.index, dtype="datetime64[s]")
    snapshot.iloc[index] = timestamps(start, contacts["snapshot_day"].to_numpy()).to_numpy()
    action = pd.Series(None, index=truth.index, dtype=object)
    action.iloc[index] = contacts["action"].to_numpy()
    potential = {}
    for name in ("is_control", "churn_if_treated", "churn_if_control"):
        potential[name] = pd.Series(pd.NA, index=truth.index, dtype="boolean")
        potential[name].iloc[index] = contacts[name].to_numpy()
    return truth.assign(
        untreated_dropout_ts=timestamps(start, people["untreated_dropout"]),
        **{f"effect_{a}": people[f"effect_{a}"] for a in ACTIONS},
        campaign_snapshot=snapshot, contact_action=action, contact_is_control=potential["is_control"],
        contact_churn_if_treated=potential["churn_if_treated"], contact_churn_if_control=potential["churn_if_control"],
    )

def contacts_table(contacts: pd.DataFrame, start: pd.Timestamp, first_id: int) -> pd.DataFrame:
    """The landed contact columns: the campaign id is its snapshot date, as plans name it."""
    snapshot = timestamps(start, contacts["snapshot_day"].to_numpy())
    frame = pd.DataFrame({
        "campaign_id": snapshot.dt.strftime("%Y-%m-%d"),
        "customer_id": customer_ids(contacts["customer_index"].to_numpy(), first_id),
        "action": contacts["action"].to_numpy(),
        "contacted_at": timestamps(start, contacts["contacted_day"].to_numpy()),
        "is_control": contacts["is_control"].to_numpy(),
    })
    return frame.sort_values(["campaign_id", "customer_id"], ignore_index=True)
