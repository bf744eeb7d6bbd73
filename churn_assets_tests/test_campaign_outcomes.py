"""The read-out's statistics against published and hand-computed values, and its tables on hand-built contacts."""

import math

import numpy as np
import pandas as pd
import pytest

from churn_assets.core.gold.campaign_execution import execution_table
from churn_assets.core.gold.campaign_outcomes import (
    campaign_customers_sql,
    campaign_outcomes_schema,
    difference_interval,
    outcomes_table,
    relative_interval,
    sample_ratio_mismatch,
    uplift_p_value,
    wilson_interval,
    with_money,
)
from churn_assets.core.gold.plan import DEFAULT_ACTIONS

Z = 1.959963984540054


def _wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return centre - half, centre + half


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (48, 80), (56, 70), (10, 10)])
def test_wilson_interval_is_the_closed_form(k, n):
    assert wilson_interval(k, n) == pytest.approx(_wilson_by_hand(k, n), abs=1e-9)


@pytest.mark.parametrize("control, treated, expected", [
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10
    ((56, 70), (48, 80), (0.0524, 0.3339)),
    ((9, 10), (3, 10), (0.1705, 0.8090)),
    ((6, 7), (2, 7), (0.0582, 0.8062)),
])
def test_difference_interval_matches_newcombes_published_values(control, treated, expected):
    low, high = difference_interval(*control, *treated)
    assert (round(low, 4), round(high, 4)) == expected


def test_relative_interval_is_the_log_relative_risk_interval():
    # treated churn 30/100 against control 40/100: RR 0.75, se of log RR sqrt(1/30 - 1/100 + 1/40 - 1/100)
    se = math.sqrt(1 / 30 - 1 / 100 + 1 / 40 - 1 / 100)
    relative, low, high = relative_interval(40, 100, 30, 100)
    assert relative == pytest.approx(0.25)
    assert low == pytest.approx(1 - 0.75 * math.exp(Z * se), abs=1e-6)
    assert high == pytest.approx(1 - 0.75 * math.exp(-Z * se), abs=1e-6)
    assert all(math.isnan(v) for v in relative_interval(0, 100, 30, 100))


def test_p_value_is_fishers_exact_test():
    # Fisher's tea-tasting table [[3, 1], [1, 3]]: two-sided p = 34/70
    assert uplift_p_value(1, 4, 3, 4) == pytest.approx(34 / 70)
    assert math.isnan(uplift_p_value(0, 0, 3, 4))


def test_sample_ratio_mismatch_by_hand():
    # 20 controls of 100 where 10 % were planned: (20-10)^2/10 + (80-90)^2/90 on one degree of freedom
    statistic, p_value = sample_ratio_mismatch(np.array([80]), np.array([20]), 0.1)
    assert statistic == pytest.approx(10 + 100 / 90)
    assert p_value == pytest.approx(0.000858, abs=1e-6)
    # exactly as planned in every stratum
    assert sample_ratio_mismatch(np.array([90, 180]), np.array([10, 20]), 0.1) == (0.0, 1.0)
    # right in total, wrong in each stratum: the per-stratum test sees it
    statistic, p_value = sample_ratio_mismatch(np.array([100, 80]), np.array([0, 20]), 0.1)
    assert statistic == pytest.approx(2 * (10 + 100 / 90)) and p_value < 0.001


def _contacts() -> pd.DataFrame:
    """40 voucher contacts in High risk (10 controls, 6 churned; 30 treated, 9 churned) and 5
    email contacts in Low risk, one control."""
    rows = []
    for i in range(40):
        control = i < 10
        churned = (i < 6) if control else (i < 19)
        rows.append(("v%02d" % i, "discount_voucher", control, None, int(churned), 0.8, "High", 100.0, "consumer", True, 50.0))
    for i in range(5):
        rows.append(("e%02d" % i, "win_back_email", i == 0, 2.0 if i == 4 else None, 0, 0.1, "Low", 40.0, "vip", True, 20.0))
    return pd.DataFrame(rows, columns=[
        "customer_id", "action", "is_control", "landed_cost", "churned", "churn_probability", "risk_segment",
        "expected_value", "segment", "marketing_opt_in", "avg_order_value",
    ])


