"""Past randomised retention campaigns in generated data, and how customers respond to them.

Each month from the first campaign, a share of the active customers (an order in the 180 days
before the snapshot, never contacted before) is contacted with a random action; within each
action a seeded share is held out as a control and not contacted. A treated customer responds
with their own true effect, a relative change in churn: a would-be churner (already lapsed, or
dropping out within the churn horizon after the contact) stays, or comes back, with probability
equal to a positive effect; a stayer leaves within two weeks with probability equal to a negative
one ("sleeping dogs"). The true effects are deliberately unlike
the default catalogue's assumptions and go into the latent truth, never into the landed files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ACTIONS = ("discount_voucher", "win_back_email", "loyalty_reward")
# Mean true effect per action and customer segment (consumer, small_business, vip); each
# customer's is this times their own responsiveness. Negative: the contact drives them away.
TRUE_EFFECTS = {
    "discount_voucher": (0.25, 0.10, -0.15),
    "win_back_email": (0.20, 0.30, 0.0),
    "loyalty_reward": (0.05, 0.0, 0.60),
}
_ACTIVE_DAYS = 180.0
_CONTACT_DAYS = 3.0  # contacts go out over the first days after the snapshot
_HARM_DAYS = 14.0  # a customer put off by a contact leaves within two weeks


@dataclass(frozen=True)
class CampaignDesign:
    """When and how campaigns run: monthly from month ``first_month`` of the data, contacting
    ``contact_share`` of the active customers and holding out ``control_share`` of each action."""

    first_month: int = 10
    contact_share: float = 0.15
    control_share: float = 0.1
    horizon_days: int = 90
    mean_lifetime_days: float = 420.0


@dataclass
class Campaigns:
    """One row per contact (``customer_index``, ``snapshot_day``, ``contacted_day``, ``action``,
    ``is_control``); each customer's dropout day after responding (``dropout``), and had every
    contacted customer, controls too, been treated (``if_treated``: the controls' potential outcome)."""

    contacts: pd.DataFrame
    dropout: np.ndarray
    if_treated: np.ndarray


def true_effects(rng: np.random.Generator, segment: np.ndarray, opt_in: np.ndarray) -> dict[str, np.ndarray]:
    """Each customer's true effect of each action: the segment's mean times a lognormal
    responsiveness (mean 1); an email reaches only customers who opted in."""
    responsiveness = rng.lognormal(-0.125, 0.5, size=(len(ACTIONS), segment.size))
    effects = {}
    for row, action in enumerate(ACTIONS):
        effect = np.asarray(TRUE_EFFECTS[action])[segment] * responsiveness[row]
        if action == "win_back_email":
            effect = np.where(opt_in, effect, 0.0)
        effects[action] = np.clip(effect, -1.0, 1.0)
    return effects


def snapshot_days(start: pd.Timestamp, months: int, first_month: int) -> list[tuple[pd.Timestamp, float]]:
    """The campaigns' snapshots from ``first_month`` on, each with its day offset from ``start``."""
    snapshots = [start + pd.DateOffset(months=m) for m in range(first_month, months)]
    return [(s, float((s - start).days)) for s in snapshots]


def run_campaigns(
    rng: np.random.Generator,
    order_owner: np.ndarray,
    order_day: np.ndarray,
    dropout: np.ndarray,
    opt_in: np.ndarray,
    effects: dict[str, np.ndarray],
    days: list[float],
    design: CampaignDesign,
) -> Campaigns:
    """Contacts of every campaign (at snapshot ``days``) and the dropout days they lead to.

    Eligibility reads the orders as drawn before any contact: a customer is contacted at most
    once, so the orders of a customer not yet contacted are still those.
    """
    contacted = np.zeros(dropout.size, dtype=bool)
    untreated, if_treated = dropout, dropout.copy()
    effect_of = np.stack([effects[a] for a in ACTIONS])  # action x customer
    frames = []
    for day in days:
        recent = order_owner[(order_day < day) & (order_day >= day - _ACTIVE_DAYS)]
        active = np.flatnonzero(np.bincount(recent, minlength=dropout.size) > 0)
        pool = active[~contacted[active]]
        chosen = pool[rng.random(pool.size) < design.contact_share]
        contacted[chosen] = True
        action = _random_actions(rng, opt_in[chosen])
        control = _stratified_controls(rng, action, design.control_share)
        contacted_day = day + rng.uniform(0, _CONTACT_DAYS, chosen.size)
        if_treated[chosen] = respond(rng, untreated[chosen], contacted_day, effect_of[action, chosen], design)
        frames.append(pd.DataFrame({
            "customer_index": chosen, "snapshot_day": day, "contacted_day": contacted_day,
            "action": np.asarray(ACTIONS)[action], "is_control": control,
        }))
    columns = {"customer_index": "int64", "snapshot_day": float, "contacted_day": float, "action": object, "is_control": bool}
    contacts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    treated = contacts["customer_index"].to_numpy()[~contacts["is_control"].to_numpy(bool)]
    dropout = untreated.copy()
    dropout[treated] = if_treated[treated]
    return Campaigns(contacts, dropout, if_treated)


def potential_churn(
    contacts: pd.DataFrame, orders: pd.DataFrame, tails: pd.DataFrame, moved: np.ndarray, horizon_days: int
) -> pd.DataFrame:
    """``contacts`` with ``churn_if_treated`` and ``churn_if_control``: whether the customer
    would have placed no order in the churn horizon from the snapshot, treated or not.

    ``orders`` (customer_index, t) are the orders drawn with no contact; ``tails`` those a
    treatment would bring from the contact on for the customers it ``moved`` (index array),
    whose orders from the contact on they replace (a customer it drives away may have none)."""
    def ordered(rows: pd.DataFrame) -> pd.Series:
        joined = rows.merge(contacts[["customer_index", "snapshot_day"]], on="customer_index")
        inside = (joined["t"] >= joined["snapshot_day"]) & (joined["t"] < joined["snapshot_day"] + horizon_days)
        return contacts["customer_index"].isin(joined.loc[inside, "customer_index"])

    contacted = contacts[["customer_index", "contacted_day"]]
    moved = contacts["customer_index"].isin(moved)
    before = orders.merge(contacted, on="customer_index")
    before = before[before["t"] < before["contacted_day"]][["customer_index", "t"]]
    untreated = ordered(orders[["customer_index", "t"]])
    treated = ordered(pd.concat([before, tails[["customer_index", "t"]]], ignore_index=True))
    return contacts.assign(churn_if_control=~untreated, churn_if_treated=~np.where(moved, treated, untreated))


def _random_actions(rng: np.random.Generator, opt_in: np.ndarray) -> np.ndarray:
    """A uniformly random action per customer; the email only for those who opted in."""
    email = ACTIONS.index("win_back_email")
    others = [i for i in range(len(ACTIONS)) if i != email]
    action = rng.integers(0, len(ACTIONS), opt_in.size)
    return np.where((action == email) & ~opt_in, rng.choice(others, opt_in.size), action)


def _stratified_controls(rng: np.random.Generator, action: np.ndarray, share: float) -> np.ndarray:
    """Exactly round(share x n) controls among the n customers of each action, at random."""
    control = np.zeros(action.size, dtype=bool)
    for a in np.unique(action):
        members = rng.permutation(np.flatnonzero(action == a))
        control[members[: int(round(share * members.size))]] = True
    return control


def respond(rng, dropout, contacted, effect, design: CampaignDesign) -> np.ndarray:
    """Dropout days after a treated contact (see the module docstring)."""
    draw = rng.random(effect.size)
    would_churn = dropout < contacted + design.horizon_days
    saved = would_churn & (draw < effect)
    put_off = (dropout >= contacted + design.horizon_days) & (draw < -effect)
    new = dropout.copy()
    # a fresh lifetime from the contact, never shorter than the one it replaces
    new[saved] = np.maximum(dropout[saved], contacted[saved] + rng.exponential(design.mean_lifetime_days, saved.sum()))
    new[put_off] = contacted[put_off] + rng.uniform(0, _HARM_DAYS, put_off.sum())
    return new
