r"""Feature transforms graphmutual's loaders apply, recorded as plain data so an exported
student can repeat them on new inputs (:func:`graphmutual.train.export.load_transform`)."""
from __future__ import annotations

import math
from typing import List, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform


class StandardizeColumns(BaseTransform):
    r"""Standardise the first :math:`n` feature columns with fixed statistics:

    .. math::
        x_{:,j} \leftarrow (x_{:,j} - \mu_j) / \sigma_j, \qquad j < n = |\mu|,

    the other columns (e.g. one-hot node labels) unchanged.  The TU loader computes
    :math:`\mu, \sigma` once over all nodes of the dataset (:meth:`fit`); the same numbers
    travel with an exported student, so new graphs are scaled exactly like the training ones.

    Args:
        mean: :math:`\mu`, one float per standardised column.
        std: :math:`\sigma`, as many positive floats (a constant column has :math:`\sigma = 1`:
            it is only centred).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"StandardizeColumns needs as many means as stds, at least one "
                             f"(got {len(self.mean)} and {len(self.std)})")
        if not all(math.isfinite(m) for m in self.mean) or not all(
                math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError("StandardizeColumns needs finite means and positive finite stds")

    @classmethod
    def fit(cls, x: Tensor, num_columns: int) -> StandardizeColumns:
        """Statistics of ``x[:, :num_columns]`` in ``x``'s dtype (population std; 0 becomes
        1), so :meth:`apply_` on ``x`` computes what ``(x - mean) / std`` in that dtype does."""
        block = x[:, :num_columns]
        std = block.std(dim=0, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
        return cls(block.mean(dim=0).tolist(), std.tolist())

    def apply_(self, x: Tensor) -> Tensor:
        """Standardise ``x`` in place and return it."""
        n = len(self.mean)
        if x.dim() != 2 or x.size(1) < n:
            raise ValueError(f"StandardizeColumns expects node features [N, >= {n}], got "
                             f"{list(x.shape)}")
        block = x[:, :n]
        block.sub_(torch.tensor(self.mean, dtype=x.dtype, device=x.device))
        block.div_(torch.tensor(self.std, dtype=x.dtype, device=x.device))
        return x

    def forward(self, data: Data) -> Data:
        data.x = self.apply_(data.x.clone())
        return data

    def as_step(self) -> dict:
        """The plain-data form an exported student records in its ``preprocess`` list."""
        return {"name": "StandardizeColumns", "kwargs": {"mean": list(self.mean),
                                                          "std": list(self.std)}}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(columns={len(self.mean)})"


#: graphmutual's own transforms a ``preprocess`` step may name (beside PyG's).
TRANSFORMS = {"StandardizeColumns": StandardizeColumns}

__all__: List[str] = ["StandardizeColumns", "TRANSFORMS"]
