"""The closed loop on generated data, month by month: the plan of a snapshot is executed as
contacts, the customers respond with their true effects, and the month after the snapshot is
drawn from the latent truth and landed.

The world is the truth file itself: each customer's signup, dropout, purchase rate, spend level,
segment and true effects. Purchases are a Poisson process, so drawing one month at a time from the
current dropout is the same process the generator draws at once. A simulated contact is kept with
its two potential outcomes as expected probabilities (``expected_churn``), from which the true
uplift of a campaign follows without a second draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from churn_assets.core.sample.campaign_history import ACTIONS, CampaignDesign, respond, true_effects
from churn_assets.core.sample.draws import (
    CATEGORIES,
    CHANNEL_SHARE,
    CHANNELS,
    COUNTRIES,
    SEGMENTS,
    draw_customers,
    draw_orders,
    draw_refunds,
    draw_sessions,
    number_orders,
    season,
    slowdown,
    timestamps,
    transactions_table,
)

CONTACT_DAYS = 3.0
SIMULATED_CONTACTS_FILE = "simulated_contacts.parquet"
_DAY = pd.Timedelta(days=1)


@dataclass
class SimulatedMonth:
    """What one month of the loop landed: the executed contacts with their true potential
    outcomes, and the month's transactions, new customers and web sessions."""

    contacts: pd.DataFrame
    transactions: pd.DataFrame
    customers: pd.DataFrame
    web_sessions: pd.DataFrame


def _days(values: pd.Series, origin: pd.Timestamp) -> np.ndarray:
    return ((values - origin) / _DAY).to_numpy(float)


def latent_people(truth: pd.DataFrame, origin: pd.Timestamp, seed: int) -> dict[str, np.ndarray]:
    """The generator's arrays for every customer of the truth, in days from ``origin``. The
    favourite category and channel are not in the truth: they are drawn from the seed, the same
    for a customer every month."""
    favourites = np.random.default_rng([seed, 3])
    n = len(truth)
    return {
        "signup": _days(truth["signup_ts"], origin),
        "dropout": _days(truth["dropout_ts"], origin),
        "rate": truth["purchase_rate_per_year"].to_numpy(float) / 365.25,
        "spend": truth["mean_order_value"].to_numpy(float),
        "category": favourites.integers(0, len(CATEGORIES), n),
        "channel": favourites.choice(len(CHANNELS), size=n, p=CHANNEL_SHARE),
    }


def expected_churn(people: dict[str, np.ndarray], rows: np.ndarray, dropout: np.ndarray, origin: pd.Timestamp,
                   begin: np.ndarray, horizon_days: int) -> np.ndarray:
    """P(no order in [begin, begin + horizon)) for customers ``rows`` with ``dropout`` (days from
    ``origin``): exp(-integral of the order intensity), the intensity being what the generator
    draws orders at (rate x season x slowdown before dropout), integrated day by day."""
    t = begin[:, None] + np.arange(horizon_days)[None, :] + 0.5
    alive = t < dropout[:, None]
    intensity = people["rate"][rows][:, None] * season(origin, t) * slowdown(dropout[:, None], t)
    return np.exp(-(intensity * alive).sum(axis=1))


