"""The ``churn-assets`` command: generate sample data, run the pipeline headlessly, open the UI."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from churn_assets.settings import Settings, SettingsError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(**_overrides(args))
        return args.handler(args, settings)
    except SettingsError as exc:
        print(f"churn-assets: {exc}", file=sys.stderr)
        return 2


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
    generate.set_defaults(handler=_generate)

    run = commands.add_parser(
        "run", help="ingest landing (generating sample data if it is empty) and materialize the pipeline"
    )
    run.add_argument("--verbose", action="store_true", help="show Dagster's own log lines")
    run.set_defaults(handler=_run)

    dev = commands.add_parser("dev", help="open the Dagster UI (webserver and daemon) on 127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(handler=_dev)

    report = commands.add_parser(
        "report", help="score the retention plan against the generated data's latent truth, beside an oracle plan"
    )
    report.add_argument(
        "--snapshot", type=date.fromisoformat, default=None, help="YYYY-MM-01 (default: the newest planned snapshot)"
    )
    report.set_defaults(handler=_report)

    bench = commands.add_parser(
        "bench",
        help="time the whole pipeline on N generated transactions, orchestrated and as a plain script",
    )
    bench.add_argument("--transactions", type=_positive_int, default=100_000, help="about N transactions (default 100000)")
    bench.add_argument("--mode", choices=("both", "orchestrated", "plain"), default="both")
    bench.add_argument("--workdir", type=Path, default=None, help="keep data and results here (default: a temp folder, removed)")
    bench.add_argument("--keep", action="store_true", help="keep the temp folder")
    bench.add_argument("--seed", type=int, default=None, help="random seed (default $CHURN_SEED)")
    bench.set_defaults(handler=_bench)

    show = commands.add_parser("settings", help="print every setting, its variable and its value")
    show.set_defaults(handler=_settings)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _overrides(args: argparse.Namespace) -> dict:
    return {"churn_home": args.home} if args.home else {}


def _generate(args, settings: Settings) -> int:
    from churn_assets.core.generate import SampleConfig

    config = SampleConfig(
        customers=args.customers or settings.sample_customers,
        start=args.start or settings.sample_start,
        months=args.months or settings.sample_months,
        seed=settings.seed if args.seed is None else args.seed,
        dirty_share=args.dirty_share,
    )
    _generate_into(settings, config, args.format)
    return 0


def _generate_into(settings: Settings, config, file_format: str = "csv") -> None:
    from churn_assets.core.generate import generate_sample, write_landing, write_truth

    print(
        f"Generating {config.customers:,} customers over {config.months} months from "
        f"{config.start.isoformat()} (seed {config.seed}, dirty share {config.dirty_share:g}) ...",
        flush=True,
    )
    started = time.perf_counter()
    sample = generate_sample(config)
    written = write_landing(sample, settings.landing_dir, file_format)
    truth = write_truth(sample, settings.truth_dir)
    print(
        f"  {len(sample.transactions):,} transactions, {len(sample.customers):,} customers, "
        f"{len(sample.web_sessions):,} web sessions in {len(written)} files under "
        f"{settings.landing_dir} ({time.perf_counter() - started:.1f} s)\n"
        f"  latent truth (for evaluation only): {truth}"
    )


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at a persistent instance (default $CHURN_HOME/dagster) with our dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    template = PROJECT_ROOT / "dagster.yaml"
    if not config.exists() and template.exists():
        shutil.copyfile(template, config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _run(args, settings: Settings) -> int:
    from churn_assets.core.generate import SampleConfig
    from churn_assets.core.landing import scan_landing
    from churn_assets.runner import run_pipeline

    home = ensure_dagster_home(settings)
    _quiet_mlflow()
    if not scan_landing(settings.landing_dir)[0]:
        print(f"Landing folder {settings.landing_dir} is empty: generating sample data first.")
        _generate_into(
            settings,
            SampleConfig(
                customers=settings.sample_customers,
                start=settings.sample_start,
                months=settings.sample_months,
                seed=settings.seed,
            ),
        )
    print(f"Dagster instance: {home} (open the UI with: churn-assets dev)")
    report = run_pipeline(settings, verbose=args.verbose, echo=print)
    print(report.summary())
    return 0 if report.ok else 1


def _quiet_mlflow() -> None:
    """MLflow's per-run notices and download bars would bury the progress lines."""
    import logging

    import mlflow  # noqa: F401 - importing it configures its loggers, which we then turn down

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def _report(args, settings: Settings) -> int:
    """The plan, both baselines and an oracle plan at the same budget, valued under the latent truth."""
    import duckdb
    import pandas as pd

    from churn_assets.core.gold import plan_customers_sql
    from churn_assets.core.oracle import compare_with_oracle, truth_at_snapshot
    from churn_assets.core.warehouse import query_frame, table_exists

    truth_file = settings.truth_dir / "customers_truth.parquet"
    if not truth_file.exists():
        print(f"churn-assets: no latent truth at {truth_file}; the report needs generated data", file=sys.stderr)
        return 2
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        if not table_exists(connection, "gold", "customer_value"):
            print("churn-assets: no plan yet; run `churn-assets run` first", file=sys.stderr)
            return 2
        snapshot = args.snapshot.isoformat() if args.snapshot else str(
            connection.execute("select max(snapshot_date) from gold.customer_value").fetchall()[0][0]
        )[:10]
        customers = query_frame(connection, plan_customers_sql(snapshot))
    if customers.empty:
        print(f"churn-assets: no scored customers for snapshot {snapshot}", file=sys.stderr)
        return 2
    truth = truth_at_snapshot(
        pd.read_parquet(truth_file), date.fromisoformat(snapshot), settings.churn_horizon_days,
        settings.value_horizon_days,
    )
    table = compare_with_oracle(customers, truth, settings)
    print(f"Snapshot {snapshot}: {len(customers):,} scored customers, budget {settings.budget:,.0f}, "
          f"value horizon {settings.value_horizon_days} days")
    print(table.round({"customers": 0, "spend": 0, "expected_net_value": 0, "realised_net_value": 0,
                       "realised_saved_revenue": 0, "share_of_oracle": 3}).to_string())
    return 0


def _bench(args, settings: Settings) -> int:
    from churn_assets.bench import MODES, run_bench

    modes = MODES if args.mode == "both" else (args.mode,)
    try:
        run_bench(args.transactions, modes, args.workdir, args.keep, settings.seed if args.seed is None else args.seed)
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
