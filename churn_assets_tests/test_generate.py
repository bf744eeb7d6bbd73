import hashlib

import numpy as np
import pandas as pd
import pytest

from churn_assets.core.sample.generate import SampleConfig, generate_sample
from churn_assets.core.sample.files import DEFECTS, write_landing, write_truth
from churn_assets.core.ingestion.parquet import read_parquet


@pytest.fixture(scope="module")
def sample():
    return generate_sample(SampleConfig(customers=8000, seed=7))


def _digest(paths):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_same_seed_gives_identical_tables_and_files(tmp_path):
    config = SampleConfig(customers=1500, months=6, seed=11, dirty_share=0.02)
    first, second = generate_sample(config), generate_sample(config)
    pd.testing.assert_frame_equal(first.transactions, second.transactions)
    pd.testing.assert_frame_equal(first.web_sessions, second.web_sessions)
    pd.testing.assert_frame_equal(first.truth, second.truth)
    assert _digest(write_landing(first, tmp_path / "a")) == _digest(write_landing(second, tmp_path / "b"))


def test_another_seed_gives_other_data():
    a = generate_sample(SampleConfig(customers=500, months=6, seed=1))
    b = generate_sample(SampleConfig(customers=500, months=6, seed=2))
    assert not a.transactions["amount"].equals(b.transactions["amount"])


def test_sizes_refunds_and_columns(sample):
    tx = sample.transactions
    per_customer = len(tx) / 8000
    assert 8 <= per_customer <= 15, per_customer  # about a million rows per 100k customers
    refund_share = (tx["amount"] < 0).mean()
    assert 0.015 <= refund_share <= 0.045, refund_share
    assert tx["order_id"].is_unique
    assert tx.loc[tx["amount"] < 0, "order_id"].str.startswith("R").all()
    assert set(tx["product_category"]) == {"apparel", "beauty", "electronics", "grocery", "home", "sports"}
    assert len(sample.customers) == 8000 and sample.customers["customer_id"].is_unique
    assert tx["order_ts"].min() >= pd.Timestamp("2024-01-01")
    assert tx["order_ts"].max() < pd.Timestamp("2026-01-01")


def test_no_order_after_the_latent_dropout(sample):
    orders = sample.transactions[sample.transactions["amount"] > 0]
    merged = orders.merge(sample.truth, on="customer_id")
    assert (merged["order_ts"] <= merged["dropout_ts"]).all()
    assert (merged["order_ts"] >= merged["signup_ts"]).all()


def test_churn_exists_but_is_not_everyone(sample):
    tx, snapshot = sample.transactions, pd.Timestamp("2025-03-01")
    active = set(tx.loc[tx["order_ts"] < snapshot, "customer_id"])
    future = tx[(tx["order_ts"] >= snapshot) & (tx["order_ts"] < snapshot + pd.Timedelta(days=90))]
    churn_share = 1 - len(active & set(future["customer_id"])) / len(active)
    assert 0.3 <= churn_share <= 0.8, churn_share


def test_recent_buyers_churn_less_than_lapsed_ones(sample):
    """Churn is learnable: recency separates churners from stayers."""
    tx, snapshot = sample.transactions, pd.Timestamp("2025-03-01")
    last = tx[tx["order_ts"] < snapshot].groupby("customer_id")["order_ts"].max()
    future = set(tx.loc[(tx["order_ts"] >= snapshot) & (tx["order_ts"] < snapshot + pd.Timedelta(days=90)), "customer_id"])
    churned = ~last.index.isin(list(future))
    recent = (snapshot - last).dt.days <= 30
    assert churned[recent.to_numpy()].mean() < 0.5 * churned[~recent.to_numpy()].mean()


def test_web_sessions_fade_before_dropout(sample):
    sessions = sample.web_sessions.merge(sample.truth, on="customer_id")
    days_before = (sessions["dropout_ts"] - sessions["session_ts"]).dt.days
    in_window = sample.truth[
        (sample.truth["dropout_ts"] - pd.Timedelta(days=150) > sample.truth["signup_ts"])
        & (sample.truth["dropout_ts"] < pd.Timestamp("2025-12-01"))
    ]["customer_id"]
    near = days_before.between(0, 14) & sessions["customer_id"].isin(in_window)
    far = days_before.between(100, 114) & sessions["customer_id"].isin(in_window)
    assert near.sum() < 0.6 * far.sum(), (near.sum(), far.sum())


def test_seasonal_peak_in_december(sample):
    orders = sample.transactions[sample.transactions["amount"] > 0]
    per_month = orders.groupby(orders["order_ts"].dt.to_period("M")).size()
    # The base grows as customers join, so compare December with its neighbours in 2024.
    assert per_month[pd.Period("2024-12")] > 1.1 * per_month[pd.Period("2024-09")]


