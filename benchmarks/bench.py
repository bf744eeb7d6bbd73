"""The whole pipeline on N generated transactions, timed per step, orchestrated and as a plain script.

    python -m benchmarks.bench --transactions 1000000 [--tables-only] [--workdir DIR]

Generates the data once, then runs each mode in a child process of its own, on its own copy of
the landing folder, so each starts cold and its peak memory is its own process tree's:

- ``orchestrated``: ``churn-assets run`` on a fresh home (ingestion, silver, features and labels
  for every snapshot, then model, predictions, value, plan and summary for every snapshot with
  data), through a real Dagster instance, the DuckDB IO manager and MLflow. Step times come from
  the instance's event log.
- ``plain``: ``benchmarks.plain_pipeline``, the same work through the same core functions with no
  Dagster.
- ``spark`` (``--mode spark`` or ``--mode engines``): the orchestrated run with
  ``CHURN_ENGINE=spark``, Spark in local mode; its peak memory includes Spark's JVM.

With ``--tables-only`` both stop after the tables computed inside DuckDB (bronze, silver, features
and labels): the data path whose memory must stay flat as the data grows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from churn_assets.cli import positive_int
from benchmarks.bench_results import (
    MODES,
    SPARK_MODE,
    ModeResult,
    PeakTreeMemory,
    StepTime,
    format_results,
    spark_task_memory,
    step_times,
)

REPOSITORY = Path(__file__).resolve().parents[1]

# The generator's default mix (24 months): 232,594 transactions for 20,000 customers.
TRANSACTIONS_PER_CUSTOMER = 232_594 / 20_000


def customers_for(transactions: int) -> int:
    """Customers the generator needs for about ``transactions`` transactions over 24 months."""
    return max(200, round(transactions / TRANSACTIONS_PER_CUSTOMER))


def run_bench(
    transactions: int, modes: tuple[str, ...], workdir: Path | None, keep: bool, seed: int, echo=print,
    tables_only: bool = False,
) -> list[ModeResult]:
    """Generate, run each mode in a child process, print the table; returns the results."""
    from churn_assets.core.sample.generate import SampleConfig

    root = Path(workdir or tempfile.mkdtemp(prefix="churn-bench-")).resolve()
    landing = root / "landing"
    try:
        config = SampleConfig(customers=customers_for(transactions), seed=seed)
        generated = _reuse_sample(root, config, echo)
        if generated is None:
            generated = _generate(root, config, echo)
        results = [_run_child(mode, root, landing, echo, tables_only) for mode in modes]
    finally:
        if not keep and workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    echo(format_results(results, generated))
    if keep or workdir is not None:
        echo(f"Kept {root}")
    return results


SAMPLE_RECORD = "sample.json"


def _reuse_sample(root: Path, config, echo) -> int | None:
    """The transaction count of a sample an earlier run generated in ``root`` with the same
    customers and seed, or None; generating ten million transactions takes minutes."""
    record = root / SAMPLE_RECORD
    if not record.is_file() or not (root / "landing").is_dir():
        return None
    kept = json.loads(record.read_text())
    if (kept.get("customers"), kept.get("seed")) != (config.customers, config.seed):
        return None
    echo(f"Reusing the {kept['transactions']:,} transactions generated earlier in {root / 'landing'} "
         f"({config.customers:,} customers, seed {config.seed})")
    return int(kept["transactions"])


def _generate(root: Path, config, echo) -> int:
    """Generate the sample into ``root``/landing and its truth, and record what was made."""
    from churn_assets.core.sample.generate import generate_sample
    from churn_assets.core.sample.files import write_landing, write_truth

    landing = root / "landing"
    (root / SAMPLE_RECORD).unlink(missing_ok=True)
    shutil.rmtree(landing, ignore_errors=True)
    echo(f"Generating about {customers_to_transactions(config.customers):,} transactions ({config.customers:,} "
         f"customers, {config.months} months) into {landing} ...")
    started = time.perf_counter()
    sample = generate_sample(config)
    write_landing(sample, landing, "csv")
    write_truth(sample, root / "truth")
    generated = len(sample.transactions)
    del sample
    echo(f"  {generated:,} transactions in {time.perf_counter() - started:.1f} s (not part of the timings)")
    (root / SAMPLE_RECORD).write_text(
        json.dumps({"customers": config.customers, "seed": config.seed, "transactions": generated})
    )
    return generated


def customers_to_transactions(customers: int) -> int:
    return round(customers * TRANSACTIONS_PER_CUSTOMER)


def _run_child(mode: str, root: Path, landing: Path, echo, tables_only: bool = False) -> ModeResult:
    home = root / mode
    if home.exists():
        shutil.rmtree(home)
    _link_tree(landing, home / "landing")
    output = root / f"{mode}.json"
    env = {
        **os.environ, "CHURN_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
        "PYTHONPATH": os.pathsep.join(filter(None, (str(REPOSITORY), os.environ.get("PYTHONPATH")))),
    }
    if mode == SPARK_MODE:  # Spark's event log holds each task's peak execution memory
        events = home / "spark-events"
        events.mkdir(parents=True)
        env["PYSPARK_SUBMIT_ARGS"] = " ".join((
            "--conf spark.eventLog.enabled=true", f"--conf spark.eventLog.dir=file:{events}",
            "--conf spark.eventLog.compress=false", "--conf spark.eventLog.rolling.enabled=false", "pyspark-shell",
        ))
    echo(f"Running the {mode} pipeline ...")
    command = [sys.executable, "-m", "benchmarks.bench", "--child", mode, "--output", str(output)]
    command += ["--tables-only"] if tables_only else []
    process = subprocess.Popen(command, env=env)
    with PeakTreeMemory(process.pid) as memory:
        code = process.wait()
    if code != 0:
        raise RuntimeError(f"the {mode} pipeline failed (exit status {code}); see its output above")
    result = ModeResult.from_json(output.read_text())
    result.peak_rss_mb = memory.peak_bytes / 2**20
    for step in result.steps:
        step.peak_rss_mb = memory.peak_between([tuple(span) for span in step.spans])
    output.write_text(json.dumps(asdict(result)))  # with the peaks the child could not see
    echo(f"  {mode}: {result.seconds:.1f} s, peak memory {result.peak_rss_mb:,.0f} MB")
    if mode == SPARK_MODE:
        echo(spark_task_memory(home / "spark-events"))
    return result


def _link_tree(source: Path, target: Path) -> None:
    """Hard links where the file system allows them (no copy of a large landing folder)."""
    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


# -- child processes -------------------------------------------------------------------------


def _child(mode: str, output: Path, tables_only: bool = False) -> int:
    from churn_assets.commands import quiet_mlflow
    from churn_assets.settings import Settings

    quiet_mlflow()
    settings = Settings.from_env(engine="spark") if mode == SPARK_MODE else Settings.from_env()
    started = time.perf_counter()
    result = _plain(settings, tables_only) if mode == "plain" else _orchestrated(settings, tables_only)
    result.mode = mode
    result.seconds = time.perf_counter() - started
    output.write_text(json.dumps(asdict(result)))
    return 0


def _plain(settings, tables_only: bool = False) -> ModeResult:
    from benchmarks.plain_pipeline import run_plain_pipeline

    steps: dict[str, StepTime] = {}

    @contextmanager
    def step(name: str):  # a step run once per month adds up, as the orchestrated one does
        timed = StepTime(name, 0.0)
        started, wall_start = time.perf_counter(), time.time()
        yield timed
        total = steps.setdefault(name, StepTime(name, 0.0))
        total.seconds += time.perf_counter() - started
        total.spans.append((wall_start, time.time()))
        if timed.rows is not None:
            total.rows = (total.rows or 0) + timed.rows

    snapshot = run_plain_pipeline(settings, step, models=not tables_only)
    for timed in steps.values():
        print(f"  {timed.step}: {timed.seconds:.1f} s", flush=True)
    return ModeResult("plain", 0.0, snapshot, list(steps.values()))


def _orchestrated(settings, tables_only: bool = False) -> ModeResult:
    import dagster as dg

    from churn_assets.commands import ensure_dagster_home
    from churn_assets.lib.keys import WAREHOUSE_TABLES
    from churn_assets.runner import run_pipeline

    ensure_dagster_home(settings)
    with dg.DagsterInstance.get() as instance:
        only = WAREHOUSE_TABLES if tables_only else None
        report = run_pipeline(settings, instance, echo=lambda line: print(line, flush=True), only=only)
        if not report.ok:
            raise SystemExit("\n".join(report.failures))
        steps = step_times(instance)
    newest = max((run.last for run in report.built if run.last), default="-")
    return ModeResult("orchestrated", 0.0, newest, steps)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="time the whole pipeline on N generated transactions, orchestrated and as a plain script",
    )
    parser.add_argument("--transactions", type=positive_int, default=100_000, help="about N transactions (default 100000)")
    parser.add_argument(
        "--mode", choices=("both", *MODES, SPARK_MODE, "engines"), default="both",
        help="both: orchestrated and plain on DuckDB; engines: orchestrated on DuckDB and on Spark",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep data and results here (default: a temp folder, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default $CHURN_SEED)")
    parser.add_argument(
        "--tables-only", action="store_true",
        help="stop after the tables computed inside DuckDB (bronze, silver, features, labels)",
    )
    parser.add_argument("--child", choices=(*MODES, SPARK_MODE), help=argparse.SUPPRESS)  # one mode, in its own process
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.child:
        return _child(args.child, args.output, args.tables_only)
    from churn_assets.settings import Settings, SettingsError

    if args.workdir is not None and args.workdir.exists() and not args.workdir.is_dir():
        print(f"bench: --workdir {args.workdir} is a file, not a folder", file=sys.stderr)
        return 2
    try:
        seed = Settings.from_env().seed if args.seed is None else args.seed
    except SettingsError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    modes = {"both": MODES, "engines": ("orchestrated", SPARK_MODE)}.get(args.mode, (args.mode,))
    try:
        run_bench(args.transactions, modes, args.workdir, args.keep, seed, tables_only=args.tables_only)
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
