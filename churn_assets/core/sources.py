"""The sources that land as files, and the columns each must and may carry."""

from __future__ import annotations

from dataclasses import dataclass

LINEAGE_COLUMNS = ("_source_file", "_file_sha256", "_ingested_at", "_row_number")
EXTRA_COLUMN = "_extra"


@dataclass(frozen=True)
class Source:
    """A landed source: files under ``landing/<name>/`` that become table ``bronze.<name>``."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Data columns of the bronze table, in table order (lineage columns follow)."""
        return self.required + self.optional


TRANSACTIONS = Source(
    "transactions",
    required=("order_id", "customer_id", "order_ts", "amount"),
    optional=("quantity", "unit_price", "product_category", "channel"),
)
CUSTOMERS = Source(
    "customers",
    required=("customer_id",),
    optional=("signup_ts", "segment", "country", "loyalty_points", "marketing_opt_in"),
)
WEB_SESSIONS = Source("web_sessions", required=("customer_id", "session_ts"))

SOURCES: dict[str, Source] = {s.name: s for s in (TRANSACTIONS, CUSTOMERS, WEB_SESSIONS)}
FILE_SUFFIXES = (".csv", ".parquet")
