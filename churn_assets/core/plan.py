"""The retention plan: at most one action per customer, maximising expected net value under a budget.

Expected net value of action a for customer i = p_i x effect_a x value_i - cost_ai. Choosing at
most one action per customer under a budget is a multiple-choice knapsack. We solve its LP
relaxation exactly with the classic greedy over each customer's convex hull of (cost, net value)
options (Sinha and Zoltners), round it to a feasible plan, and report LP bound - plan value as the
optimality gap. An exact MILP (scipy's HiGHS) solves small instances; tests check both against
brute force. No option with non-positive net value is ever chosen.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NO_ACTION = "no_action"


@dataclass(frozen=True)
class Action:
    """One retention action: its cost, its effect on churn probability and who may receive it."""

    name: str
    fixed_cost: float
    order_value_share: float = 0.0  # cost share of the customer's average order value
    effect: float = 0.0  # relative reduction of churn probability
    effect_by_segment: dict[str, float] = field(default_factory=dict)
    requires_opt_in: bool = False

    def cost(self, avg_order_value: np.ndarray) -> np.ndarray:
        return self.fixed_cost + self.order_value_share * np.nan_to_num(avg_order_value, nan=0.0)

    def effects(self, segment: np.ndarray) -> np.ndarray:
        return np.array([self.effect_by_segment.get(s, self.effect) for s in segment], dtype=float)


DEFAULT_ACTIONS = (
    Action("discount_voucher", fixed_cost=1.0, order_value_share=0.15, effect=0.30),
    Action("win_back_email", fixed_cost=0.5, effect=0.08, requires_opt_in=True),
    Action("loyalty_reward", fixed_cost=6.0, effect=0.15, effect_by_segment={"vip": 0.25}),
)


def parse_actions(text: str) -> tuple[Action, ...]:
    """Actions from JSON: a list of objects with the ``Action`` fields; raises ValueError with why."""
    try:
        raw = json.loads(text)
        actions = tuple(Action(**item) for item in raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"not a JSON list of actions ({exc}); fields: {list(Action.__dataclass_fields__)}") from None
    names = [a.name for a in actions]
    if not actions or len(set(names)) != len(names) or NO_ACTION in names:
        raise ValueError(f"action names must be unique, non-empty and not {NO_ACTION!r}: {names}")
    for a in actions:
        effects = a.effect_by_segment
        if not isinstance(effects, dict) or not all(isinstance(v, (int, float)) for v in effects.values()):
            raise ValueError(f"action {a.name}: effect_by_segment must map segment names to numbers")
        if a.fixed_cost < 0 or a.order_value_share < 0 or not all(0 <= e <= 1 for e in (a.effect, *effects.values())):
            raise ValueError(f"action {a.name}: costs must be >= 0 and effects in [0, 1]")
    return actions


def actions_json(actions: tuple[Action, ...]) -> str:
    return json.dumps([a.__dict__ for a in actions])


@dataclass
class Options:
    """Cost, expected saved revenue and net value of every (customer, action); net is -inf where
    the customer is not eligible."""

    actions: tuple[Action, ...]
    cost: np.ndarray
    saved: np.ndarray
    net: np.ndarray


def action_options(customers: pd.DataFrame, actions: tuple[Action, ...]) -> Options:
    """``customers`` needs churn_probability, expected_value, avg_order_value, segment, marketing_opt_in."""
    p = customers["churn_probability"].to_numpy(float)
    value = customers["expected_value"].to_numpy(float)
    segment = customers["segment"].astype(object).where(customers["segment"].notna(), "unknown").to_numpy()
    opted_in = customers["marketing_opt_in"].astype("boolean").fillna(False).to_numpy(bool)
    aov = customers["avg_order_value"].to_numpy(float)
    cost = np.column_stack([a.cost(aov) for a in actions])
    saved = np.column_stack([p * a.effects(segment) * value for a in actions])
    net = saved - cost
    for j, a in enumerate(actions):
        if a.requires_opt_in:
            net[~opted_in, j] = -np.inf
    return Options(actions, cost, saved, net)


@dataclass
class PlanSolution:
    """Chosen action index per customer (-1 for none), totals, the LP bound and the spend curve."""

    choice: np.ndarray
    spend: float
    net_value: float
    lp_bound: float
    curve: pd.DataFrame  # cumulative cost and net value of the LP path, cheapest gains first

    @property
    def gap(self) -> float:
        return self.lp_bound - self.net_value


def _increments(cost: np.ndarray, net: np.ndarray) -> pd.DataFrame:
    """Per customer, the upper convex hull of its positive options from (0, 0): the steps the LP
    takes, each with its extra cost, extra value and efficiency (decreasing along a customer)."""
    rows = []
    for i in np.flatnonzero((net > 0).any(axis=1)):
        points = sorted(
            (cost[i, j], net[i, j], j) for j in range(cost.shape[1]) if net[i, j] > 0
        )
        hull = [(0.0, 0.0, -1)]
        for c, v, j in points:
            if v <= hull[-1][1]:
                continue  # costs more and is worth no more: never chosen
            while len(hull) >= 2 and _slope(hull[-2], hull[-1]) <= _slope(hull[-1], (c, v)):
                hull.pop()  # the middle point lies under the line: not on the hull
            hull.append((c, v, j))
        for step, (a, b) in enumerate(zip(hull, hull[1:])):
            rows.append((i, step, b[2], b[0] - a[0], b[1] - a[1], _slope(a, b)))
    return pd.DataFrame(rows, columns=["customer", "step", "action", "d_cost", "d_net", "efficiency"])


def _slope(a, b) -> float:
    return np.inf if b[0] == a[0] else (b[1] - a[1]) / (b[0] - a[0])


def solve_plan(options: Options, budget: float, excluded: np.ndarray | None = None) -> PlanSolution:
    """Greedy on the LP path of the multiple-choice knapsack; ties break by customer order."""
    net = options.net.copy()
    if excluded is not None:
        net[excluded] = -np.inf
    steps = _increments(options.cost, net).sort_values(
        ["efficiency", "customer", "step"], ascending=[False, True, True], kind="stable"
    )
    choice = np.full(len(net), -1)
    next_step = np.zeros(len(net), dtype=int)
    spend = value = 0.0
    bound = None
    for customer, step, action, d_cost, d_net in steps[["customer", "step", "action", "d_cost", "d_net"]].itertuples(index=False):
        if step != next_step[customer]:
            continue  # an earlier step of this customer was skipped; the later one cannot follow
        if spend + d_cost > budget + 1e-9:
            if bound is None:  # the LP takes the first step that does not fit fractionally
                bound = value + (budget - spend) / d_cost * d_net
            continue
        choice[customer], spend, value = action, spend + d_cost, value + d_net
        next_step[customer] += 1
    curve = pd.DataFrame({
        "spend": np.concatenate([[0.0], steps["d_cost"].cumsum().to_numpy()]),
        "expected_net_value": np.concatenate([[0.0], steps["d_net"].cumsum().to_numpy()]),
    })
    return PlanSolution(choice, float(spend), float(value), float(value if bound is None else bound), curve)


def solve_exact(options: Options, budget: float) -> tuple[np.ndarray, float]:
    """The optimum by mixed-integer programming (scipy/HiGHS): for small instances and tests."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, kron, eye

    n, k = options.net.shape
    usable = np.isfinite(options.net) & (options.net > 0)
    gain = np.where(usable, options.net, 0.0).ravel()
    one_each = kron(eye(n), np.ones((1, k)))
    constraints = [
        LinearConstraint(csr_matrix(one_each), 0, 1),
        LinearConstraint(np.where(usable, options.cost, 0.0).ravel()[None, :], 0, budget),
    ]
    result = milp(-gain, constraints=constraints, integrality=np.ones(n * k), bounds=Bounds(0, usable.ravel().astype(float)))
    x = np.round(result.x).reshape(n, k)
    choice = np.where(x.any(axis=1), x.argmax(axis=1), -1)
    return choice, float(-result.fun)


