"""The one settings object: every path and business assumption, with its environment variable.

This module imports no Dagster so that the CLI, the core and the tests share it; the Dagster
resource in ``churn_assets.lib.resources`` exposes the same fields to the launchpad.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from churn_assets.setting_values import (
    SettingsError,  # noqa: F401 - callers import it beside Settings
    check_settings,
    env_name,
    parse_column_map,
    parse_field,
)


def _setting(default, env: str, doc: str):
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Paths and business assumptions; ``Settings.from_env()`` reads the environment."""

    churn_home: Path = _setting(
        Path("data"), "CHURN_HOME", "Root of all data: landing/, the DuckDB warehouse, the MLflow store."
    )
    start_date: date = _setting(
        date(2024, 7, 1), "CHURN_START_DATE", "First monthly snapshot (YYYY-MM-01)."
    )
    churn_horizon_days: int = _setting(
        90, "CHURN_HORIZON_DAYS", "A customer churned at snapshot S if no order in [S, S + horizon)."
    )
    max_abs_amount: float = _setting(
        50_000.0, "CHURN_MAX_ABS_AMOUNT", "Orders or refunds larger than this (absolute) are quarantined."
    )
    transactions_column_map: str = _setting(
        "", "CHURN_TRANSACTIONS_COLUMN_MAP",
        "Rename landed transaction columns, e.g. 'InvoiceNo=order_id,CustomerID=customer_id'.",
    )
    customers_column_map: str = _setting(
        "", "CHURN_CUSTOMERS_COLUMN_MAP", "Rename landed customer columns, as above."
    )
    web_sessions_column_map: str = _setting(
        "", "CHURN_WEB_SESSIONS_COLUMN_MAP", "Rename landed web-session columns, as above."
    )
    campaign_contacts_column_map: str = _setting(
        "", "CHURN_CAMPAIGN_CONTACTS_COLUMN_MAP", "Rename landed campaign-contact columns, as above."
    )
    timestamp_formats: str = _setting(
        "", "CHURN_TIMESTAMP_FORMATS",
        "strptime formats for landed timestamps that are not ISO 8601, tried in order and separated "
        "by ';', e.g. '%m/%d/%Y %H:%M' for the UCI Online Retail export.",
    )
    timezone: str = _setting(
        "UTC", "CHURN_TIMEZONE",
        "IANA time zone of landed timestamps that carry no offset (e.g. Europe/Berlin); stored as UTC. "
        "Timestamps with an offset or Z are converted by it. Takes effect on the next silver rebuild.",
    )
    settle_seconds: float = _setting(
        5.0, "CHURN_SETTLE_SECONDS",
        "A landed file is read only once it has not been modified for this long, so a file still "
        "being copied is never read half-way.",
    )
    training_months: int = _setting(
        12, "CHURN_TRAINING_MONTHS", "Months of labelled snapshots before S that a model for S may train on."
    )
    max_training_rows: int = _setting(
        50_000, "CHURN_MAX_TRAINING_ROWS",
        "Training rows drawn (seeded) from those snapshots; more rows, slower training, slightly better models.",
    )
    model_candidates: str = _setting(
        "logistic_regression,gradient_boosting", "CHURN_MODEL_CANDIDATES",
        "Comma-separated candidates; the best out-of-time ROC-AUC is chosen.",
    )
    btyd_features: bool = _setting(
        False, "CHURN_BTYD_FEATURES",
        "Also try each candidate with BG/NBD's P(alive) and expected purchases as features; kept only "
        "when that variant wins out-of-time (true/false; doubles the fits).",
    )
    decision_threshold: float = _setting(
        0.5, "CHURN_DECISION_THRESHOLD", "Probability from which accuracy, precision, recall and F1 count a churner."
    )
    risk_cutoffs: str = _setting(
        "0.3,0.6", "CHURN_RISK_CUTOFFS", "Probabilities where Medium and High risk start."
    )
    champion_tolerance: float = _setting(
        0.005, "CHURN_CHAMPION_TOLERANCE",
        "ROC-AUC a new version may lose against the champion on the same validation snapshot and still replace it.",
    )
    drift_psi_warning: float = _setting(
        0.2, "CHURN_DRIFT_PSI_WARNING", "Population stability index above which the drift check warns."
    )
    contact_cost: float = _setting(
        5.0, "CHURN_CONTACT_COST", "Cost of one retention contact in the model's validation profit metric."
    )
    action_effect: float = _setting(
        0.2, "CHURN_ACTION_EFFECT",
        "Relative churn reduction of one contact in the model's validation profit metric.",
    )
    value_horizon_days: int = _setting(
        180, "CHURN_VALUE_HORIZON_DAYS", "Days of revenue a retained customer is worth (expected value horizon)."
    )
    budget: float = _setting(10_000.0, "CHURN_BUDGET", "Retention budget per snapshot, in the currency of amounts.")
    control_share: float = _setting(
        0.1, "CHURN_CONTROL_SHARE", "Share of the customers the plan selects, per risk segment and action, held out as a control group."
    )
    actions: str = _setting(
        "", "CHURN_ACTIONS",
        "Action catalogue as JSON (name, fixed_cost, order_value_share, effect, effect_by_segment, "
        "requires_opt_in); empty: discount voucher, win-back email, loyalty reward.",
    )
    effect_source: str = _setting(
        "measured", "CHURN_EFFECT_SOURCE",
        "Effects the plan uses: 'measured' (learned from every campaign matured by the snapshot, shrunk toward the "
        "catalogue; the catalogue's where none has), 'uplift' (a per-customer uplift model for the actions where it "
        "beat the measured segment effects out-of-time, measured effects elsewhere) or 'assumed' (the catalogue's).",
    )
    effect_prior_sd: float = _setting(
        0.15, "CHURN_EFFECT_PRIOR_SD",
        "Standard deviation of an action's learned effect around the catalogue's: smaller trusts the catalogue longer.",
    )
    segment_effect_sd: float = _setting(
        0.1, "CHURN_SEGMENT_EFFECT_SD",
        "Standard deviation of a segment's learned effect around its action's: smaller lets a segment with few controls "
        "borrow more from the action's other segments.",
    )
    seed: int = _setting(42, "CHURN_SEED", "Seed for sample data, model training and control groups.")
    sample_customers: int = _setting(
        20_000, "CHURN_SAMPLE_CUSTOMERS", "Customers generated by `churn-assets run` when landing is empty."
    )
    sample_months: int = _setting(
        24, "CHURN_SAMPLE_MONTHS", "Months of history generated by `churn-assets run` when landing is empty."
    )
    sample_start: date = _setting(
        date(2024, 1, 1), "CHURN_SAMPLE_START", "First day of generated sample data."
    )
    duckdb_memory_limit: str = _setting(
        "3GB", "CHURN_DUCKDB_MEMORY_LIMIT",
        "Memory DuckDB may use per process before it spills to disk next to the warehouse (e.g. 4GB, 512MB).",
    )

    engine: str = _setting(
        "duckdb", "CHURN_ENGINE",
        "Engine of the set-based tables (bronze, silver, features, labels): duckdb (one file) or spark "
        "(Parquet folders, computed by Spark). Read when the definitions load.",
    )
    spark_master: str = _setting(
        "local[2]", "CHURN_SPARK_MASTER",
        "Where Spark runs with CHURN_ENGINE=spark: local[N] on this machine, sc://host:15002 for a "
        "Spark Connect server, or yarn / k8s://... as spark-submit takes it.",
    )
    spark_driver_memory: str = _setting(
        "2g", "CHURN_SPARK_DRIVER_MEMORY", "Memory of the Spark driver (and of local mode's one JVM), e.g. 2g."
    )

    @property
    def duckdb_config(self) -> dict[str, str]:
        """DuckDB connection settings every connection to the warehouse in a process shares."""
        return {"memory_limit": self.duckdb_memory_limit.replace(" ", "")}

    def __post_init__(self) -> None:
        check_settings(self)

    @property
    def risk_cutoff_pair(self) -> tuple[float, float]:
        """(Medium from, High from) out of ``CHURN_RISK_CUTOFFS``."""
        try:
            medium, high = (float(v) for v in self.risk_cutoffs.split(","))
        except ValueError:
            raise SettingsError(
                f"CHURN_RISK_CUTOFFS must be two probabilities like '0.3,0.6', got {self.risk_cutoffs!r}"
            ) from None
        if not 0 < medium < high < 1:
            raise SettingsError(f"CHURN_RISK_CUTOFFS needs 0 < medium < high < 1, got {self.risk_cutoffs!r}")
        return medium, high

    @property
    def action_catalogue(self):
        """The actions of ``CHURN_ACTIONS``, or the default catalogue when it is empty."""
        from churn_assets.core.gold.plan import DEFAULT_ACTIONS, parse_actions

        if not self.actions.strip():
            return DEFAULT_ACTIONS
        try:
            return parse_actions(self.actions)
        except ValueError as exc:
            raise SettingsError(f"CHURN_ACTIONS: {exc}") from None

    @property
    def candidate_list(self) -> tuple[str, ...]:
        """The model candidates named in ``CHURN_MODEL_CANDIDATES``."""
        from churn_assets.core.ml.candidates import CANDIDATES

        names = tuple(n.strip() for n in self.model_candidates.split(",") if n.strip())
        unknown = sorted(set(names) - set(CANDIDATES))
        if unknown or not names:
            raise SettingsError(f"CHURN_MODEL_CANDIDATES: {unknown or 'none'} given; choose from {list(CANDIDATES)}")
        return names

    @property
    def timestamp_format_list(self) -> tuple[str, ...]:
        """The ``CHURN_TIMESTAMP_FORMATS`` entries, each checked to hold a strptime directive."""
        formats = tuple(f.strip() for f in self.timestamp_formats.split(";") if f.strip())
        for f in formats:
            if "%" not in f:
                raise SettingsError(
                    f"CHURN_TIMESTAMP_FORMATS: {f!r} has no strptime directive such as %Y or %d"
                )
        return formats

    @property
    def timestamp_rules(self):
        """How landed timestamps are read: the formats above and ``CHURN_TIMEZONE``."""
        from churn_assets.core.ingestion.sources import TimestampRules

        return TimestampRules(self.timestamp_format_list, self.timezone)

    def column_map(self, source: str) -> dict[str, str]:
        """{landed column name: canonical name} for ``source``, from its ``*_COLUMN_MAP`` setting."""
        from churn_assets.core.ingestion.sources import SOURCES

        variable = env_name(self, f"{source}_column_map")
        mapping = parse_column_map(getattr(self, f"{source}_column_map"), variable)
        unknown = sorted(set(mapping.values()) - set(SOURCES[source].columns))
        if unknown:
            raise SettingsError(
                f"{variable}: {unknown} are not {source} columns; use {list(SOURCES[source].columns)}"
            )
        return mapping

    @property
    def landing_dir(self) -> Path:
        return self.churn_home / "landing"

    @property
    def warehouse_path(self) -> Path:
        return self.churn_home / "warehouse.duckdb"

    @property
    def truth_dir(self) -> Path:
        """Latent truth of generated data; the pipeline never reads it."""
        return self.churn_home / "truth"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{(self.churn_home / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifact_root(self) -> Path:
        """Where MLflow stores plots and models; without it MLflow writes ./mlruns in the working directory."""
        return (self.churn_home / "mlartifacts").resolve()

    @property
    def spark_warehouse_path(self) -> Path:
        """Folder of the Parquet tables when ``CHURN_ENGINE=spark``."""
        return self.churn_home / "spark-warehouse"

    @property
    def warehouse_location(self) -> Path:
        """Where this engine's tables are: the DuckDB file, or the Spark warehouse folder."""
        return self.spark_warehouse_path if self.engine == "spark" else self.warehouse_path

    @property
    def dagster_home(self) -> Path:
        """Default Dagster instance folder when DAGSTER_HOME is not set."""
        return self.churn_home / "dagster"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Settings from environment variables (unset ones keep their defaults), then ``overrides``."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw not in (None, ""):
                values[f.name] = parse_field(f, raw)
        values.update(overrides)
        return cls(**values)

    def to_plain(self) -> dict[str, object]:
        """Field values as str, int or float, as the Dagster resource holds them."""
        values = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values[f.name] = value.isoformat() if isinstance(value, date) else str(value) if isinstance(value, Path) else value
        return values

    @classmethod
    def from_plain(cls, values: Mapping[str, object]) -> Settings:
        """Settings from ``to_plain`` output (missing fields keep their defaults)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        return cls(**{
            name: parse_field(fields[name], value) if isinstance(value, str) and fields[name].type != "str" else value
            for name, value in values.items()
        })

    def describe(self) -> list[tuple[str, str, str]]:
        """(environment variable, current value, meaning) for every setting."""
        return [
            (f.metadata["env"], str(getattr(self, f.name)), f.metadata["doc"])
            for f in dataclasses.fields(self)
        ]
