"""Latency of scoring one customer on demand: through the registered champion in process, behind
``mlflow models serve``, and as ``churn-assets score`` does it (warehouse read included).

Usage: python benchmarks/score_latency.py --home DIR [--customers 200] [--as-of YYYY-MM-DD] [--no-serve]

DIR is a home ``churn-assets run`` built. Customers are drawn (seeded) from the snapshot's
predictions; each one's raw history is read from the warehouse beforehand, then scored one at a
time. Prints the median and the 99th percentile in milliseconds for each path.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import duckdb
import numpy as np

from churn_assets.core.ml.on_demand import score_customer, warehouse_history
from churn_assets.settings import Settings

CHAMPION_URI = "models:/churn_model@champion"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None)
    parser.add_argument("--no-serve", action="store_true", help="skip the served endpoint")
    args = parser.parse_args()
    settings = Settings.from_env(churn_home=args.home)
    os.environ["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        as_of = args.as_of or connection.execute("select max(snapshot_date) from ml.churn_predictions").fetchall()[0][0].date()
        ids = [r[0] for r in connection.execute(
            "select customer_id from ml.churn_predictions where snapshot_date = ? order by hash(customer_id || 'seed') limit ?",
            [as_of, args.customers],
        ).fetchall()]
        histories = [warehouse_history(connection, [c]) for c in ids]
        rows = np.mean([len(h) for h in histories])
        print(f"{len(ids)} customers as of {as_of}, {rows:.1f} history rows each on average")
        report("champion pyfunc, in process", in_process(histories, as_of))
        if not args.no_serve:
            report("mlflow models serve, HTTP round trip", served(histories, as_of))
        report("churn-assets score path (warehouse read + pyfunc)", from_warehouse(connection, settings, ids, as_of))


def report(path: str, milliseconds: list[float]) -> None:
    p50, p99 = np.percentile(milliseconds, [50, 99])
    print(f"  {path}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def in_process(histories, as_of: date) -> list[float]:
    import mlflow

    model = mlflow.pyfunc.load_model(CHAMPION_URI)
    params = {"as_of": as_of.isoformat()}
    model.predict(histories[0], params=params)  # first call warms DuckDB and the pipeline
    return [_timed(lambda h=h: model.predict(h, params=params)) for h in histories]


def from_warehouse(connection, settings, ids, as_of: date) -> list[float]:
    score_customer(connection, settings, ids[0], as_of)  # loads the model once
    return [_timed(lambda c=c: score_customer(connection, settings, c, as_of)) for c in ids]


def served(histories, as_of: date) -> list[float]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", CHAMPION_URI, "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_ping(url, server)
        bodies = [
            json.dumps({"dataframe_records": json.loads(h.to_json(orient="records")), "params": {"as_of": as_of.isoformat()}}).encode()
            for h in histories
        ]
        _post(url, bodies[0])
        return [_timed(lambda b=b: _post(url, b)) for b in bodies]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _post(url: str, body: bytes) -> dict:
    request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _wait_for_ping(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"mlflow models serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise SystemExit(f"mlflow models serve did not answer {url}/ping within {timeout:.0f} s")


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    main()
