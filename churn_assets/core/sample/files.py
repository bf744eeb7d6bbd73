"""The generated sample as a shop exports it: order lines, injected defects, the landing files and
the truth files next to them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from churn_assets.core.errors import ChurnError
from churn_assets.core.ingestion.parquet import read_parquet
from churn_assets.core.sample.draws import FIRST_CUSTOMER_ID, month_text, timestamp_text

if TYPE_CHECKING:
    from churn_assets.core.sample.generate import SampleData

DEFECTS = (
    "duplicate_order",
    "conflicting_duplicate",
    "missing_customer_id",
    "bad_date",
    "bad_amount",
    "future_date",
)

TRANSACTION_COLUMNS = (
    "order_id", "customer_id", "order_ts", "amount", "quantity", "product_category", "channel"
)

# One row per invoice line, as order-line exports (the UCI Online Retail layout) have them.
ORDER_LINE_COLUMNS = (
    "order_id", "customer_id", "order_ts", "quantity", "unit_price", "product_category", "channel"
)

CONTACT_COLUMNS = ("campaign_id", "customer_id", "action", "contacted_at", "is_control")

TRUTH_FILE = "customers_truth.parquet"

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

def bad_header_file(transactions: pd.DataFrame) -> pd.DataFrame:
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
        chunks["customers"] = (sample.customers, month_text(sample.customers["signup_ts"]), None)
    if sample.web_sessions is not None:
        chunks["web_sessions"] = (sample.web_sessions, month_text(sample.web_sessions["session_ts"]), None)
    if sample.campaign_contacts is not None:
        contacts = sample.campaign_contacts
        chunks["campaign_contacts"] = (contacts, month_text(pd.to_datetime(contacts["campaign_id"])), CONTACT_COLUMNS)
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
