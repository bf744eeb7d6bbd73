"""What to run next, as Dagster decides it: the stale partitions and the runs that build them.

``stale_partitions`` evaluates the assets' own automation conditions on the instance, exactly as
the automation sensor does in the daemon (the conditions keep no cursor, so both get the same
answer). ``plan_runs`` turns that answer into runs. Dagster executes a run over one partition key
or one key range; its backfill daemon splits a request into such runs itself, but only inside the
daemon, so the split is written out here: contiguous ranges, in the asset graph's order, with
assets of the same ranges in one run.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from churn_assets.lib.automation import AUTOMATED


@dataclass(frozen=True)
class RunPlan:
    """One run: these assets over one partition range (``first`` .. ``last``; None when unpartitioned)."""

    keys: tuple[dg.AssetKey, ...]
    first: str | None = None
    last: str | None = None

    def describe(self) -> str:
        names = ", ".join(k.to_user_string() for k in self.keys)
        if self.first is None:
            return names
        return f"{names} for {self.first}" if self.first == self.last else f"{names} for {self.first} .. {self.last}"


def stale_partitions(definitions: dg.Definitions, instance: dg.DagsterInstance) -> dict[dg.AssetKey, list]:
    """{asset key: partition keys to build (``[None]`` for an unpartitioned asset)}, per the
    automation conditions, in the asset graph's order."""
    result = dg.evaluate_automation_conditions(defs=definitions, instance=instance, asset_selection=AUTOMATED)
    graph = definitions.resolve_asset_graph()
    stale = {}
    for key in graph.toposorted_asset_keys:
        requested = result.get_requested_partitions(key)
        if requested:
            partitions = graph.get(key).partitions_def
            order = {k: i for i, k in enumerate(partitions.get_partition_keys())} if partitions else {}
            stale[key] = sorted(requested, key=lambda k: order.get(k, -1))
    return stale


def plan_runs(stale: dict[dg.AssetKey, list], definitions: dg.Definitions) -> list[RunPlan]:
    """Runs that build ``stale`` in dependency order: each asset's partitions as contiguous ranges,
    and consecutive assets with the same ranges in the same runs (a month's model through its plan
    is one run; a backfill of twenty months too)."""
    graph = definitions.resolve_asset_graph()
    groups: list[tuple[list[dg.AssetKey], list[tuple[str | None, str | None]]]] = []
    for key, partitions in stale.items():
        ranges = _ranges(graph.get(key).partitions_def, partitions)
        if groups and groups[-1][1] == ranges:
            groups[-1][0].append(key)
        else:
            groups.append(([key], ranges))
    return [RunPlan(tuple(keys), first, last) for keys, ranges in groups for first, last in ranges]


def _ranges(partitions_def, keys: list) -> list[tuple[str | None, str | None]]:
    """``keys`` as (first, last) runs of consecutive partitions of ``partitions_def``."""
    if partitions_def is None:
        return [(None, None)]
    position = {k: i for i, k in enumerate(partitions_def.get_partition_keys())}
    return [(span[0], span[-1]) for span in consecutive_spans(keys, position)]


def consecutive_spans(keys: list[str], position: dict[str, int]) -> list[list[str]]:
    """``keys`` (in order) split where they skip a partition: a run takes one partition key or one
    key range (the split the backfill daemon makes, which headless runs have to make themselves)."""
    spans: list[list[str]] = []
    for key in keys:
        if spans and position[key] == position[spans[-1][-1]] + 1:
            spans[-1].append(key)
        else:
            spans.append([key])
    return spans
