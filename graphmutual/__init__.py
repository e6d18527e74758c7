"""graphmutual: collaborative (mutual) learning of graph neural networks for PyG.

The top level holds what a user's own PyG training loop needs: the cohort,
:class:`~graphmutual.MutualEnsemble`, and :func:`~graphmutual.train.defaults_for`, the
settings ``graphmutual train`` uses on a dataset::

    from graphmutual import MutualEnsemble, defaults_for

    d = defaults_for("cora")
    cohort = MutualEnsemble(students, **d.ensemble_kwargs("gml"))
"""

from typing import Any, List

__version__ = "0.1.0"

from graphmutual.mutual import MutualEnsemble  # noqa: E402

__all__ = ["MutualEnsemble", "defaults_for", "__version__"]

#: Names re-exported from higher layers, imported on first use (PEP 562): ``import
#: graphmutual`` stays light, and the lower layers can import the package without a cycle.
_LAZY = {"defaults_for": "graphmutual.train.defaults"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'graphmutual' has no attribute '{name}'")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))
