"""The ``churn-assets`` subcommands, each ``(args, settings) -> exit status``; ``cli.py`` parses the
arguments and calls them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from churn_assets.core.errors import ChurnError
from churn_assets.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def generate(args, settings: Settings) -> int:
    from churn_assets.core.sample.files import next_customer_id
    from churn_assets.core.sample.generate import SOURCE_NAMES, SampleConfig

    try:
        config = SampleConfig(
            customers=args.customers or settings.sample_customers,
            start=args.start or settings.sample_start,
            months=args.months or settings.sample_months,
            seed=settings.seed if args.seed is None else args.seed,
            dirty_share=args.dirty_share,
            first_customer_id=args.id_offset or next_customer_id(settings.truth_dir),
            sources=args.sources or SOURCE_NAMES,
            cohort_weeks=args.cohort_weeks,
            zero_amount_share=args.zero_amount_share,
            layout=args.layout,
            campaign_control_share=_campaign_control_share(settings),
        )
    except ValueError as exc:
        raise ChurnError(str(exc)) from None
    _generate_into(settings, config, args.format, replace_truth=args.replace_truth)
    return 0


def _campaign_control_share(settings: Settings) -> float:
    """Generated campaigns hold out the control share plans use, so their read-outs test it; a
    past campaign always had controls, even when plans are set to hold none out."""
    from churn_assets.core.sample.campaign_history import CampaignDesign

    return settings.control_share or CampaignDesign.control_share


def _generate_into(settings: Settings, config, file_format: str = "csv", replace_truth: bool = False) -> None:
    from churn_assets.core.sample.files import merged_truth, write_landing, write_truth
    from churn_assets.core.sample.generate import generate_sample

    print(
        f"Generating {config.customers:,} customers over {config.months} months from "
        f"{config.start.isoformat()} (seed {config.seed}, dirty share {config.dirty_share:g}, "
        f"customer ids from {config.first_customer_id}) ...",
        flush=True,
    )
    started = time.perf_counter()
    sample = generate_sample(config)
    if not replace_truth:
        merged_truth(settings.truth_dir, sample)  # refuse before anything is written
    written = write_landing(sample, settings.landing_dir, file_format)
    truth = write_truth(sample, settings.truth_dir, replace=replace_truth)
    others = ", ".join(
        f"{len(frame):,} {name.replace('_', ' ')}"
        for name, frame in (
            ("customers", sample.customers), ("web_sessions", sample.web_sessions), ("campaign_contacts", sample.campaign_contacts)
        )
        if frame is not None
    )
    print(
        f"  {len(sample.transactions):,} transaction rows{', ' + others if others else ''} in {len(written)} "
        f"files under {settings.landing_dir} ({time.perf_counter() - started:.1f} s)\n"
        f"  latent truth (for evaluation only): {truth}"
    )


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at a persistent instance (default $CHURN_HOME/dagster) with our dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home).resolve()
    config = home / "dagster.yaml"
    template = PROJECT_ROOT / "dagster.yaml"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not config.exists() and template.exists():
            shutil.copyfile(template, config)
    except OSError as exc:
        raise ChurnError(f"cannot set up the Dagster instance in {home} (DAGSTER_HOME): {_first_line(exc)}") from None
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run(args, settings: Settings) -> int:
    from churn_assets.runner import run_pipeline

    home = ensure_dagster_home(settings)
    quiet_mlflow()
    # the setting when files were there: a user's files may still be being copied
    settle_seconds = 0.0 if _sample_into_empty_landing(settings) else None
    print(f"Dagster instance: {home} (open the UI with: churn-assets dev)")
    report = run_pipeline(settings, verbose=args.verbose, echo=print, settle_seconds=settle_seconds)
    print(report.summary())
    return 0 if report.ok else 1


def _sample_into_empty_landing(settings: Settings) -> bool:
    """Generate the default sample when landing holds no file (sample data never mixes with a
    user's files); whether it did."""
    from churn_assets.core.ingestion.landing import landing_holds_files
    from churn_assets.core.sample.generate import SampleConfig

    if landing_holds_files(settings.landing_dir):
        return False
    print(f"Landing folder {settings.landing_dir} holds no files: generating sample data into it first.")
    _generate_into(settings, SampleConfig(
        customers=settings.sample_customers, start=settings.sample_start, months=settings.sample_months,
        seed=settings.seed, campaign_control_share=_campaign_control_share(settings),
    ))
    return True


def simulate(args, settings: Settings) -> int:
    """The closed loop, month by month, then a table of what each month planned, realised and measured."""
    import pandas as pd

    from churn_assets.simulate import simulate

    home = ensure_dagster_home(settings)
    quiet_mlflow()
    _sample_into_empty_landing(settings)
    print(f"Dagster instance: {home}; simulating {args.months} month(s) ...", flush=True)
    results = simulate(settings, args.months)
    table = pd.DataFrame([vars(r) for r in results]).set_index("snapshot")
    print("\n" + table.round(3).to_string())
    return 0


def quiet_mlflow() -> None:
    """MLflow's per-run notices and download bars would bury the progress lines. Set through
    the environment, which MLflow reads when something first imports it."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def score(args, settings: Settings) -> int:
    """One customer's churn probability, risk segment, reasons and best action as of a day, from
    their history in the warehouse through the registered model the monthly batch used for that
    day (or the champion for another day)."""
    from churn_assets.core.ml.on_demand import score_customer

    quiet_mlflow()
    with read_only_warehouse(settings) as connection:
        scored = score_customer(connection, settings, args.customer, args.as_of)
    if args.json:
        print(json.dumps(scored.as_dict()))
        return 0
    print(f"Customer {scored.customer_id} as of {scored.as_of}: churn probability {scored.churn_probability:.3f} "
          f"({scored.risk_segment} risk), model version {scored.model_version}")
    for number, reason in enumerate(scored.reasons, start=1):
        print(f"  reason {number}: {reason}")
    print(f"  best action: {scored.action}" + (
        f", cost {scored.action_cost:,.2f}, expected net value {scored.expected_net_value:,.2f} "
        f"(value if retained {scored.expected_value:,.2f})" if scored.action != "no_action" else
        " (no action in the catalogue is worth its cost for this customer)"
    ))
    print(f"  planned action: {scored.planned_action or 'none in the plan for this day'}")
    return 0


def report(args, settings: Settings) -> int:
    """The plan with measured, uplift-model and assumed effects, both baselines and an oracle plan
    at the same spend, valued under the latent truth; the learned effects beside the true ones and
    the uplift model's ranking judged by the true uplift."""
    from churn_assets.core.ingestion.parquet import read_parquet
    from churn_assets.core.sample.files import TRUTH_FILE
    from churn_assets.core.sample.report import plan_report

    truth_file = settings.truth_dir / TRUTH_FILE
    if not truth_file.exists():
        raise ChurnError(f"no latent truth at {truth_file}; the report needs data made by `churn-assets generate`")
    with read_only_warehouse(settings) as connection:
        report = plan_report(
            connection, read_parquet(truth_file), settings, args.snapshot.isoformat() if args.snapshot else None
        )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
        return 0
    print(f"Snapshot {report.snapshot}: {report.customers:,} scored customers, budget {settings.budget:,.0f}, "
          f"value horizon {settings.value_horizon_days} days; the plan's effects: {report.effect_source}")
    if report.left_out:
        print(f"  note: {report.left_out:,} customers are not in the truth file and are left out of this report "
              "(and of the plans it solves)")
    for note in report.notes:
        print(f"  note: {note}")
    print("\nPolicies at equal treated spend, valued under the truth:")
    print(report.policies.round({"customers": 0, "spend": 0, "expected_net_value": 0, "realised_net_value": 0,
                                 "share_of_oracle": 3}).to_string())
    for name in ("measured effects", "uplift model"):
        if report.over_assumed(name) is not None:
            print(f"  with the {name} the plan realises {report.over_assumed(name):.2f}x the net value of assumed effects")
    if len(report.qini):
        table = report.qini.pivot(index="action", columns="ranking", values="qini_share")
        print("\nTargeting each action best first, judged by the true churn prevented (Qini: gain over random "
              "as a share of the truth's own order):")
        print(table[[c for c in ("uplift model", "segment estimates", "highest risk first") if c in table]].round(3).to_string())
    if len(report.coverage):
        shown = report.coverage.drop(columns=["enough_controls"]).round(3)
        coverage = report.effect_ci_coverage
        held = f"their measured 95% interval holds the truth in {coverage:.0%}" if coverage is not None else "none to judge"
        print(f"\nLearned effects against the true ones ({int(report.coverage['enough_controls'].sum())} cells with at "
              f"least 30 controls; {held}):")
        print(shown.to_string(index=False))
    return 0


@contextmanager
def read_only_warehouse(settings: Settings):
    """A read-only DuckDB connection to the warehouse (with ``CHURN_ENGINE=spark``, the Spark
    warehouse, which takes the same SQL), or ``ChurnError`` saying why there is none."""
    import duckdb

    if not settings.warehouse_location.exists():
        raise ChurnError(f"no warehouse at {settings.warehouse_location}; run `churn-assets run` first")
    if settings.engine == "spark":
        from churn_assets.lib.resources import build_resources

        with build_resources(settings)["warehouse"].get_connection() as warehouse:
            yield warehouse
        return
    try:
        connection = duckdb.connect(str(settings.warehouse_path), read_only=True)
    except duckdb.Error as exc:
        raise ChurnError(f"cannot open the warehouse {settings.warehouse_path}: {_first_line(exc)}") from None
    try:
        yield connection
    finally:
        connection.close()


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def dev(args, settings: Settings) -> int:
    home = ensure_dagster_home(settings)
    os.environ.setdefault("CHURN_HOME", str(settings.churn_home.resolve()))
    command = [
        "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
        "-h", "127.0.0.1", "-p", str(args.port),
    ]
    print(f"DAGSTER_HOME={home}\n$ {' '.join(command)}", flush=True)
    # Started from DAGSTER_HOME so Dagster does not mistake the template dagster.yaml in the
    # project root for the instance's configuration.
    return subprocess.call(command, cwd=home)


def show_settings(args, settings: Settings) -> int:
    width = max(len(env) for env, _, _ in settings.describe())
    for env, value, doc in settings.describe():
        print(f"{env:<{width}}  {value:<24}  {doc}")
    print(f"{'DAGSTER_HOME':<{width}}  {os.environ.get('DAGSTER_HOME') or settings.dagster_home!s:<24}  "
          "Dagster instance folder (runs, schedules, sensor cursors).")
    return 0
