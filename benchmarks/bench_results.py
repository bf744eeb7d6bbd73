"""What a benchmark mode measured: step times and rows, the process tree's peak memory, and the
table that compares the modes."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MODES = ("orchestrated", "plain")
# The orchestrated pipeline with CHURN_ENGINE=spark (Spark in local mode), against "orchestrated" on DuckDB.
SPARK_MODE = "spark"
# Step keys that are op names rather than asset keys, by the table the plain pipeline times for them.
STEP_NAMES = {"silver_transactions": "silver.transactions"}


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
    if set(MODES) <= set(by_mode):
        ratio = by_mode["orchestrated"].seconds / by_mode["plain"].seconds
        lines.append(f"orchestrated / plain: {ratio:.2f}x")
    if {"orchestrated", SPARK_MODE} <= set(by_mode):
        ratio = by_mode[SPARK_MODE].seconds / by_mode["orchestrated"].seconds
        lines.append(f"spark / duckdb (both orchestrated): {ratio:.2f}x")
    return "\n".join(lines)


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


def spark_task_memory(event_logs: Path) -> str:
    """Tasks and their peak execution memory (Spark's own accounting of sorts, aggregations and
    joins in memory), from the event logs Spark wrote under ``event_logs``."""
    peaks = []
    for log in (p for p in event_logs.rglob("*") if p.is_file()):
        with log.open(errors="replace") as handle:
            for line in handle:
                if '"SparkListenerTaskEnd"' in line:
                    metrics = json.loads(line).get("Task Metrics") or {}
                    peaks.append(metrics.get("Peak Execution Memory", 0))
    if not peaks:
        return "  Spark: no task in the event log"
    peaks.sort()
    return (
        f"  Spark: {len(peaks):,} tasks; peak execution memory per task: median {peaks[len(peaks) // 2] / 2**20:,.1f} MB, "
        f"99th percentile {peaks[int(len(peaks) * 0.99)] / 2**20:,.1f} MB, max {peaks[-1] / 2**20:,.1f} MB"
    )
