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
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from churn_assets.core.campaign_history import (
    ACTIONS,
    CampaignDesign,
    potential_churn,
    run_campaigns,
    snapshot_days,
    true_effects,
)
from churn_assets.core.errors import ChurnError
from churn_assets.core.parquet import read_parquet

CATEGORIES = ("apparel", "beauty", "electronics", "grocery", "home", "sports")
CHANNELS = ("web", "app", "store")
CHANNEL_SHARE = (0.5, 0.35, 0.15)  # customers' usual channel
COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "US")
SEGMENTS = ("consumer", "small_business", "vip")
# Orders per month relative to the yearly mean: a summer dip and a Nov/Dec peak.
SEASONALITY = np.array([0.9, 0.85, 0.95, 0.95, 1.0, 0.95, 0.9, 0.92, 1.0, 1.05, 1.3, 1.45])
_SEGMENT_SHARE = np.array([0.72, 0.18, 0.10])
_SEGMENT_RATE = np.array([1.0, 1.4, 2.0])  # purchase-rate multiplier
_SEGMENT_SPEND = np.array([45.0, 120.0, 85.0])  # mean order value
_SEGMENT_LIFETIME = np.array([1.0, 1.3, 1.8])  # lifetime multiplier
_MEAN_RATE_PER_DAY = 1.1 / 30.4
_MEAN_LIFETIME_DAYS = 420.0
_SLOWDOWN_DAYS = 45.0  # purchases and sessions thin out over the weeks before dropout
_REFUND_SHARE = 0.03
_SESSIONS_PER_ORDER = 1.0
TRANSACTION_COLUMNS = (
    "order_id", "customer_id", "order_ts", "amount", "quantity", "product_category", "channel"
)
# One row per invoice line, as order-line exports (the UCI Online Retail layout) have them.
ORDER_LINE_COLUMNS = (
    "order_id", "customer_id", "order_ts", "quantity", "unit_price", "product_category", "channel"
)
SOURCE_NAMES = ("transactions", "customers", "web_sessions", "campaign_contacts")
CONTACT_COLUMNS = ("campaign_id", "customer_id", "action", "contacted_at", "is_control")
FIRST_CUSTOMER_ID = 100_001
TRUTH_FILE = "customers_truth.parquet"
LAYOUTS = ("orders", "order_lines")
DEFECTS = (
    "duplicate_order",
    "conflicting_duplicate",
    "missing_customer_id",
    "bad_date",
    "bad_amount",
    "future_date",
)


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
    customers, truth = _customer_tables(people, start, first_id)
    if contacts is not None:
        truth = _with_campaign_truth(truth, people, contacts, start)
        contacts = contacts_table(contacts, start, first_id)
    bad_header = None
    if config.dirty_share > 0:
        transactions = inject_defects(transactions, rng, config.dirty_share)
        bad_header = _bad_header_file(transactions)
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


def draw_customers(
    rng: np.random.Generator, n: int, horizon_days: int, cohort_weeks: int | None = None
) -> dict[str, np.ndarray]:
    segment = rng.choice(len(SEGMENTS), size=n, p=_SEGMENT_SHARE)
    # A launch cohort in the first month, then steady acquisition; or one cohort only.
    launch = rng.random(n) < 0.2
    signup = np.where(
        launch, rng.uniform(0, 30, n), rng.uniform(0, max(horizon_days - 30, 31), n)
    )
    if cohort_weeks is not None:
        signup = rng.uniform(0, cohort_weeks * 7 - 1, n)  # the first order follows within half a day
    opt_in = rng.random(n) < 0.6
    loyalty = rng.poisson(np.where(segment == 2, 400, 60)) * (rng.random(n) < 0.7)
    rate = rng.gamma(1.3, _MEAN_RATE_PER_DAY / 1.3, n) * _SEGMENT_RATE[segment]
    spend = rng.gamma(3.0, _SEGMENT_SPEND[segment] / 3.0)
    lifetime_scale = (
        _MEAN_LIFETIME_DAYS * _SEGMENT_LIFETIME[segment] * np.where(opt_in, 1.2, 0.85)
    )
    lifetime = rng.exponential(rng.gamma(2.0, lifetime_scale / 2.0))
    return {
        "segment": segment,
        "signup": signup,
        "dropout": signup + lifetime,
        "rate": rate,
        "spend": spend,
        "opt_in": opt_in,
        "loyalty": loyalty.astype(np.int64),
        "country": rng.choice(len(COUNTRIES), size=n, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1]),
        "category": rng.integers(0, len(CATEGORIES), n),
        "channel": rng.choice(len(CHANNELS), size=n, p=CHANNEL_SHARE),
    }


