"""Export a trained student so that plain PyG can reload it.

The file is a ``torch.save`` of plain data (loadable with ``weights_only=True``)::

    {"format": "graphmutual-student/1", "class": "torch_geometric.nn.models.GCN",
     "kwargs": {...}, "state_dict": {...}, "meta": {...}}

For node-level built-in students ``class`` is the PyG base class, so no graphmutual import
is needed to use the model::

    ckpt = torch.load("best_student.pt", weights_only=True)
    model = torch_geometric.nn.models.GCN(**ckpt["kwargs"])
    model.load_state_dict(ckpt["state_dict"])

Graph-level students (``GraphStudent``) are rebuilt with :func:`load_student`. When the
trainer row-normalised the node features (the node-task default), ``meta`` says so with
``"normalize_features": True``: apply :class:`torch_geometric.transforms.NormalizeFeatures`
to your inputs before calling the model.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Dict, Optional

from torch import nn

from graphmutual.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

FORMAT = "graphmutual-student/1"


def _pyg_base(module: nn.Module) -> type:
    """The PyG class that rebuilds ``module``: its first PyG base class, unless one of our
    subclasses changes the layers (defines ``init_conv``, e.g. ``GINE``) — then that one."""
    for cls in type(module).__mro__:
        if cls.__module__.startswith("torch_geometric.") or "init_conv" in vars(cls):
            return cls
    return type(module)


def export_student(student: nn.Module, path, meta: Optional[Dict[str, Any]] = None) -> None:
    """Write ``student`` (its class, constructor arguments and weights) to ``path``."""
    kwargs = getattr(student, "init_kwargs", None)
    cls = _pyg_base(student) if kwargs is not None else type(student)
    state = {
        "format": FORMAT,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "kwargs": dict(kwargs) if kwargs is not None else None,
        "state_dict": {k: v.detach().cpu() for k, v in student.state_dict().items()},
        "meta": dict(meta or {}),
    }
    save_checkpoint(state, Path(path))


def load_student(path, model: Optional[nn.Module] = None) -> nn.Module:
    """Rebuild an exported student (or load its weights into ``model``)."""
    state = load_checkpoint(path)
    if state.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not an exported graphmutual student")
    if model is None:
        if state["kwargs"] is None:
            raise CheckpointError(
                f"'{path}' holds a {state['class']} without constructor arguments; "
                "build the model yourself and pass it as `model=`"
            )
        module_name, _, cls_name = state["class"].rpartition(".")
        cls = getattr(importlib.import_module(module_name), cls_name)
        model = cls(**state["kwargs"])
    model.load_state_dict(state["state_dict"])
    return model


__all__ = ["export_student", "load_student"]
