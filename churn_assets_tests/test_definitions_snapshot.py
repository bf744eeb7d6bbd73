"""The asset graph as a committed snapshot: keys, dependencies with their partition mappings,
partitions, checks, groups, kinds and automation conditions. A change to the graph shows up as a
diff of ``definitions_snapshot.json``; after a deliberate change, rewrite it with
``CHURN_UPDATE_DEFINITIONS_SNAPSHOT=1 pytest churn_assets_tests/test_definitions_snapshot.py``.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import dagster as dg

from churn_assets.definitions import build_definitions
from churn_assets.settings import Settings

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def _condition(condition: dg.AutomationCondition | None) -> str | None:
    """An automation condition as its tree of labels and names, e.g. ``AND(a, NOT(b))``."""
    if condition is None:
        return None
    children = [_condition(child) for child in condition.children]
    name = condition.get_label() or condition.name
    return f"{name}({', '.join(children)})" if children else name


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return f"{type(partitions_def).__name__}(start={partitions_def.start:%Y-%m-%d}, end_offset={partitions_def.end_offset})"
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"DynamicPartitionsDefinition(name={partitions_def.name})"
    return type(partitions_def).__name__


def graph_snapshot(definitions: dg.Definitions) -> dict:
    """Every asset's spec and every check, in a stable order, as plain JSON values."""
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "partitions": _partitions(node.partitions_def),
            "deps": {
                parent.to_user_string(): repr(graph.get_partition_mapping(key, parent))
                for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string())
            },
            "automation_condition": _condition(node.automation_condition),
            "pool": node.pools and sorted(node.pools),
        }
    checks = sorted(f"{check.asset_key.to_user_string()}:{check.name}" for check in graph.asset_check_keys)
    return {"assets": assets, "checks": checks}


def test_the_asset_graph_matches_its_committed_snapshot(tmp_path):
    definitions = build_definitions(Settings(churn_home=tmp_path / "home", start_date=date(2024, 7, 1)))
    current = graph_snapshot(definitions)
    if os.environ.get("CHURN_UPDATE_DEFINITIONS_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "the asset graph changed; if that is meant, rewrite the snapshot (see this module's docstring)"
    )


def test_the_snapshot_holds_the_medallion_lineage_and_every_check():
    """The snapshot itself says what the graph must be: bronze -> silver -> ml -> gold."""
    snapshot = json.loads(SNAPSHOT.read_text())
    assets = snapshot["assets"]
    assert {a["group"] for a in assets.values()} == {"bronze", "silver", "ml", "gold"}
    for upstream, downstream in [
        ("bronze/transactions", "silver/transactions"),
        ("silver/transactions", "silver/customer_features"),
        ("silver/transactions", "silver/churn_labels"),
        ("silver/customer_features", "ml/churn_model"),
        ("silver/churn_labels", "ml/churn_model"),
        ("ml/churn_model", "ml/churn_predictions"),
        ("ml/churn_predictions", "gold/customer_value"),
        ("gold/customer_value", "gold/retention_actions"),
        ("gold/retention_actions", "gold/retention_summary"),
    ]:
        assert upstream in assets[downstream]["deps"], (upstream, downstream)
    assert "ml/churn_model:champion_gate" in snapshot["checks"]
    assert "silver/transactions:row_accounting" in snapshot["checks"]
    # a model for S reads labels only of months whose horizon can have ended by S
    assert "end_offset=-3" in assets["ml/churn_model"]["deps"]["silver/churn_labels"]


def test_the_defs_folder_yields_each_job_sensor_and_check_once(tmp_path):
    """The loader collects every Dagster object a module of ``defs/`` names: one imported twice
    would be listed twice."""
    definitions = build_definitions(Settings(churn_home=tmp_path / "home", start_date=date(2024, 7, 1)))
    for kind, names in {
        "jobs": [job.name for job in definitions.jobs],
        "sensors": [sensor.name for sensor in definitions.sensors],
        "schedules": [schedule.name for schedule in definitions.schedules],
        "checks": [str(key) for check in definitions.asset_checks for key in check.check_keys],
    }.items():
        assert sorted(names) == sorted(set(names)), f"{kind} listed more than once: {names}"
