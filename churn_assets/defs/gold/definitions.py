"""The gold layer: value, the retention plan and its summary, learned action effects, the uplift
model's validation, and the campaigns' contacts, read-outs and execution, built from the settings.
The contacts' row accounting check is a module-level object the defs loader collects."""

import dagster as dg

# Modules, not their objects: the loader collects every Dagster object a module names.
from churn_assets.defs.gold import action_effects, campaigns, retention
from churn_assets.lib.config import settings_while_loading


@dg.definitions
def gold_layer() -> dg.Definitions:
    settings = settings_while_loading()
    return dg.Definitions(assets=[
        *retention.build_gold_assets(settings), *campaigns.build_campaign_assets(settings),
        action_effects.build_action_effects(settings), action_effects.build_uplift_validation(settings),
    ])