def test_dirty_share_injects_every_defect_kind():
    config = SampleConfig(customers=1000, months=6, seed=3, dirty_share=0.03)
    dirty = generate_sample(config).transactions
    clean = generate_sample(SampleConfig(customers=1000, months=6, seed=3)).transactions
    counts = dirty["defect"].value_counts()
    assert set(counts.index) == set(DEFECTS)
    defective = int(round(0.03 * len(clean)))
    assert counts.sum() == defective
    duplicates = counts["duplicate_order"] + counts["conflicting_duplicate"]
    assert len(dirty) == len(clean) + duplicates
    assert dirty["order_id"].duplicated().sum() == duplicates
    assert dirty.loc[dirty["defect"] == "missing_customer_id", "customer_id"].isna().all()
    assert (dirty.loc[dirty["defect"] == "future_date", "order_ts"] == "2099-01-01 00:00:00").all()


def test_landing_files_are_monthly_chunks_and_truth_is_outside(tmp_path):
    sample = generate_sample(SampleConfig(customers=300, months=3, seed=5, dirty_share=0.02))
    written = write_landing(sample, tmp_path / "landing")
    truth = write_truth(sample, tmp_path / "truth")
    names = sorted(p.relative_to(tmp_path / "landing").as_posix() for p in written)
    assert "transactions/transactions_2024-01.csv" in names
    assert "transactions/transactions_legacy_export.csv" in names
    assert {n.split("/")[0] for n in names} == {"transactions", "customers", "web_sessions"}
    assert truth.parent == tmp_path / "truth"
    landed = pd.concat(
        pd.read_csv(p, dtype=str) for p in written if p.name.startswith("transactions_2024")
    )
    assert len(landed) == len(sample.transactions)
    assert list(landed.columns) == ["order_id", "customer_id", "order_ts", "amount", "quantity", "product_category", "channel"]


def test_parquet_format_round_trips(tmp_path):
    sample = generate_sample(SampleConfig(customers=200, months=2, seed=5))
    written = write_landing(sample, tmp_path, "parquet")
    frame = pd.concat(read_parquet(p) for p in written if p.parent.name == "transactions")
    assert len(frame) == len(sample.transactions)
    assert np.isclose(frame["amount"].sum(), sample.transactions["amount"].sum())


def test_layouts_real_exports_have(tmp_path):
    config = SampleConfig(customers=600, months=6, seed=4, sources=("transactions",), cohort_weeks=3,
                          zero_amount_share=0.05)
    sample = generate_sample(config)
    written = write_landing(sample, tmp_path)
    assert {p.parent.name for p in written} == {"transactions"}  # a transactions-only export
    assert sample.customers is None and sample.web_sessions is None
    assert len(sample.truth) == 600  # the truth still covers everyone
    purchases = sample.transactions[~sample.transactions["order_id"].str.startswith("R")]
    first = purchases.groupby("customer_id")["order_ts"].min()
    assert len(first) == 600 and first.max() < pd.Timestamp("2024-01-22")  # one cohort, within 3 weeks
    zero = (sample.transactions["amount"] == 0).mean()
    assert 0.03 < zero < 0.07, zero
    assert not (sample.transactions.loc[sample.transactions["order_id"].str.startswith("R"), "amount"] == 0).any()


def test_order_line_layout_sums_to_the_orders(tmp_path):
    orders = generate_sample(SampleConfig(customers=300, months=3, seed=8))
    lines = generate_sample(SampleConfig(customers=300, months=3, seed=8, layout="order_lines"))
    tx = lines.transactions
    assert list(tx.columns[:7]) == ["order_id", "customer_id", "order_ts", "quantity", "unit_price", "product_category", "channel"]
    assert len(tx) > len(orders.transactions)  # orders of several lines
    value = (tx["quantity"] * tx["unit_price"]).groupby(tx["order_id"].str.lstrip("C").str.replace("R", "R", regex=False)).sum()
    expected = orders.transactions.set_index("order_id")["amount"]
    assert np.allclose(value.reindex(expected.index), expected, atol=0.05 * tx.groupby("order_id").size().max())
    cancellations = tx[tx["order_id"].str.startswith("C")]
    assert len(cancellations) and (cancellations["quantity"] < 0).all()
    written = write_landing(lines, tmp_path)
    landed = pd.read_csv(next(p for p in written if p.name == "transactions_2024-01.csv"))
    assert "unit_price" in landed.columns and "amount" not in landed.columns


