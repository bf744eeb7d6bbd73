"""churn_assets: raw e-commerce transactions to a budget-constrained retention plan, as Dagster assets."""

__version__ = "0.1.0"