def _poisson_times(
    rng: np.random.Generator,
    rate: np.ndarray,
    begin: np.ndarray,
    end: np.ndarray,
    intensity,
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of inhomogeneous Poisson processes by thinning: (owner index, time in days).

    ``intensity(owner, t)`` returns a factor in [0, 1] relative to ``rate``; vectorised over all
    customers at once, so a million events cost a few numpy calls rather than a Python loop.
    """
    length = np.clip(end - begin, 0, None)
    counts = rng.poisson(rate * length)
    owner = np.repeat(np.arange(len(rate)), counts)
    t = begin[owner] + rng.random(owner.size) * length[owner]
    keep = rng.random(owner.size) < intensity(owner, t)
    order = np.lexsort((t[keep], owner[keep]))
    return owner[keep][order], t[keep][order]


def season(start: pd.Timestamp, t: np.ndarray) -> np.ndarray:
    month_index = (start.month - 1 + (t / 30.4375).astype(np.int64)) % 12
    return SEASONALITY[month_index]


def slowdown(dropout: np.ndarray, t: np.ndarray) -> np.ndarray:
    """1 far from dropout, falling linearly to 0.3 at dropout."""
    return 0.3 + 0.7 * np.clip((dropout - t) / _SLOWDOWN_DAYS, 0.0, 1.0)


def draw_orders(
    rng, people, start, horizon_days, zero_amount_share: float = 0.0, first_order_share: float = 0.9
) -> pd.DataFrame:
    peak = SEASONALITY.max()
    begin = people["signup"]
    end = np.minimum(people["dropout"], horizon_days)

    def intensity(owner, t):
        return season(start, t) / peak * slowdown(people["dropout"][owner], t)

    owner, t = _poisson_times(rng, people["rate"] * peak, begin, end, intensity)
    # Almost everyone buys when they sign up: that first order starts the relationship.
    first = np.flatnonzero((rng.random(len(begin)) < first_order_share) & (begin < end))
    owner = np.concatenate([first, owner])
    t = np.concatenate([begin[first] + rng.uniform(0, np.minimum(0.5, end - begin)[first]), t])
    n = owner.size
    favourite = rng.random(n) < 0.6
    category = np.where(favourite, people["category"][owner], rng.integers(0, len(CATEGORIES), n))
    usual = rng.random(n) < 0.75
    channel = np.where(usual, people["channel"][owner], rng.integers(0, len(CHANNELS), n))
    quantity = 1 + rng.poisson(0.6, n)
    amount = np.maximum(np.round(rng.gamma(6.0, people["spend"][owner] / 6.0), 2) + 0.0, 1.0)
    # Free orders (a sample, a fully discounted basket); no draw at all at a share of 0, so the
    # default data stays what it was.
    if zero_amount_share:
        amount = np.where(rng.random(n) < zero_amount_share, 0.0, amount)
    return pd.DataFrame(
        {
            "customer_index": owner,
            "t": t,
            "amount": amount,
            "quantity": quantity,
            "product_category": np.asarray(CATEGORIES)[category],
            "channel": np.asarray(CHANNELS)[channel],
            "is_refund": False,
        }
    )


def draw_refunds(rng, orders: pd.DataFrame, start, horizon_days) -> pd.DataFrame:
    refunded = orders[(rng.random(len(orders)) < _REFUND_SHARE) & (orders["amount"] > 0)].copy()
    refunded["t"] = refunded["t"] + rng.uniform(1, 30, len(refunded))
    full = rng.random(len(refunded)) < 0.7
    refunded["amount"] = -np.where(full, refunded["amount"], np.round(refunded["amount"] / 2, 2))
    refunded["is_refund"] = True
    return refunded[refunded["t"] < horizon_days]


def number_orders(rows: pd.DataFrame, first_customer_id: int = FIRST_CUSTOMER_ID, block: str | None = None) -> pd.DataFrame:
    """Order ids O000000001, ... (refunds R...); a sample whose customer ids start elsewhere puts
    that first id in its order ids too, so samples generated into one home never share an id.
    ``block`` names the ids' block outright (a simulated month's, say)."""
    rows = rows.sort_values(["t", "customer_index"], kind="stable").reset_index(drop=True)
    if block is None:
        block = "" if first_customer_id == FIRST_CUSTOMER_ID else f"{first_customer_id}-"
    prefix = np.char.add(np.where(rows["is_refund"], "R", "O"), block)
    number = np.char.zfill(np.arange(1, len(rows) + 1).astype(str), 9)
    rows["order_id"] = np.char.add(prefix.astype(str), number)
    return rows


def timestamps(start: pd.Timestamp, t: np.ndarray) -> pd.Series:
    seconds = np.floor(np.asarray(t) * 86400).astype(np.int64).astype("timedelta64[s]")
    return pd.Series(np.datetime64(start.to_datetime64(), "s") + seconds)


def timestamp_text(values: pd.Series) -> pd.Series:
    """ISO text 'YYYY-MM-DD HH:MM:SS'; numpy's formatter is several times faster than strftime."""
    text = np.datetime_as_string(values.to_numpy().astype("datetime64[s]"), unit="s")
    return pd.Series(text, index=values.index).str.replace("T", " ", regex=False)