def test_a_second_sample_merges_into_the_truth_and_a_clash_is_refused(tmp_path):
    from churn_assets.core.sample.files import TruthConflict, next_customer_id

    first = generate_sample(SampleConfig(customers=100, months=2, seed=1))
    write_truth(first, tmp_path)
    assert next_customer_id(tmp_path) == 100_101
    second = generate_sample(SampleConfig(customers=50, months=2, seed=2, first_customer_id=100_101))
    assert second.transactions["order_id"].str.startswith(("O100101-", "R100101-")).all()
    write_truth(second, tmp_path)
    write_truth(first, tmp_path)  # the same sample again changes nothing
    truth = read_parquet(tmp_path / "customers_truth.parquet")
    assert len(truth) == 150 and truth["customer_id"].is_unique
    clash = generate_sample(SampleConfig(customers=10, months=2, seed=3))
    with pytest.raises(TruthConflict, match="--id-offset 100151 .* --replace-truth"):
        write_truth(clash, tmp_path)
    assert len(read_parquet(tmp_path / "customers_truth.parquet")) == 150  # untouched
    write_truth(clash, tmp_path, replace=True)
    assert len(read_parquet(tmp_path / "customers_truth.parquet")) == 10


@pytest.fixture(scope="module")
def campaigns():
    return generate_sample(SampleConfig(customers=8000, months=18, seed=9, campaign_first_month=6, campaign_control_share=0.2))


def test_campaigns_hold_out_the_control_share_of_each_action_among_active_customers(campaigns):
    contacts = campaigns.campaign_contacts
    assert sorted(contacts["campaign_id"].unique()) == [f"2024-{m:02d}-01" for m in range(7, 13)] + [
        f"2025-{m:02d}-01" for m in range(1, 7)
    ]
    assert contacts["customer_id"].is_unique  # a customer is contacted at most once
    for _, group in contacts.groupby(["campaign_id", "action"]):
        assert group["is_control"].sum() == round(0.2 * len(group))
    opted_in = campaigns.customers.set_index("customer_id")["marketing_opt_in"]
    emailed = contacts.loc[contacts["action"] == "win_back_email", "customer_id"]
    assert opted_in.loc[emailed].all()
    snapshot = pd.to_datetime(contacts["campaign_id"])
    assert ((contacts["contacted_at"] >= snapshot) & (contacts["contacted_at"] < snapshot + pd.Timedelta(days=3))).all()
    # everyone contacted had ordered in the 180 days before the snapshot
    orders = campaigns.transactions.merge(contacts.assign(snapshot=snapshot), on="customer_id")
    recent = orders[(orders["order_ts"] < orders["snapshot"]) & (orders["order_ts"] >= orders["snapshot"] - pd.Timedelta(days=180))]
    assert set(recent["customer_id"]) == set(contacts["customer_id"])


def test_customers_respond_to_a_treated_contact_with_their_true_effect(campaigns):
    truth = campaigns.truth.set_index("customer_id")
    contacts = campaigns.campaign_contacts.set_index("customer_id")
    assert (truth.loc[contacts.index, "contact_action"] == contacts["action"]).all()
    moved = truth["dropout_ts"] != truth["untreated_dropout_ts"]
    untouched = truth.index.difference(contacts.index[~contacts["is_control"]])
    assert not moved.loc[untouched].any()  # controls and customers never contacted keep their dropout
    treated = contacts.index[~contacts["is_control"]]
    effect = pd.Series(
        [truth.at[c, f"effect_{a}"] for c, a in zip(treated, contacts.loc[treated, "action"])], index=treated
    )
    later = truth.loc[treated, "dropout_ts"] > truth.loc[treated, "untreated_dropout_ts"]
    earlier = truth.loc[treated, "dropout_ts"] < truth.loc[treated, "untreated_dropout_ts"]
    assert later.any() and earlier.any()
    assert (effect[later] > 0).all() and (effect[earlier] < 0).all()
    # a vip given a voucher is more often put off than kept: a "sleeping dog"
    assert (truth["effect_discount_voucher"][truth["segment"] == "vip"] < 0).all()
    # no order after the dropout the response led to
    merged = campaigns.transactions[campaigns.transactions["amount"] > 0].merge(truth["dropout_ts"].reset_index(), on="customer_id")
    assert (merged["order_ts"] <= merged["dropout_ts"]).all()


def test_campaign_contacts_land_monthly_and_only_when_asked_for(campaigns, tmp_path):
    written = write_landing(campaigns, tmp_path)
    files = sorted(p.name for p in written if p.parent.name == "campaign_contacts")
    assert files[0] == "campaign_contacts_2024-07.csv" and len(files) == 12
    landed = pd.read_csv(tmp_path / "campaign_contacts" / files[0], dtype=str)
    assert list(landed.columns) == ["campaign_id", "customer_id", "action", "contacted_at", "is_control"]
    plain = generate_sample(SampleConfig(customers=500, months=18, seed=9, campaign_first_month=6,
                                         sources=("transactions", "customers", "web_sessions")))
    assert plain.campaign_contacts is None
    assert (plain.truth["dropout_ts"] == generate_sample(SampleConfig(customers=500, months=18, seed=9, campaign_first_month=None)).truth["dropout_ts"]).all()
