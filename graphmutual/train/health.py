r"""Spot a student that never learned, so it is reported rather than averaged silently.

Two signs, checked after a seed of at least :data:`MIN_EPOCHS` epochs:

* its best validation score is no better than chance -- the accuracy of always predicting
  the most frequent validation class, or a ROC-AUC of 0.5;
* its training cross-entropy never fell below :math:`0.98 \ln C`, the loss of a uniform
  guess over :math:`C` classes.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor

#: Shorter runs are not judged (a few epochs are often still at chance).
MIN_EPOCHS = 20
#: The training cross-entropy counts as stuck while it stays above this fraction of ln C.
STUCK_FRACTION = 0.98


def chance_level(metric: str, y_val: Optional[Tensor]) -> float:
    """The validation score of a constant predictor: the majority-class share of ``y_val``
    for accuracy, 0.5 for ROC-AUC."""
    if metric == "rocauc":
        return 0.5
    if y_val is None or y_val.numel() == 0:
        return float("nan")
    y = y_val.reshape(-1)
    y = y[y >= 0]
    return float(torch.bincount(y).max()) / max(int(y.numel()), 1)


def never_learned(students: Sequence[str], result: Dict[str, Any],
                  history: Sequence[Dict[str, Any]], num_classes: int, chance: float,
                  min_epochs: int = MIN_EPOCHS) -> List[str]:
    """One warning line per student of ``result`` (a seed's record) that shows a sign of
    never having learned; ``[]`` when all learned or the run is shorter than
    ``min_epochs``."""
    if len(history) < min_epochs:
        return []
    out = []
    ln_c = math.log(num_classes) if num_classes > 1 else float("nan")
    for name in students:
        val = result["members"][name]["val"]
        if math.isfinite(chance) and val <= chance + 1e-9:
            out.append(f"student '{name}' never beat chance on validation (best "
                       f"{val:.4f} <= {chance:.4f}, a constant prediction; seed "
                       f"{result['seed']})")
            continue
        ce = [row[f"loss/ce/{name}"] for row in history if f"loss/ce/{name}" in row]
        if ce and math.isfinite(ln_c) and min(ce) >= STUCK_FRACTION * ln_c:
            out.append(f"student '{name}' never learned: its training cross-entropy stayed "
                       f"at ln C = {ln_c:.3f} (lowest {min(ce):.3f} in {len(ce)} epochs; seed "
                       f"{result['seed']})")
    return out
