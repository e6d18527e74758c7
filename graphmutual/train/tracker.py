"""Model selection on validation: the best epoch of every member, and early stopping."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence

from graphmutual.mutual import MutualEnsemble


@dataclass
class Best:
    """A member's best validation score, its test score at that epoch, and the epoch."""

    val: float = -math.inf
    test: float = float("nan")
    epoch: int = -1


class BestTracker:
    r"""Keeps, for every member, the test score at its best validation epoch.

    A member improves when its validation score is strictly higher than its best so far
    (the earliest epoch wins a tie).  The run stops early once ``patience`` epochs in a row
    improve no member.  For the students (not the ensembles) the weights at the best epoch
    are kept too, so the best student can be exported.

    Args:
        members: the scored members (students first, as :func:`~graphmutual.train.tasks.members`).
        patience: epochs without improvement before :attr:`should_stop` is true.
    """

    def __init__(self, members: Sequence[str], patience: int) -> None:
        if patience <= 0:
            raise ValueError(f"patience must be a positive integer (got {patience})")
        self.members: List[str] = list(members)
        self.patience = int(patience)
        self.best: Dict[str, Best] = {m: Best() for m in self.members}
        self.best_states: Dict[str, Dict[str, Any]] = {}
        self.since_best = 0

    def update(self, epoch: int, scores: Mapping[str, Mapping[str, float]],
               cohort: MutualEnsemble) -> bool:
        """Record epoch ``epoch``'s ``{member: {"val", "test"}}``; return whether any
        member improved (and copy the weights of each improved student)."""
        improved = False
        for m in self.members:
            v = scores[m]["val"]
            if v > self.best[m].val:
                self.best[m] = Best(v, scores[m]["test"], epoch)
                improved = True
                if m in cohort.names:
                    k = cohort.names.index(m)
                    self.best_states[m] = copy.deepcopy(cohort.students[k].state_dict())
        self.since_best = 0 if improved else self.since_best + 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.since_best >= self.patience

    def results(self) -> Dict[str, Dict[str, float]]:
        """``{member: {"val", "test", "epoch"}}`` (``results.json``'s per-seed layout)."""
        return {m: vars(self.best[m]).copy() for m in self.members}

    def best_student(self, students: Sequence[str]):
        """``(name, val)`` of the validation-best student that has saved weights, or
        ``None``."""
        found = None
        for name in students:
            if name in self.best_states and (found is None or self.best[name].val > found[1]):
                found = (name, self.best[name].val)
        return found

    # checkpoint layout (the keys of the trainer's checkpoint files since version 1)
    def state_dict(self) -> Dict[str, Any]:
        return {"best": {m: vars(b).copy() for m, b in self.best.items()},
                "best_states": self.best_states, "since_best": self.since_best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        best = state["best"]
        if set(best) != set(self.members):
            raise KeyError(f"members {sorted(best)} != {sorted(self.members)}")
        self.best = {m: Best(**b) for m, b in best.items()}
        self.best_states = dict(state["best_states"])
        self.since_best = int(state["since_best"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(members={self.members}, patience={self.patience})"