def control_group(customer_ids: pd.Series, segments: pd.Series, share: float, seed: int) -> np.ndarray:
    """Seeded random ``share`` of customers within each risk segment (rounded per segment)."""
    keys = np.array([
        int.from_bytes(hashlib.sha256(f"{seed}:{c}".encode()).digest()[:8], "big") for c in customer_ids
    ], dtype=np.uint64)
    control = np.zeros(len(customer_ids), dtype=bool)
    for segment in pd.unique(segments):
        members = np.flatnonzero(segments.to_numpy() == segment)
        take = int(round(share * len(members)))
        control[members[np.argsort(keys[members], kind="stable")[:take]]] = True
    return control


def rule_policy(customers: pd.DataFrame, options: Options) -> np.ndarray:
    """The seeds' rules: High risk and value at or above the median -> discount voucher; Medium ->
    win-back email; Low -> loyalty reward (when the customer is eligible), whatever the net value."""
    names = [a.name for a in options.actions]
    if customers.empty:
        return np.full(0, -1)
    risk = customers["risk_segment"].to_numpy()
    high_value = customers["expected_value"].to_numpy(float) >= np.median(customers["expected_value"])
    wanted = np.select(
        [(risk == "High") & high_value, risk == "Medium", risk == "Low"],
        ["discount_voucher", "win_back_email", "loyalty_reward"], default="",
    )
    choice = np.array([names.index(w) if w in names else -1 for w in wanted], dtype=int)
    rows = np.flatnonzero(choice >= 0)
    ineligible = ~np.isfinite(options.net[rows, choice[rows]])
    choice[rows[ineligible]] = -1
    return choice


def highest_risk_first(customers: pd.DataFrame, options: Options, action: str = "discount_voucher") -> np.ndarray:
    """Everyone gets ``action``; the spend cap decides how far down the risk ranking it reaches."""
    j = [a.name for a in options.actions].index(action)
    return np.where(np.isfinite(options.net[:, j]), j, -1)


def within_spend(choice: np.ndarray, order: np.ndarray, options: Options, spend: float) -> np.ndarray:
    """Keep chosen actions in ``order`` (customer indices) while the cumulative cost stays within ``spend``."""
    kept = np.full(len(choice), -1)
    total = 0.0
    for i in order:
        if choice[i] < 0:
            continue
        c = options.cost[i, choice[i]]
        if total + c <= spend + 1e-9:
            kept[i], total = choice[i], total + c
    return kept


def totals(choice: np.ndarray, options: Options) -> dict[str, float]:
    """Customers acted on, spend, expected saved revenue and expected net value of a plan."""
    rows = np.flatnonzero(choice >= 0)
    return {
        "customers": float(len(rows)),
        "spend": float(options.cost[rows, choice[rows]].sum()),
        "expected_saved_revenue": float(options.saved[rows, choice[rows]].sum()),
        "expected_net_value": float(options.net[rows, choice[rows]].sum()),
    }
