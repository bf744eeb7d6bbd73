"""The ``churn-assets`` command: generate sample data, run the pipeline headlessly, open the UI."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from churn_assets.core.errors import ChurnError
from churn_assets.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; an expected error (a bad setting or home, a broken file, a refusal) is
    one line on stderr and exit status 2, never a traceback."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(**_overrides(args))
        if args.command in HOME_COMMANDS:
            check_home(settings.churn_home)
        return args.handler(args, settings)
    except ChurnError as exc:
        print(f"churn-assets {args.command}: {exc}", file=sys.stderr)
        return 2


# Subcommands that read or write $CHURN_HOME.
HOME_COMMANDS = ("generate", "run", "dev", "report", "score", "simulate")


def check_home(home: Path) -> None:
    """Raise ``ChurnError`` unless ``home`` is a folder this process can write (or can create)."""
    existing = next((p for p in (home, *home.parents) if p.exists()), None)
    if home.exists() and not home.is_dir():
        raise ChurnError(f"CHURN_HOME {home} is a file, not a folder; point CHURN_HOME (or --home) at a folder")
    if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
        raise ChurnError(f"CHURN_HOME {home} cannot be created or written here ({existing} is not a writable folder)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="churn-assets",
        description="Churn assets: raw transactions to a budget-constrained retention plan.",
    )
    parser.add_argument("--home", type=Path, help="data root (default: $CHURN_HOME or ./data)")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write sample data into $CHURN_HOME/landing/")
    generate.add_argument("--customers", type=int, default=None, help="customers (default 20000)")
    generate.add_argument("--start", type=date.fromisoformat, default=None, help="first day, YYYY-MM-DD")
    generate.add_argument("--months", type=int, default=None, help="months of history (default 24)")
    generate.add_argument("--seed", type=int, default=None, help="random seed (default $CHURN_SEED)")
    generate.add_argument(
        "--dirty-share", type=float, default=0.0,
        help="share of transaction rows with injected defects, plus one file with a wrong header",
    )
    generate.add_argument("--format", choices=("csv", "parquet"), default="csv")
    generate.add_argument(
        "--sources", type=_source_list, default=None,
        help="comma list of the sources to write (default transactions,customers,web_sessions,campaign_contacts;"
        " without campaign_contacts no campaign runs)",
    )
    generate.add_argument(
        "--cohort-weeks", type=_positive_int, default=None,
        help="every customer makes their first purchase within the first N weeks (one cohort)",
    )
    generate.add_argument("--zero-amount-share", type=float, default=0.0, help="share of orders with amount 0")
    generate.add_argument(
        "--layout", choices=("orders", "order_lines"), default="orders",
        help="one row per order, or one per invoice line with quantity and unit_price",
    )
    generate.add_argument(
        "--id-offset", type=_positive_int, default=None,
        help="first customer id (default: after every customer already generated into this home)",
    )
    generate.add_argument(
        "--replace-truth", action="store_true",
        help="replace the home's latent truth instead of adding to it",
    )
    generate.set_defaults(handler=_generate)

    run = commands.add_parser(
        "run", help="ingest landing (generating sample data if it is empty) and materialize the pipeline"
    )
    run.add_argument("--verbose", action="store_true", help="show Dagster's own log lines")
    run.set_defaults(handler=_run)

    simulate = commands.add_parser(
        "simulate", help="live the closed loop on generated data: each month execute the plan, land the month, run"
    )
    simulate.add_argument("--months", type=_positive_int, default=6, help="months to simulate (default 6)")
    simulate.set_defaults(handler=_simulate)

    dev = commands.add_parser("dev", help="open the Dagster UI (webserver and daemon) on 127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(handler=_dev)

    report = commands.add_parser(
        "report", help="score the retention plan against the generated data's latent truth, beside an oracle plan"
    )
    report.add_argument(
        "--snapshot", type=date.fromisoformat, default=None, help="YYYY-MM-01 (default: the newest planned snapshot)"
    )
    report.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    report.set_defaults(handler=_report)

    score = commands.add_parser(
        "score", help="score one customer from their history in the warehouse: probability, risk, reasons, best action"
    )
    score.add_argument("--customer", required=True, help="customer id, as in silver.transactions")
    score.add_argument(
        "--as-of", type=date.fromisoformat, default=None,
        help="YYYY-MM-DD: features from every row before this day (default: the newest scored snapshot)",
    )
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.set_defaults(handler=_score)

    bench = commands.add_parser(
        "bench",
        help="time the whole pipeline on N generated transactions, orchestrated and as a plain script",
    )
    bench.add_argument("--transactions", type=_positive_int, default=100_000, help="about N transactions (default 100000)")
    bench.add_argument("--mode", choices=("both", "orchestrated", "plain"), default="both")
    bench.add_argument("--workdir", type=Path, default=None, help="keep data and results here (default: a temp folder, removed)")
    bench.add_argument("--keep", action="store_true", help="keep the temp folder")
    bench.add_argument("--seed", type=int, default=None, help="random seed (default $CHURN_SEED)")
    bench.add_argument(
        "--tables-only", action="store_true",
        help="stop after the tables computed inside DuckDB (bronze, silver, features, labels)",
    )
    bench.set_defaults(handler=_bench)

    show = commands.add_parser("settings", help="print every setting, its variable and its value")
    show.set_defaults(handler=_settings)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _source_list(text: str) -> tuple[str, ...]:
    from churn_assets.core.sample.generate import SOURCE_NAMES

    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = sorted(set(names) - set(SOURCE_NAMES))
    if unknown or "transactions" not in names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: name transactions and any of {', '.join(SOURCE_NAMES[1:])}, separated by commas"
        )
    return names


def _overrides(args: argparse.Namespace) -> dict:
    return {"churn_home": args.home} if args.home else {}


def _generate(args, settings: Settings) -> int:
    from churn_assets.core.sample.generate import SOURCE_NAMES, SampleConfig
    from churn_assets.core.sample.files import next_customer_id

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
    from churn_assets.core.sample.generate import generate_sample
    from churn_assets.core.sample.files import merged_truth, write_landing, write_truth

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


def _run(args, settings: Settings) -> int:
    from churn_assets.runner import run_pipeline

    home = ensure_dagster_home(settings)
    _quiet_mlflow()
    # the setting when files were there: a user's files may still be being copied
    settle_seconds = 0.0 if _sample_into_empty_landing(settings) else None
    print(f"Dagster instance: {home} (open the UI with: churn-assets dev)")
    report = run_pipeline(settings, verbose=args.verbose, echo=print, settle_seconds=settle_seconds)
    print(report.summary())
    return 0 if report.ok else 1


def _sample_into_empty_landing(settings: Settings) -> bool:
    """Generate the default sample when landing holds no file (sample data never mixes with a
    user's files); whether it did."""
    from churn_assets.core.sample.generate import SampleConfig
    from churn_assets.core.ingestion.landing import landing_holds_files

    if landing_holds_files(settings.landing_dir):
        return False
    print(f"Landing folder {settings.landing_dir} holds no files: generating sample data into it first.")
    _generate_into(settings, SampleConfig(
        customers=settings.sample_customers, start=settings.sample_start, months=settings.sample_months,
        seed=settings.seed, campaign_control_share=_campaign_control_share(settings),
    ))
    return True


def _simulate(args, settings: Settings) -> int:
    """The closed loop, month by month, then a table of what each month planned, realised and measured."""
    import pandas as pd

    from churn_assets.simulate import simulate

    home = ensure_dagster_home(settings)
    _quiet_mlflow()
    _sample_into_empty_landing(settings)
    print(f"Dagster instance: {home}; simulating {args.months} month(s) ...", flush=True)
    results = simulate(settings, args.months)
    table = pd.DataFrame([vars(r) for r in results]).set_index("snapshot")
    print("\n" + table.round(3).to_string())
    return 0


def _quiet_mlflow() -> None:
    """MLflow's per-run notices and download bars would bury the progress lines. Set through
    the environment, which MLflow reads when something first imports it."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _score(args, settings: Settings) -> int:
    """One customer's churn probability, risk segment, reasons and best action as of a day, from
    their history in the warehouse through the registered model the monthly batch used for that
    day (or the champion for another day)."""
    from churn_assets.core.ml.on_demand import score_customer

    _quiet_mlflow()
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


def _report(args, settings: Settings) -> int:
    """The plan with measured, uplift-model and assumed effects, both baselines and an oracle plan
    at the same spend, valued under the latent truth; the learned effects beside the true ones and
    the uplift model's ranking judged by the true uplift."""
    from churn_assets.core.sample.files import TRUTH_FILE
    from churn_assets.core.ingestion.parquet import read_parquet
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
    """A read-only DuckDB connection to the warehouse, or ``ChurnError`` saying why there is none."""
    import duckdb

    if not settings.warehouse_path.exists():
        raise ChurnError(f"no warehouse at {settings.warehouse_path}; run `churn-assets run` first")
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


def _bench(args, settings: Settings) -> int:
    from churn_assets.bench import MODES, run_bench

    modes = MODES if args.mode == "both" else (args.mode,)
    if args.workdir is not None and args.workdir.exists() and not args.workdir.is_dir():
        raise ChurnError(f"--workdir {args.workdir} is a file, not a folder")
    try:
        run_bench(
            args.transactions, modes, args.workdir, args.keep, settings.seed if args.seed is None else args.seed,
            tables_only=args.tables_only,
        )
    except RuntimeError as exc:
        print(f"churn-assets bench: {exc}", file=sys.stderr)
        return 1
    return 0


def _dev(args, settings: Settings) -> int:
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


def _settings(args, settings: Settings) -> int:
    width = max(len(env) for env, _, _ in settings.describe())
    for env, value, doc in settings.describe():
        print(f"{env:<{width}}  {value:<24}  {doc}")
    print(f"{'DAGSTER_HOME':<{width}}  {os.environ.get('DAGSTER_HOME') or settings.dagster_home!s:<24}  "
          "Dagster instance folder (runs, schedules, sensor cursors).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
