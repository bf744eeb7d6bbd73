"""What ``churn-assets run`` reports: what was ingested and built, the problems, and the
warehouse's row counts and newest retention summary."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from churn_assets.core import tables
from churn_assets.core.errors import root_cause
from churn_assets.core.ingestion.ledger import LedgerEntry, ledger_lines
from churn_assets.core.warehouse import table_exists
from churn_assets.lib.resources import build_resources
from churn_assets.run_plan import RunPlan
from churn_assets.settings import Settings


@dataclass
class PipelineReport:
    settings: Settings
    ingested: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    built: list[RunPlan] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = [f"\nDone in {self.seconds:.1f} s. Warehouse: {self.settings.warehouse_location}"]
        try:
            counts, plan = table_row_counts(self.settings), newest_plan_summary(self.settings)
        except duckdb.Error as exc:  # held by another process, say: the problems below still print
            counts, plan = {}, [f"  (no row counts: the warehouse cannot be read now: {root_cause(exc)})"]
        for table, rows in counts.items():
            lines.append(f"  {table:<24} {rows:>12,} rows")
        lines += plan
        lines += ["", *ledger_lines(self.ledger)] if self.ledger else []
        lines += [f"  note: {n}" for n in self.notices]
        if self.failures:
            lines.append(f"{len(self.failures)} problem(s):")
            lines += [f"  - {f}" for f in self.failures]
        return "\n".join(lines)


def newest_plan_summary(settings: Settings) -> list[str]:
    """The retention summary of the newest planned snapshot, as console lines (empty before any plan)."""
    if not settings.warehouse_location.exists():
        return []
    with warehouse_connection(settings) as connection:
        if not table_exists(connection, "gold", "retention_summary"):
            return []
        newest = connection.execute(f"select max(snapshot_date) from {tables.GOLD_RETENTION_SUMMARY}").fetchall()[0][0]
        if newest is None:
            return []
        frame = connection.execute(
            f"select * exclude (snapshot_date) from {tables.GOLD_RETENTION_SUMMARY} where snapshot_date = '{newest}'"
        ).df()
    return [f"\nRetention summary for the newest snapshot, {str(newest)[:10]}:", *(
        "  " + line for line in frame.to_string(index=False).splitlines()
    ), f"  Ranked plan: select * from {tables.GOLD_RETENTION_PRIORITIES} (see README, Gold)."]


def warehouse_connection(settings: Settings):
    # The runs' own resource, so the connection has their configuration: DuckDB refuses a second
    # configuration for a database file while this process still holds it open.
    return build_resources(settings)["warehouse"].get_connection()


def table_row_counts(settings: Settings) -> dict[str, int]:
    """Row count of every table in the warehouse, by schema.table."""
    if not settings.warehouse_location.exists():
        return {}
    with warehouse_connection(settings) as connection:
        tables = connection.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' order by 1"
        ).fetchall()
        return {t: connection.execute(f"select count(*) from {t}").fetchall()[0][0] for (t,) in tables}