def _month(values: pd.Series) -> np.ndarray:
    return values.to_numpy().astype("datetime64[M]")


def customer_ids(index: np.ndarray, first_id: int) -> np.ndarray:
    return first_id + np.asarray(index, dtype=np.int64)


def draw_sessions(rng, people, start, horizon_days, first_id: int) -> pd.DataFrame:
    begin = people["signup"]
    end = np.minimum(people["dropout"] + 60.0, horizon_days)

    def intensity(owner, t):
        return 0.05 + 0.95 * (slowdown(people["dropout"][owner], t) - 0.3) / 0.7

    owner, t = _poisson_times(
        rng, people["rate"] * _SESSIONS_PER_ORDER * 1.6, begin, end, intensity
    )
    frame = pd.DataFrame(
        {"customer_id": customer_ids(owner, first_id), "session_ts": timestamps(start, t)}
    )
    return frame.sort_values(["session_ts", "customer_id"], kind="stable", ignore_index=True)


def _customer_tables(people, start, first_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(people["signup"])
    ids = customer_ids(np.arange(n), first_id)
    signup_ts = timestamps(start, people["signup"])
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_ts": signup_ts,
            "segment": np.asarray(SEGMENTS)[people["segment"]],
            "country": np.asarray(COUNTRIES)[people["country"]],
            "loyalty_points": people["loyalty"],
            "marketing_opt_in": people["opt_in"],
        }
    ).sort_values(["signup_ts", "customer_id"], kind="stable", ignore_index=True)
    truth = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_ts": signup_ts,
            "dropout_ts": timestamps(start, people["dropout"]),
            "purchase_rate_per_year": people["rate"] * 365.25,
            "mean_order_value": people["spend"],
            "segment": np.asarray(SEGMENTS)[people["segment"]],
        }
    )
    return customers, truth


def transactions_table(rows: pd.DataFrame, start: pd.Timestamp, first_id: int = 100_001) -> pd.DataFrame:
    """The landed transaction columns from generated order rows, plus ``landing_month``."""
    order_ts = timestamps(start, rows["t"].to_numpy())
    return pd.DataFrame(
        {
            "order_id": rows["order_id"],
            "customer_id": customer_ids(rows["customer_index"].to_numpy(), first_id),
            "order_ts": order_ts,
            "amount": rows["amount"],
            "quantity": rows["quantity"],
            "product_category": rows["product_category"],
            "channel": rows["channel"],
            "landing_month": _month(order_ts),
        }
    )


