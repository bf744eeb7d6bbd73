"""The ingestion layer: bronze per landed source and the landing ledger, built from the settings.

The layer's other modules hold its module-level objects (the lineage checks, the ledger job, the
sensor after a failed ingestion), which the defs loader collects from them directly.
"""

import dagster as dg

# Modules, not their objects: the loader collects every Dagster object a module names.
from churn_assets.defs.ingestion import bronze, sensors
from churn_assets.lib.config import settings_while_loading


@dg.definitions
def ingestion_layer() -> dg.Definitions:
    settings = settings_while_loading()
    return dg.Definitions(
        assets=[*bronze.build_bronze_assets(settings), bronze.build_landing_ledger(settings)],
        jobs=list(bronze.ingest_jobs.values()),  # in a dict, which the loader does not look into
        sensors=[sensors.build_landing_sensor(settings)],
    )
