r"""Missing-modality experiment: hide a modality for a growing share of items.

For each fraction :math:`\rho \in \{0, 0.25, 0.5, 0.75\}`, modality ``m`` is removed (zero
features, presence mask cleared) for a random :math:`\rho` of the items — for training and
for evaluation alike, as when an item never had that modality — and each model is trained
and tested from scratch. The fusion-free model skips the missing branch for those items
(its branch falls back to the ID embedding and is excluded from the item's gate); the fused
variant sees zeros in that block of its concatenated input. Degradation is reported
relative to :math:`\rho = 0`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, Optional, Sequence

from graphmutual.recsys.data import RecData
from graphmutual.recsys.model import build_model
from graphmutual.recsys.train import RecTrainConfig, fit


def missing_modality_experiment(
    data: RecData,
    modality: str,
    fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75),
    models: Sequence[str] = ("mutual", "fused"),
    branches: Optional[Sequence[str]] = None,
    cfg: Optional[RecTrainConfig] = None,
    seed: int = 0,
    dim: int = 64,
    num_layers: int = 3,
) -> Dict[str, Dict[float, Dict[str, float]]]:
    """Train every model at every hidden fraction; ``{model: {fraction: test metrics}}``.

    Each result also holds ``"relative_ndcg@10"``: NDCG@10 divided by the model's own
    NDCG@10 at the smallest fraction.
    """
    if modality not in data.features:
        raise ValueError(f"unknown modality '{modality}'; {data.name} has {data.modalities}")
    cfg = replace(cfg or RecTrainConfig(), seed=seed)
    out: Dict[str, Dict[float, Dict[str, float]]] = {}
    for name in models:
        out[name] = {}
        for frac in fractions:
            d = data.hide_modality(modality, frac, seed=seed)
            model = build_model(name, d, dim=dim, num_layers=num_layers, branches=branches,
                                seed=seed)
            res = fit(model, d, cfg, per_branch=False)
            out[name][float(frac)] = {**res.test, "best_epoch": res.best_epoch}
        base = out[name][float(fractions[0])]["ndcg@10"]
        for r in out[name].values():
            r["relative_ndcg@10"] = r["ndcg@10"] / base if base > 0 else float("nan")
    return out