def order_lines(orders: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Each order as one to a few invoice lines (quantity x unit price, summing to the order's
    amount up to cents); a refund becomes a cancellation invoice ('C' + number) with negative
    quantities, as order-line exports write them."""
    n = len(orders)
    owner = np.repeat(np.arange(n), 1 + rng.poisson(1.2, n))
    weight = rng.gamma(2.0, 1.0, owner.size)
    amount = orders["amount"].to_numpy(float)
    part = np.abs(amount[owner]) * weight / np.bincount(owner, weights=weight)[owner]
    quantity = 1 + rng.poisson(0.8, owner.size)
    refund = amount[owner] < 0
    order_id = orders["order_id"].to_numpy(dtype=object)[owner]
    return pd.DataFrame({
        "order_id": np.where(refund, np.char.add("C", order_id.astype(str)), order_id),
        "customer_id": orders["customer_id"].to_numpy()[owner],
        "order_ts": orders["order_ts"].to_numpy()[owner],
        "quantity": np.where(refund, -quantity, quantity),
        "unit_price": np.round(part / quantity, 2),
        "product_category": orders["product_category"].to_numpy()[owner],
        "channel": orders["channel"].to_numpy()[owner],
        "landing_month": orders["landing_month"].to_numpy()[owner],
    })


def inject_defects(transactions: pd.DataFrame, rng: np.random.Generator, share: float) -> pd.DataFrame:
    """Text-valued copy of ``transactions`` with about ``share`` of rows defective.

    Defects cycle through ``DEFECTS``; the column ``defect`` names each one (None when clean) so
    tests and reports can check that every defect is caught downstream. Duplicates are added as
    extra rows right after their original, in the same landing file.
    """
    text = transactions.assign(
        customer_id=transactions["customer_id"].astype(str),
        order_ts=timestamp_text(transactions["order_ts"]),
        amount=transactions["amount"].map("{:.2f}".format),
        quantity=transactions["quantity"].astype(str),
        defect=None,
    ).astype({c: object for c in TRANSACTION_COLUMNS})
    chosen = np.sort(rng.choice(len(text), size=int(round(share * len(text))), replace=False))
    kinds = np.asarray(DEFECTS)[np.arange(chosen.size) % len(DEFECTS)]
    broken_values = {
        "missing_customer_id": ("customer_id", None),
        "bad_date": ("order_ts", "31/02/2024 25:61"),
        "bad_amount": ("amount", "12,5O EUR"),
        "future_date": ("order_ts", "2099-01-01 00:00:00"),
    }
    for kind, (column, value) in broken_values.items():
        rows = text.index[chosen[kinds == kind]]
        text.loc[rows, column] = value
        text.loc[rows, "defect"] = kind
    exact = text.loc[chosen[kinds == "duplicate_order"]].assign(defect="duplicate_order")
    conflicting = text.loc[chosen[kinds == "conflicting_duplicate"]].assign(
        defect="conflicting_duplicate",
        amount=lambda d: (d["amount"].astype(float) + 10).map("{:.2f}".format),
    )
    merged = pd.concat([text, exact, conflicting])
    return merged.sort_index(kind="stable").reset_index(drop=True)


def _bad_header_file(transactions: pd.DataFrame) -> pd.DataFrame:
    """A small export whose header does not match: it must be refused, naming the columns."""
    sample = transactions.head(20)
    return pd.DataFrame(
        {
            "OrderNo": sample["order_id"],
            "Client": sample["customer_id"],
            "When": sample["order_ts"],
            "Total": sample["amount"],
        }
    )


def write_landing(sample: SampleData, landing_dir: Path, file_format: str = "csv") -> list[Path]:
    """Write landing-ready monthly chunks under ``landing_dir/<source>/``; returns the paths."""
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"file format must be 'csv' or 'parquet', got {file_format!r}")
    lines = "unit_price" in sample.transactions.columns
    chunks = {
        "transactions": (
            sample.transactions, sample.transactions["landing_month"], ORDER_LINE_COLUMNS if lines else TRANSACTION_COLUMNS
        ),
    }
    if sample.customers is not None:
        chunks["customers"] = (sample.customers, _month(sample.customers["signup_ts"]), None)
    if sample.web_sessions is not None:
        chunks["web_sessions"] = (sample.web_sessions, _month(sample.web_sessions["session_ts"]), None)
    if sample.campaign_contacts is not None:
        contacts = sample.campaign_contacts
        chunks["campaign_contacts"] = (contacts, _month(pd.to_datetime(contacts["campaign_id"])), CONTACT_COLUMNS)
    written = []
    # A later sample in the same home names its files after its first customer id, so it never
    # overwrites an earlier sample's file of the same month.
    block = "" if sample.first_customer_id == FIRST_CUSTOMER_ID else f"_{sample.first_customer_id}"
    for source, (frame, month, columns) in chunks.items():
        folder = landing_dir / source
        folder.mkdir(parents=True, exist_ok=True)
        for key, part in frame.groupby(month, sort=True):
            path = folder / f"{source}_{pd.Timestamp(key):%Y-%m}{block}.{file_format}"
            _write(part[list(columns)] if columns else part, path, file_format)
            written.append(path)
    if sample.bad_header_file is not None:
        path = landing_dir / "transactions" / f"transactions_legacy_export{block}.{file_format}"
        _write(sample.bad_header_file, path, file_format)
        written.append(path)
    return written


class TruthConflict(ChurnError):
    """Generated customer ids that the home's truth already holds for other latent customers."""


def next_customer_id(truth_dir: Path) -> int:
    """The first customer id after every customer in the truth of ``truth_dir`` (the default
    first id when there is none), so a further sample in the same home never reuses an id."""
    path = truth_dir / TRUTH_FILE
    if not path.exists():
        return FIRST_CUSTOMER_ID
    ids = read_parquet(path, columns=["customer_id"])["customer_id"]
    return max(FIRST_CUSTOMER_ID, int(ids.max()) + 1) if len(ids) else FIRST_CUSTOMER_ID


def merged_truth(truth_dir: Path, sample: SampleData) -> pd.DataFrame:
    """The home's truth with ``sample``'s customers added. Customers already there must be the
    same latent customers (the same sample generated again); raises ``TruthConflict`` otherwise."""
    path = truth_dir / TRUTH_FILE
    if not path.exists():
        return sample.truth
    existing = read_parquet(path)
    overlap = sample.truth.merge(existing, on="customer_id", suffixes=("", "_existing"))
    differs = np.zeros(len(overlap), dtype=bool)
    for column in sample.truth.columns.intersection(existing.columns).drop("customer_id"):
        new, old = overlap[column], overlap[f"{column}_existing"]
        differs |= ~((new == old).fillna(False) | (new.isna() & old.isna())).to_numpy(dtype=bool)
    if differs.any():
        ids = overlap.loc[differs, "customer_id"]
        raise TruthConflict(
            f"{differs.sum():,} generated customer ids ({ids.min()} .. {ids.max()}) are already in {path} "
            f"for other latent customers; generate with --id-offset {next_customer_id(truth_dir)} to add "
            "them after the existing ones, or --replace-truth to start the truth anew"
        )
    added = sample.truth[~sample.truth["customer_id"].isin(existing["customer_id"])]
    return pd.concat([existing, added], ignore_index=True) if len(added) else existing


def write_truth(sample: SampleData, truth_dir: Path, replace: bool = False) -> Path:
    """The latent truth, kept outside landing so the pipeline can never ingest it: merged into
    the truth already in ``truth_dir`` (see ``merged_truth``) unless ``replace``."""
    truth_dir.mkdir(parents=True, exist_ok=True)
    path = truth_dir / TRUTH_FILE
    truth = sample.truth if replace else merged_truth(truth_dir, sample)
    partial = path.with_suffix(".parquet.partial")  # written whole, then renamed over the old one
    truth.to_parquet(partial, index=False)
    partial.replace(path)
    return path


def _write(frame: pd.DataFrame, path: Path, file_format: str) -> None:
    """Write under a hidden name, then rename: a running landing sensor never reads half a file."""
    partial = path.with_name(f".{path.name}.partial")
    if file_format == "parquet":
        frame.to_parquet(partial, index=False)
    else:
        # pyarrow's CSV writer is about seven times faster than DataFrame.to_csv at a million rows.
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pa_csv.write_csv(table, partial, pa_csv.WriteOptions(quoting_style="needed"))
    partial.replace(path)
