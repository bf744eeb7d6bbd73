"""The latent draws of the generated sample: when customers join and leave, how often and how
much they buy, their refunds and web sessions, and the tables the draws become."""

from __future__ import annotations

import numpy as np
import pandas as pd

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

FIRST_CUSTOMER_ID = 100_001

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

def month_text(values: pd.Series) -> np.ndarray:
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

def customer_tables(people, start, first_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
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
            "landing_month": month_text(order_ts),
        }
    )
