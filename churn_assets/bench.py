"""``churn-assets bench``: the whole pipeline on N generated transactions, timed per step.

Generates the data once, then runs each mode in a child process of its own, on its own copy of
the landing folder, so each starts cold and its peak memory is its own process tree's:

- ``orchestrated``: ``churn-assets run`` on a fresh home (ingestion, silver, features and labels
  for every snapshot, then model, predictions, value, plan and summary for every snapshot with
  data), through a real Dagster instance, the DuckDB IO manager and MLflow. Step times come from
  the instance's event log.
- ``plain``: ``churn_assets.plain``, the same work through the same core functions with no Dagster.

With ``tables_only`` both stop after the tables computed inside DuckDB (bronze, silver, features
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
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

MODES = ("orchestrated", "plain")
# Step keys that are op names rather than asset keys, by the table the plain pipeline times for them.
STEP_NAMES = {"silver_transactions": "silver.transactions"}
# The generator's default mix (24 months): 232,594 transactions for 20,000 customers.
TRANSACTIONS_PER_CUSTOMER = 232_594 / 20_000


@dataclass
class StepTime:
    step: str
    seconds: float
    rows: int | None = None
    # (start, end) wall-clock times of each time the step ran, to find its peak memory
    spans: list[tuple[float, float]] = field(default_factory=list)
    peak_rss_mb: float | None = None


@dataclass
class ModeResult:
    mode: str
    seconds: float
    snapshot: str
    steps: list[StepTime] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    @classmethod
    def from_json(cls, text: str) -> ModeResult:
        raw = json.loads(text)
        raw["steps"] = [StepTime(**{**s, "spans": [tuple(x) for x in s["spans"]]}) for s in raw["steps"]]
        return cls(**raw)


class PeakTreeMemory:
    """Samples the resident memory of a process and all its descendants every ``interval`` s,
    keeping every (wall-clock time, bytes) sample so a step's peak can be read afterwards."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval, self.peak_bytes = pid, interval, 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakTreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, spans: list[tuple[float, float]]) -> float | None:
        """Peak MB of the samples taken inside any of ``spans``; None when none was."""
        inside = [b for t, b in self.samples if any(start <= t <= end for start, end in spans)]
        return max(inside) / 2**20 if inside else None

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                tree = [root, *root.children(recursive=True)]
                total = 0
                for process in tree:
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:  # a child that ended between listing and reading
                        pass
                self.peak_bytes = max(self.peak_bytes, total)
                self.samples.append((time.time(), total))
            except psutil.Error:
                return
            self._stop.wait(self.interval)


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
    env = {**os.environ, "CHURN_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    echo(f"Running the {mode} pipeline ...")
    command = [sys.executable, "-m", "churn_assets.bench", "--child", mode, "--output", str(output)]
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
    return result


def _link_tree(source: Path, target: Path) -> None:
    """Hard links where the file system allows them (no copy of a large landing folder)."""
    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def format_results(results: list[ModeResult], transactions: int) -> str:
    """Per-step table with one column per mode, totals, memory and the orchestration ratio."""
    import pandas as pd

    columns = {}
    for result in results:
        seconds = pd.Series({s.step: s.seconds for s in result.steps}, dtype=float)
        columns[f"{result.mode} s"] = seconds
    table = pd.DataFrame(columns)
    rows = {}
    for result in results:
        rows.update({s.step: s.rows for s in result.steps if s.rows is not None})
    table["rows"] = pd.Series(rows, dtype="Int64")
    for result in results:
        table[f"{result.mode} peak MB"] = pd.Series(
            {s.step: s.peak_rss_mb for s in result.steps if s.peak_rss_mb is not None}, dtype=float
        )
    lines = [
        f"\nWhole pipeline on {transactions:,} transactions ({os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB), newest snapshot "
        f"{results[0].snapshot if results else '-'}:",
        table.to_string(float_format=lambda v: f"{v:,.1f}", na_rep=""),
        "",
    ]
    for result in results:
        lines.append(
            f"{result.mode:>12}: total {result.seconds:,.1f} s, peak memory {result.peak_rss_mb:,.0f} MB, "
            f"{transactions / result.seconds:,.0f} transactions/s, {result.seconds / transactions * 1e6:.1f} s per million"
        )
    by_mode = {r.mode: r for r in results}
    if set(by_mode) == set(MODES):
        ratio = by_mode["orchestrated"].seconds / by_mode["plain"].seconds
        lines.append(f"orchestrated / plain: {ratio:.2f}x")
    return "\n".join(lines)


# -- child processes -------------------------------------------------------------------------


def _child(mode: str, output: Path, tables_only: bool = False) -> int:
    from churn_assets.cli import _quiet_mlflow
    from churn_assets.settings import Settings

    _quiet_mlflow()
    settings = Settings.from_env()
    started = time.perf_counter()
    result = _orchestrated(settings, tables_only) if mode == "orchestrated" else _plain(settings, tables_only)
    result.seconds = time.perf_counter() - started
    output.write_text(json.dumps(asdict(result)))
    return 0


def _plain(settings, tables_only: bool = False) -> ModeResult:
    from churn_assets.plain import run_plain_pipeline

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

    from churn_assets.cli import ensure_dagster_home
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


def step_times(instance) -> list[StepTime]:
    """Wall time and rows written of every step of every run in ``instance``, summed by step."""
    import dagster as dg

    seconds: dict[str, float] = {}
    rows: dict[str, int] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for record in instance.get_run_records():
        started: dict[str, float] = {}
        for entry in instance.all_logs(record.dagster_run.run_id):
            event = entry.dagster_event
            if event is None or entry.step_key is None:
                continue
            name = STEP_NAMES.get(entry.step_key, entry.step_key.replace("__", "."))
            if event.event_type == dg.DagsterEventType.STEP_START:
                started[name] = entry.timestamp
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                start = started.pop(name)
                seconds[name] = seconds.get(name, 0.0) + entry.timestamp - start
                spans.setdefault(name, []).append((start, entry.timestamp))
            elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                metadata = event.event_specific_data.materialization.metadata
                count = metadata.get("dagster/row_count") or metadata.get("dagster/partition_row_count")
                if count is not None:
                    rows[name] = rows.get(name, 0) + int(count.value)
    return [StepTime(name, value, rows.get(name), spans[name]) for name, value in seconds.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one benchmark mode, run by `churn-assets bench`")
    parser.add_argument("--child", choices=MODES, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--tables-only", action="store_true")
    args = parser.parse_args(argv)
    return _child(args.child, args.output, args.tables_only)


if __name__ == "__main__":
    sys.exit(main())