def test_outcomes_table_counts_prices_and_totals():
    customers = with_money(_contacts(), DEFAULT_ACTIONS)
    outcomes = campaign_outcomes_schema().validate(outcomes_table(customers, "2025-01-01"))
    voucher = outcomes.set_index("action").loc["discount_voucher"]
    assert (voucher["treated"], voucher["controls"]) == (30, 10)
    assert voucher["churn_control"] == pytest.approx(0.6) and voucher["churn_treated"] == pytest.approx(0.3)
    assert voucher["uplift"] == pytest.approx(0.3)
    assert voucher["incremental_customers"] == pytest.approx(9)
    # uplift x the treated customers' value; voucher cost 1 + 15 % of a 50 average order each
    assert voucher["incremental_revenue"] == pytest.approx(0.3 * 30 * 100)
    assert voucher["cost"] == pytest.approx(30 * 8.5)
    assert voucher["incremental_net_value"] == pytest.approx(900 - 255)
    assert voucher["roi"] == pytest.approx(645 / 255)
    # the catalogue promised 30 % x 0.8 x 100 per treated customer
    assert voucher["expected_saved_revenue"] == pytest.approx(30 * 24)
    assert voucher["calibration"] == pytest.approx(900 / 720)
    email = outcomes.set_index("action").loc["win_back_email"]
    assert email["cost"] == pytest.approx(0.5 * 3 + 2.0)  # the landed cost where there is one
    assert math.isnan(email["uplift_low"]) is False and math.isnan(email["relative_uplift"])  # nobody churned
    total = outcomes.set_index("action").loc["all"]
    assert (total["treated"], total["controls"]) == (34, 11)
    assert total["cost"] == pytest.approx(voucher["cost"] + email["cost"])


def test_execution_counts_what_was_done_against_the_plan():
    rows = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e", "f"],
        "planned_action": ["voucher", "voucher", "email", "voucher", "email", None],
        "planned_control": [False, False, False, True, False, None],
        "risk_segment": ["High", "High", "Low", "High", "Low", None],
        "contact_action": ["voucher", "email", None, "voucher", "email", "voucher"],
        "contact_control": [False, False, None, False, True, False],
    })
    table = execution_table(rows, "2025-01-01").set_index(["action", "risk_segment"])
    total = table.loc[("all", "all")]
    assert total["planned_treated"] == 4
    assert total["executed_as_planned"] == 1  # a
    assert total["executed_other_action"] == 1  # b got an email
    assert total["not_executed"] == 2  # c not contacted, e recorded as a control
    assert total["controls_contacted"] == 1  # d
    assert total["contacts_outside_plan"] == 1  # f
    assert total["coverage"] == pytest.approx(0.25)
    assert table.loc[("voucher", "High"), "coverage"] == pytest.approx(0.5)


def test_a_campaign_of_a_month_without_a_model_is_read_out_unscored():
    import duckdb

    with duckdb.connect() as connection:
        connection.execute("create schema silver")
        connection.execute(
            "create table silver.campaign_contacts as select * from (values "
            "(date '2025-01-01', 'a', 'discount_voucher', false, null::double), "
            "(date '2025-01-01', 'b', 'discount_voucher', true, null::double), "
            "(date '2025-02-01', 'c', 'discount_voucher', false, null::double)"
            ") v(snapshot_date, customer_id, action, is_control, cost)"
        )
        connection.execute(
            "create table silver.churn_labels as select * from (values (date '2025-01-01', 'a', 0), (date '2025-01-01', 'b', 1)) "
            "v(snapshot_date, customer_id, churned)"
        )
        customers = connection.execute(campaign_customers_sql("2025-01-01", scored=False, featured=False)).df()
    outcomes = outcomes_table(with_money(customers, DEFAULT_ACTIONS), "2025-01-01")
    assert set(outcomes["risk_segment"]) == {"unscored", "all"}
    total = outcomes.set_index("action").loc["all"]
    assert (total["treated"], total["controls"], total["uplift"]) == (1, 1, 1.0)
    assert total["incremental_revenue"] == 0 and total["cost"] == pytest.approx(1.0)  # the voucher's fixed cost
