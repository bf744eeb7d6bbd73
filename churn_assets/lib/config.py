"""Per-run business knobs as ``dg.Config`` on the asset that uses them.

What shapes the graph (home, start date, horizon, training months, DuckDB memory) is read once,
when the definitions load. The knobs below only change what one run computes, so each asset
takes them as run config: its defaults are the settings in force when the definitions loaded
(the environment variables), and a value set in the launchpad is the value the run uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import dagster as dg
from pydantic import Field, create_model

from churn_assets.settings import Settings

_LOADING: ContextVar[Settings | None] = ContextVar("churn_settings_while_loading", default=None)


@contextmanager
def loading_with(settings: Settings) -> Iterator[None]:
    """Make ``settings`` the ones the layers' definitions are built from while they load."""
    token = _LOADING.set(settings)
    try:
        yield
    finally:
        _LOADING.reset(token)


def settings_while_loading() -> Settings:
    """The settings the definitions load with: ``loading_with``'s, else the environment's."""
    return _LOADING.get() or Settings.from_env()


MODEL_KNOBS = (
    "model_candidates", "champion_tolerance", "max_training_rows", "decision_threshold",
    "contact_cost", "action_effect", "btyd_features", "seed",
)
PREDICTION_KNOBS = ("risk_cutoffs", "drift_psi_warning")
VALUE_KNOBS = ("value_horizon_days",)
PLAN_KNOBS = ("budget", "control_share", "actions", "effect_source", "seed")
EFFECT_KNOBS = ("effect_prior_sd", "segment_effect_sd", "actions")


def knobs_config(name: str, settings: Settings, knobs: tuple[str, ...], doc: str) -> type[dg.Config]:
    """A ``dg.Config`` class with one field per knob, typed, described and defaulting as in ``settings``."""
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    return create_model(
        name,
        __base__=dg.Config,
        __doc__=doc,
        **{
            knob: (type(getattr(settings, knob)), Field(
                default=getattr(settings, knob),
                description=f"{fields[knob].metadata['doc']} ({fields[knob].metadata['env']})",
            ))
            for knob in knobs
        },
    )


def with_knobs(settings: Settings, config: dg.Config) -> Settings:
    """``settings`` with the run's knobs; raises ``SettingsError`` naming a knob that is invalid."""
    return dataclasses.replace(settings, **config.model_dump())
