"""Setting values: text from the environment parsed into typed values, and the rules a whole set
of settings must satisfy, each failure a ``SettingsError`` that names the variable."""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from pathlib import Path

from churn_assets.core.errors import ChurnError


class SettingsError(ChurnError):
    """A setting has a value the project cannot use; the message names the variable."""


# DuckDB's size units; anything else would reach DuckDB's SET statement unchecked.
_MEMORY_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)
EFFECT_SOURCES = ("measured", "uplift", "assumed")
ENGINES = ("duckdb", "spark")


def check_settings(settings) -> None:
    """Raise ``SettingsError`` for the first value of ``settings`` the project cannot use."""
    if settings.start_date.day != 1:
        raise SettingsError(
            f"CHURN_START_DATE must be the first day of a month, got {settings.start_date.isoformat()}"
        )
    for name in (
        "churn_horizon_days", "max_abs_amount", "sample_customers", "sample_months",
        "training_months", "max_training_rows", "drift_psi_warning", "value_horizon_days",
    ):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{env_name(settings, name)} must be positive, got {getattr(settings, name)}")
    from churn_assets.core.ingestion.sources import SOURCES

    for source in SOURCES:
        settings.column_map(source)  # fail at start-up, not in the middle of a run
    settings.timestamp_format_list  # noqa: B018 - validates
    settings.risk_cutoff_pair  # noqa: B018
    settings.candidate_list  # noqa: B018
    for name in ("decision_threshold", "action_effect"):
        if not 0 < getattr(settings, name) < 1:
            raise SettingsError(f"{env_name(settings, name)} must be between 0 and 1, got {getattr(settings, name)}")
    if not 0 <= settings.control_share < 1:
        raise SettingsError(f"CHURN_CONTROL_SHARE must be in [0, 1), got {settings.control_share}")
    if settings.effect_source not in EFFECT_SOURCES:
        raise SettingsError(f"CHURN_EFFECT_SOURCE must be one of {', '.join(EFFECT_SOURCES)}, got {settings.effect_source!r}")
    if settings.engine not in ENGINES:
        raise SettingsError(f"CHURN_ENGINE must be one of {', '.join(ENGINES)}, got {settings.engine!r}")
    if not settings.effect_prior_sd > 0:
        raise SettingsError(f"CHURN_EFFECT_PRIOR_SD must be positive, got {settings.effect_prior_sd}")
    if not settings.segment_effect_sd > 0:
        raise SettingsError(f"CHURN_SEGMENT_EFFECT_SD must be positive, got {settings.segment_effect_sd}")
    settings.action_catalogue  # noqa: B018
    if not _MEMORY_SIZE.fullmatch(settings.duckdb_memory_limit):
        raise SettingsError(
            f"CHURN_DUCKDB_MEMORY_LIMIT must be a size like 4GB or 512MB, got {settings.duckdb_memory_limit!r}"
        )
    if settings.timezone not in known_timezones():
        raise SettingsError(f"CHURN_TIMEZONE must be an IANA time zone such as UTC or Europe/Berlin, got {settings.timezone!r}")
    for name in ("champion_tolerance", "contact_cost", "budget", "settle_seconds"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"{env_name(settings, name)} must not be negative, got {getattr(settings, name)}")


def known_timezones() -> set[str]:
    import zoneinfo

    return zoneinfo.available_timezones() | {"UTC"}


def parse_column_map(text: str, variable: str) -> dict[str, str]:
    """'a=b,c=d' -> {'a': 'b', 'c': 'd'}; an empty text is an empty map."""
    mapping = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        landed, _, canonical = (part.strip() for part in pair.partition("="))
        if not landed or not canonical:
            raise SettingsError(f"{variable}: {pair!r} is not of the form 'landed_name=canonical_name'")
        mapping[landed] = canonical
    return mapping


def parse_bool(raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("use true or false")


def env_name(settings, field_name: str) -> str:
    """The environment variable of one of ``settings``' fields."""
    return next(f.metadata["env"] for f in dataclasses.fields(settings) if f.name == field_name)


def parse_field(f: dataclasses.Field, raw: str):
    """``raw`` text as the type of ``f``'s default; a ``SettingsError`` naming the variable if it is not one."""
    kind = f.default.__class__
    try:
        if kind is bool:
            return parse_bool(raw)
        if kind is date:
            return date.fromisoformat(raw.strip())
        if kind in (int, float):
            return kind(raw)
        if issubclass(kind, Path):
            return Path(raw).expanduser()
        return kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{f.metadata['env']}={raw!r} is not a valid {kind.__name__}: {exc}") from exc
