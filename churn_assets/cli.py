"""The ``churn-assets`` command: generate sample data, run the pipeline headlessly, open the UI."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from churn_assets import commands
from churn_assets.core.errors import ChurnError
from churn_assets.settings import Settings


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
    subparsers = parser.add_subparsers(dest="command", required=True)

    generate = subparsers.add_parser("generate", help="write sample data into $CHURN_HOME/landing/")
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
        "--cohort-weeks", type=positive_int, default=None,
        help="every customer makes their first purchase within the first N weeks (one cohort)",
    )
    generate.add_argument("--zero-amount-share", type=float, default=0.0, help="share of orders with amount 0")
    generate.add_argument(
        "--layout", choices=("orders", "order_lines"), default="orders",
        help="one row per order, or one per invoice line with quantity and unit_price",
    )
    generate.add_argument(
        "--id-offset", type=positive_int, default=None,
        help="first customer id (default: after every customer already generated into this home)",
    )
    generate.add_argument(
        "--replace-truth", action="store_true",
        help="replace the home's latent truth instead of adding to it",
    )
    generate.set_defaults(handler=commands.generate)

    run = subparsers.add_parser(
        "run", help="ingest landing (generating sample data if it is empty) and materialize the pipeline"
    )
    run.add_argument("--verbose", action="store_true", help="show Dagster's own log lines")
    run.set_defaults(handler=commands.run)

    simulate = subparsers.add_parser(
        "simulate", help="live the closed loop on generated data: each month execute the plan, land the month, run"
    )
    simulate.add_argument("--months", type=positive_int, default=6, help="months to simulate (default 6)")
    simulate.set_defaults(handler=commands.simulate)

    dev = subparsers.add_parser("dev", help="open the Dagster UI (webserver and daemon) on 127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(handler=commands.dev)

    report = subparsers.add_parser(
        "report", help="score the retention plan against the generated data's latent truth, beside an oracle plan"
    )
    report.add_argument(
        "--snapshot", type=date.fromisoformat, default=None, help="YYYY-MM-01 (default: the newest planned snapshot)"
    )
    report.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    report.set_defaults(handler=commands.report)

    score = subparsers.add_parser(
        "score", help="score one customer from their history in the warehouse: probability, risk, reasons, best action"
    )
    score.add_argument("--customer", required=True, help="customer id, as in silver.transactions")
    score.add_argument(
        "--as-of", type=date.fromisoformat, default=None,
        help="YYYY-MM-DD: features from every row before this day (default: the newest scored snapshot)",
    )
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.set_defaults(handler=commands.score)

    show = subparsers.add_parser("settings", help="print every setting, its variable and its value")
    show.set_defaults(handler=commands.show_settings)
    return parser


def positive_int(text: str) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
