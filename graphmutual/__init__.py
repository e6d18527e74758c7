"""graphmutual: collaborative (mutual) learning of graph neural networks for PyG."""

__version__ = "0.1.0"

from graphmutual.mutual import MutualEnsemble  # noqa: E402

__all__ = ["MutualEnsemble", "__version__"]
