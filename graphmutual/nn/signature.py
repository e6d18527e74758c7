"""How a student is called: with the graph, or with node features only.

Lives in :mod:`graphmutual.nn` so that both :class:`~graphmutual.nn.GraphStudent` (a node
model inside a graph classifier) and :class:`~graphmutual.MutualEnsemble` (a cohort member)
decide it by one rule.
"""
from __future__ import annotations

import inspect

from torch import nn
from torch_geometric.nn.models import MLP as PyGMLP

#: Keyword arguments that carry the graph; a graph-free student never receives them.
GRAPH_KWARGS = ("edge_index", "edge_attr", "edge_weight", "adj_t")


def is_graph_free(student: nn.Module) -> bool:
    """Whether ``student`` takes node features only (and is called as ``student(x)``).

    In order: the student's own ``graph_free`` attribute if it has one; ``True`` for PyG's
    :class:`~torch_geometric.nn.models.MLP` (whose second argument is ``batch``, not a graph)
    and its subclasses; otherwise ``True`` when ``forward`` has no ``edge_index`` parameter,
    no ``*args`` and no second required positional parameter.
    """
    flag = getattr(student, "graph_free", None)
    if flag is not None:
        return bool(flag)
    if isinstance(student, PyGMLP):
        return True
    try:
        params = list(inspect.signature(student.forward).parameters.values())
    except (TypeError, ValueError):  # builtins, scripted modules
        return False
    if any(p.name == "edge_index" or p.kind == p.VAR_POSITIONAL for p in params):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        return False
    return all(p.default is not p.empty for p in positional[1:])


def graph_free_kwargs(student: nn.Module, kwargs: dict) -> dict:
    """The keyword arguments a graph-free student accepts (never the graph's)."""
    if not kwargs:
        return kwargs
    try:
        params = inspect.signature(student.forward).parameters
    except (TypeError, ValueError):
        return {}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    return {k: v for k, v in kwargs.items()
            if k not in GRAPH_KWARGS and (var_kw or k in params)}
