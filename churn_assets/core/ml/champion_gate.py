"""The champion gate: when a new model version replaces the champion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class GateDecision:
    """Whether a new version becomes champion, whether the gate passed, and why, in a sentence."""

    promote: bool
    passed: bool
    reason: str

def champion_decision(
    snapshot: date, roc_auc: float, champion_snapshot: date | None, champion_roc_auc: float | None,
    tolerance: float,
) -> GateDecision:
    """The champion moves only to a version at least as new that is not worse (by more than
    ``tolerance`` ROC-AUC) on the same out-of-time validation snapshot."""
    if champion_snapshot is None or champion_roc_auc is None:
        return GateDecision(True, True, f"first champion (ROC-AUC {roc_auc:.4f})")
    if champion_snapshot > snapshot:
        return GateDecision(
            False, True,
            f"the champion was trained for the later snapshot {champion_snapshot}; it stays, "
            f"and this version serves {snapshot} only",
        )
    if roc_auc >= champion_roc_auc - tolerance:
        return GateDecision(
            True, True,
            f"ROC-AUC {roc_auc:.4f} against the champion's {champion_roc_auc:.4f} on the same "
            f"validation snapshot (tolerance {tolerance})",
        )
    return GateDecision(
        False, False,
        f"ROC-AUC {roc_auc:.4f} is worse than the champion's {champion_roc_auc:.4f} on the same "
        f"validation snapshot by more than {tolerance}; the champion is kept",
    )
