"""A real ``churn-assets dev`` (webserver and daemon) on a free loopback port, and its GraphQL API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveDagster:
    """``churn-assets --home HOME dev --port PORT`` as a user starts it, stopped with its process group."""

    def __init__(self, home: Path, env: dict[str, str], log_path: Path):
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "churn_assets.cli", "--home", str(home), "dev", "--port", str(self.port)],
            env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_until_serving(self, timeout: float = 180) -> None:
        def serving():
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                    return response.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False
        wait_for(serving, timeout, "the webserver to answer", self)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise AssertionError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def wait_for(condition: Callable[[], object], timeout: float, what: str, live: LiveDagster | None = None, every: float = 2.0):
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if live is not None and live.process.poll() is not None:
            raise AssertionError(f"dagster dev exited with {live.process.returncode}:\n{live.log_text()[-4000:]}")
        time.sleep(every)
    tail = f"\n--- dagster dev output (tail) ---\n{live.log_text()[-4000:]}" if live else ""
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}{tail}")


ASSETS_QUERY = """
query {
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    isPartitioned
    assetMaterializations(limit: 1) { runId partition }
    assetChecksOrError {
      ... on AssetChecks {
        checks {
          name
          blocking
          executionForLatestMaterialization { status evaluation { severity } }
        }
      }
    }
  }
}
"""

MATERIALIZATIONS_QUERY = """
query {
  assetNodes {
    assetKey { path }
    assetMaterializations(limit: 5000) {
      runId
      partition
      metadataEntries { label ... on TextMetadataEntry { text } ... on BoolMetadataEntry { boolValue } }
    }
  }
}
"""

RUNS_QUERY = """
query {
  runsOrError(limit: 1000) {
    ... on Runs { results { runId status jobName tags { key value } } }
  }
}
"""


def materializations(live: LiveDagster) -> dict[str, list[dict]]:
    """Every materialization (run id, partition, metadata) by asset key as ``a/b``, newest first."""
    nodes = live.graphql(MATERIALIZATIONS_QUERY)["assetNodes"]
    return {"/".join(n["assetKey"]["path"]): n["assetMaterializations"] for n in nodes}


def asset_nodes(live: LiveDagster) -> dict[str, dict]:
    """Every asset node by its key as ``a/b``."""
    return {"/".join(n["assetKey"]["path"]): n for n in live.graphql(ASSETS_QUERY)["assetNodes"]}
