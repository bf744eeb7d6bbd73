"""The silver layer: transactions and their quarantine, and the monthly features and labels, built
from the settings. Its checks and jobs are module-level objects the defs loader collects."""

import dagster as dg

# Modules, not their objects: the loader collects every Dagster object a module names.
from churn_assets.defs.silver import snapshots, transactions
from churn_assets.lib.config import settings_while_loading


@dg.definitions
def silver_layer() -> dg.Definitions:
    settings = settings_while_loading()
    return dg.Definitions(assets=[*transactions.build_silver_assets(settings), *snapshots.build_snapshot_assets(settings)])
