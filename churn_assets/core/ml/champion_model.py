"""The registered churn model as MLflow loads it: a pyfunc logged as models from code, so the
registry holds this file, the fitted pipeline and the card, and no pickled Python object.

Input: raw history rows (see ``raw_history.HISTORY_COLUMNS``); params ``as_of`` (YYYY-MM-DD,
default today) and ``actions`` (JSON catalogue, default the one at training).
"""

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from churn_assets.core.ml.champion import ChampionCard, score_history
from churn_assets.core.gold.plan import parse_actions
from churn_assets.core.silver.raw_history import ScoringError, parse_as_of


class ChurnChampion(PythonModel):
    """MLflow pyfunc: ``predict(history, params={"as_of": "YYYY-MM-DD", "actions": "<JSON>"})``."""

    def load_context(self, context) -> None:
        import duckdb
        import skops.io

        with open(context.artifacts["card"]) as file:
            self.card = ChampionCard.from_json(file.read())
        self.pipeline = skops.io.load(context.artifacts["pipeline"], trusted=list(self.card.trusted_types))
        self._database = duckdb.connect()  # each call takes a cursor of it: its own temp tables

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        params = params or {}
        try:
            actions = parse_actions(params["actions"]) if params.get("actions") else None
        except ValueError as exc:
            raise MlflowException.invalid_parameter_value(f"actions: {exc}") from None
        try:
            return score_history(
                self.pipeline, self.card, model_input, parse_as_of(params.get("as_of")), actions, self._database
            )
        except ScoringError as exc:
            raise MlflowException.invalid_parameter_value(str(exc)) from None


mlflow.models.set_model(ChurnChampion())