def execute_plan(truth: pd.DataFrame, plan: pd.DataFrame, snapshot: date, seed: int, horizon_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The truth after the plan's treated customers respond (``respond``: a would-be churner saved,
    a stayer put off, each with its true effect), and the contacts with both potential outcomes.

    ``plan``: gold.retention_actions rows of ``snapshot`` (customer_id, action, is_control); rows of
    customers the truth does not hold, or of an action it has no effect for, are left out."""
    origin = pd.Timestamp(snapshot)
    rng = np.random.default_rng([seed, 5, origin.year, origin.month])
    index = pd.Series(np.arange(len(truth)), index=truth["customer_id"].astype(str))
    plan = plan[plan["customer_id"].astype(str).isin(index.index) & plan["action"].isin(ACTIONS)].reset_index(drop=True)
    rows = index.loc[plan["customer_id"].astype(str)].to_numpy()
    contacted = rng.uniform(0, CONTACT_DAYS, len(plan))
    people = latent_people(truth, origin, seed)
    untreated = people["dropout"][rows]
    effects = truth[[f"effect_{a}" for a in ACTIONS]].to_numpy(float)  # customer x action
    effect = effects[rows, plan["action"].map(ACTIONS.index).to_numpy(int)]
    if_treated = respond(rng, untreated, contacted, effect, CampaignDesign(horizon_days=horizon_days))
    control = plan["is_control"].to_numpy(bool)
    zero = np.zeros(len(plan))
    contacts = pd.DataFrame({
        "campaign_id": origin.strftime("%Y-%m-%d"),
        "customer_id": plan["customer_id"].astype(str),
        "action": plan["action"].to_numpy(),
        "contacted_at": origin + pd.to_timedelta(np.floor(contacted * 86400), unit="s"),
        "is_control": control,
        "churn_if_treated": expected_churn(people, rows, if_treated, origin, zero, horizon_days),
        "churn_if_control": expected_churn(people, rows, untreated, origin, zero, horizon_days),
    })
    dropout = truth["dropout_ts"].copy()
    moved = rows[~control]
    dropout.iloc[moved] = timestamps(origin, if_treated[~control]).to_numpy()
    return truth.assign(dropout_ts=dropout), contacts


def simulate_month(
    truth: pd.DataFrame, plan: pd.DataFrame, snapshot: date, seed: int, horizon_days: int, new_customers: int
) -> tuple[pd.DataFrame, SimulatedMonth]:
    """One turn of the loop: the plan of ``snapshot`` executed (``execute_plan``), then the month
    from ``snapshot`` drawn from the truth that leaves (``draw_month``)."""
    truth, contacts = execute_plan(truth, plan, snapshot, seed, horizon_days)
    truth, transactions, customers, sessions = draw_month(truth, snapshot, seed, new_customers)
    return truth, SimulatedMonth(contacts, transactions, customers, sessions)


def draw_month(truth: pd.DataFrame, snapshot: date, seed: int, new_customers: int):
    """The truth with ``new_customers`` more who sign up in the month from ``snapshot``, and the
    month's transactions (refunds inside the month), the new customers' rows and the web sessions."""
    origin = pd.Timestamp(snapshot)
    days = float((origin + pd.DateOffset(months=1) - origin) / _DAY)
    rng = np.random.default_rng([seed, 4, origin.year, origin.month])
    truth, newcomers = _with_newcomers(truth, rng, origin, days, new_customers)
    people = latent_people(truth, origin, seed)
    ids = truth["customer_id"].to_numpy()
    # sessions go on for two months after a dropout (as the generator draws them); orders stop at it
    known = np.flatnonzero((people["signup"] < 0) & (people["dropout"] > -60))
    joining = np.flatnonzero((people["signup"] >= 0) & (people["signup"] < days))
    orders = pd.concat([
        _draw(draw_orders, rng, people, known, origin, days, from_origin=True, first_order_share=0.0),
        _draw(draw_orders, rng, people, joining, origin, days, from_origin=False, first_order_share=0.9),
    ], ignore_index=True)
    orders = pd.concat([orders, draw_refunds(rng, orders, origin, days)], ignore_index=True)
    numbered = number_orders(orders, block=f"{origin:%Y%m}-")
    transactions = transactions_table(numbered, origin, 0).assign(customer_id=lambda f: ids[f["customer_id"].to_numpy()])
    sessions = pd.concat([
        _draw(draw_sessions, rng, people, known, origin, days, from_origin=True),
        _draw(draw_sessions, rng, people, joining, origin, days, from_origin=False),
    ], ignore_index=True)
    sessions = sessions.assign(customer_id=lambda f: ids[f["customer_id"].to_numpy()])
    return truth, transactions, newcomers, sessions.sort_values(["session_ts", "customer_id"], kind="stable", ignore_index=True)


def _draw(draw, rng, people, rows: np.ndarray, origin, days: float, from_origin: bool, **options) -> pd.DataFrame:
    """``draw`` (orders or sessions) for customers ``rows`` up to ``days``, from the origin (customers
    already there) or from their signup; customer indices come back as rows of the truth."""
    subset = {name: values[rows] for name, values in people.items()}
    if from_origin:
        subset["signup"] = np.zeros(len(rows))
    if draw is draw_sessions:
        frame = draw(rng, subset, origin, days, 0)
        return frame.assign(customer_id=rows[frame["customer_id"].to_numpy()])
    frame = draw(rng, subset, origin, days, **options)
    return frame.assign(customer_index=rows[frame["customer_index"].to_numpy()])


def _with_newcomers(truth: pd.DataFrame, rng, origin: pd.Timestamp, days: float, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The truth with ``n`` customers signing up within the month, and their customers-file rows."""
    people = draw_customers(rng, n, int(days))
    lifetime = people["dropout"] - people["signup"]
    people["signup"] = rng.uniform(0, days, n)
    people["dropout"] = people["signup"] + lifetime
    effects = true_effects(rng, people["segment"], people["opt_in"])
    first = int(truth["customer_id"].max()) + 1
    ids = np.arange(first, first + n)
    signup_ts, dropout_ts = timestamps(origin, people["signup"]), timestamps(origin, people["dropout"])
    rows = pd.DataFrame({
        "customer_id": ids, "signup_ts": signup_ts, "dropout_ts": dropout_ts,
        "purchase_rate_per_year": people["rate"] * 365.25, "mean_order_value": people["spend"],
        "segment": np.asarray(SEGMENTS)[people["segment"]], "untreated_dropout_ts": dropout_ts,
        **{f"effect_{a}": effects[a] for a in ACTIONS},
    })
    customers = pd.DataFrame({
        "customer_id": ids, "signup_ts": signup_ts, "segment": rows["segment"],
        "country": np.asarray(COUNTRIES)[people["country"]],
        "loyalty_points": people["loyalty"], "marketing_opt_in": people["opt_in"],
    })
    return pd.concat([truth, rows], ignore_index=True), customers
