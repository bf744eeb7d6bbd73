"""The ML layer: the monthly model with its champion gate, the predictions and the retraining
schedule, built from the settings. Its job is a module-level object the defs loader collects."""

import dagster as dg

# Modules, not their objects: the loader collects every Dagster object a module names.
from churn_assets.defs.ml import model, schedules
from churn_assets.lib.config import settings_while_loading


@dg.definitions
def ml_layer() -> dg.Definitions:
    settings = settings_while_loading()
    return dg.Definitions(assets=model.build_ml_assets(settings), schedules=[schedules.build_monthly_retraining(settings)])
