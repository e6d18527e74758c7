"""The checkpoint state of one seed: weights, optimiser, tracker, history and RNG states.

Written atomically every ``checkpoint_every`` epochs by the trainer; restoring it and the
random-number generators continues a killed run to the same result as an uninterrupted one
on the CPU.  The file layout (its keys) is unchanged since the first version, so older runs
resume.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

from graphmutual.mutual import MutualEnsemble
from graphmutual.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from graphmutual.train.tracker import BestTracker

#: The keys of a seed checkpoint.
KEYS = frozenset({"cohort", "optimizer", "best", "best_states", "history", "train_seconds",
                  "epoch", "since_best", "rng"})


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally switch torch to deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_state() -> Dict[str, Any]:
    """All generator states as tensors and plain containers (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(gauss)],
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss_next],
    }


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore the generator states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss_next))


@dataclass
class TrainState:
    """What a seed's loop carries from epoch to epoch besides the cohort and optimiser.

    Args:
        tracker: the best-epoch tracker.
        history: one row per finished epoch (``epoch``, ``loss/*``, ``val/*``, ...).
        train_seconds: the training time of each epoch (evaluation excluded).
        epoch: the last finished epoch (``-1`` before the first).
    """

    tracker: BestTracker
    history: List[Dict[str, Any]] = field(default_factory=list)
    train_seconds: List[float] = field(default_factory=list)
    epoch: int = -1

    @property
    def next_epoch(self) -> int:
        return self.epoch + 1

    def save(self, path: Path, cohort: MutualEnsemble,
             optimizer: torch.optim.Optimizer) -> None:
        """Write the state, the cohort, the optimiser and the RNG states to ``path``."""
        save_checkpoint({"cohort": cohort.state_dict(), "optimizer": optimizer.state_dict(),
                         **self.tracker.state_dict(), "history": self.history,
                         "train_seconds": self.train_seconds, "epoch": self.epoch,
                         "rng": rng_state()}, path)

    def restore(self, path: Path, cohort: MutualEnsemble,
                optimizer: torch.optim.Optimizer) -> None:
        """Load ``path`` into this state, ``cohort``, ``optimizer`` and the generators.

        Raises:
            CheckpointError: one line naming ``path`` when the file is unreadable, is not a
                seed checkpoint, or was written for another cohort or configuration.
        """
        state = load_checkpoint(path)
        missing = sorted(KEYS - set(state))
        if missing:
            raise CheckpointError(
                f"checkpoint '{path}' is not a graphmutual training checkpoint (it lacks "
                f"{', '.join(missing)}); delete it or choose another --output")
        try:
            cohort.load_state_dict(state["cohort"])
            optimizer.load_state_dict(state["optimizer"])
            self.tracker.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"checkpoint '{path}' was written for another configuration of the cohort "
                f"({first[:160]}); resume with the settings of that run (same students, "
                "hidden width, layers), or delete it to start over") from None
        self.history = list(state["history"])
        self.train_seconds = list(state["train_seconds"])
        self.epoch = int(state["epoch"])
        set_rng_state(state["rng"])
