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
    # Alternative column sets, at least one of which a file must carry in full.
    one_of: tuple[tuple[str, ...], ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Data columns of the bronze table, in table order (lineage columns follow)."""
        alternatives = tuple(dict.fromkeys(c for group in self.one_of for c in group))
        return self.required + alternatives + self.optional

    def missing_columns(self, columns: list[str]) -> list[str]:
        """Required columns absent from ``columns``; for alternatives, those of the nearest set."""
        missing = [c for c in self.required if c not in columns]
        if self.one_of:
            gaps = [[c for c in group if c not in columns] for group in self.one_of]
            missing += min(gaps, key=len)
        return missing

    def describe_required(self) -> str:
        """The required columns in words: "order_id, customer_id, order_ts plus amount, or plus
        quantity and unit_price"."""
        text = ", ".join(self.required)
        if self.one_of:
            text += " plus " + ", or plus ".join(" and ".join(group) for group in self.one_of)
        return text


# One row per order with its amount, or one row per order line (as in the UCI Online Retail
# layout) with quantity and unit price, which silver sums into orders.
TRANSACTIONS = Source(
    "transactions",
    required=("order_id", "customer_id", "order_ts"),
    one_of=(("amount",), ("quantity", "unit_price")),
    optional=("product_category", "channel"),
)
CUSTOMERS = Source(
    "customers",
    required=("customer_id",),
    optional=("signup_ts", "segment", "country", "loyalty_points", "marketing_opt_in"),
)
WEB_SESSIONS = Source("web_sessions", required=("customer_id", "session_ts"))
# What a retention campaign executed: one row per customer contacted or held out as a control.
CAMPAIGN_CONTACTS = Source(
    "campaign_contacts",
    required=("campaign_id", "customer_id", "action", "contacted_at", "is_control"),
    optional=("cost",),
)

SOURCES: dict[str, Source] = {s.name: s for s in (TRANSACTIONS, CUSTOMERS, WEB_SESSIONS, CAMPAIGN_CONTACTS)}
# The sources a customer's history is made of (what features and on-demand scoring read).
HISTORY_SOURCES: dict[str, Source] = {s.name: s for s in (TRANSACTIONS, CUSTOMERS, WEB_SESSIONS)}
FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def customer_id_sql(text: str) -> str:
    """SQL normalising a landed customer id: trimmed, and a whole number written as a float
    ("1001.0", as spreadsheets and float columns export it) is that number; other text such as
    "ACCT-1.0" stays as it is."""
    return f"regexp_replace(trim({text}), '^([0-9]+)\\.0+$', '\\1')"


def cents_sql(value: str) -> str:
    """SQL rounding ``value`` to cents, half away from zero, as the amount reads in decimal: 1.005
    is 1.01 (the double nearest 1.005 lies just below it, so rounding the double gives 1.00, and
    engines disagree on that). Null beyond 29 digits, which no amount in range reaches."""
    return f"cast(round(try_cast({value} as decimal(38, 9)), 2) as double)"


def seeded_draw_sql(seed: int, key: str = "customer_id", timestamp: str = "snapshot_date") -> str:
    """SQL ordering rows by a seeded hash of a text ``key`` and a ``timestamp``, the same on every
    engine: an md5 of their text, since each engine's own ``hash`` differs."""
    return f"md5(cast({key} as varchar) || '|' || strftime({timestamp}, '%Y-%m-%d %H:%M:%S') || '|{int(seed)}')"


# Earliest and latest timestamps every engine holds, for open ends of validity spans.
BEFORE_ALL_TIME, AFTER_ALL_TIME = "timestamp '0001-01-01 00:00:00'", "timestamp '9999-12-31 23:59:59'"


# A clock time (not a bare date, whose '-05' is no offset) followed by a UTC offset or Z.
_OFFSET_AFTER_TIME = r"[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"


@dataclass(frozen=True)
class TimestampRules:
    """How landed timestamp text is read: strptime ``formats`` tried after ISO 8601, and the
    IANA ``timezone`` a timestamp without an offset is taken to be in."""

    formats: tuple[str, ...] = ()
    timezone: str = "UTC"


def timestamp_sql(text: str, rules: TimestampRules = TimestampRules()) -> str:
    """SQL parsing landed text ``text`` as a UTC timestamp: ISO 8601 first, then each strptime
    format. A time with an offset (``+02:00``, ``-0500``, ``Z``) is converted to UTC; a time
    without one is taken to be in ``rules.timezone`` and converted to UTC.

    Null when nothing parses, so callers can quarantine the row instead of failing the run.
    """
    value = f"trim({text})"
    naive = f"try_cast({value} as timestamp)"
    if rules.formats:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in rules.formats)
        naive = f"coalesce({naive}, try_strptime({value}, [{listed}]))"
    if rules.timezone != "UTC":
        naive = _wall_clock_to_utc(naive, rules.timezone.replace("'", "''"))
    # A plain cast to TIMESTAMP drops the offset and keeps the wall-clock time; a space before
    # the offset is dropped first, since engines differ on whether they take it.
    offset = f"regexp_replace({value}, '\\s+([Zz]|[+-][0-9:]+)$', '\\1')"
    return (
        f"case when regexp_matches({value}, '{_OFFSET_AFTER_TIME}') "
        f"then try_cast({offset} as timestamptz) at time zone 'UTC' "
        f"else {naive} end"
    )


def _wall_clock_to_utc(naive: str, zone: str) -> str:
    """SQL for the UTC instant of wall-clock time ``naive`` in ``zone``. In the hour that repeats
    when clocks go back it is the earlier instant (engines pick differently on their own): an hour
    before the engine's pick, if that instant reads the same on the clock."""
    picked = f"(timezone('{zone}', {naive}) at time zone 'UTC')"
    earlier = f"({picked} - interval 1 hour)"
    return f"(case when timezone('{zone}', timezone('UTC', {earlier})) = {naive} then {earlier} else {picked} end)"
