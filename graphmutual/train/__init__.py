"""Training: configuration and its defaults, cohort construction, the training tasks, the
trainer loop, checkpoints and export.

Layers: :mod:`~graphmutual.train.defaults` (task defaults, :func:`defaults_for`, one
:func:`resolve_config`) → :mod:`~graphmutual.train.cohort` (students and the ensemble) →
:mod:`~graphmutual.train.tasks` (one object per kind of training) →
:mod:`~graphmutual.train.tracker` / :mod:`~graphmutual.train.state` (best epochs, checkpoint
state) → :mod:`~graphmutual.train.trainer` (the thin loop over seeds and epochs).
"""

from graphmutual.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from graphmutual.train.cohort import build_cohort, build_students
from graphmutual.train.config import ConfigError, TrainConfig, load_yaml_config, parse_seeds
from graphmutual.train.defaults import (
    ResolvedConfig,
    TaskDefaults,
    defaults_for,
    resolve_config,
)
from graphmutual.train.export import export_student, load_student
from graphmutual.train.metrics import evaluate
from graphmutual.train.state import TrainState
from graphmutual.train.tasks import (
    Evaluation,
    FullBatchNodeTask,
    GraphBatchTask,
    TrainingTask,
    make_task,
)
from graphmutual.train.tracker import BestTracker
from graphmutual.train.trainer import SeedRun, Trainer, summarize

__all__ = [
    "BestTracker",
    "CheckpointError",
    "ConfigError",
    "Evaluation",
    "FullBatchNodeTask",
    "GraphBatchTask",
    "ResolvedConfig",
    "SeedRun",
    "TaskDefaults",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "TrainingTask",
    "build_cohort",
    "build_students",
    "defaults_for",
    "evaluate",
    "export_student",
    "load_checkpoint",
    "load_student",
    "load_yaml_config",
    "make_task",
    "parse_seeds",
    "resolve_config",
    "save_checkpoint",
    "summarize",
]
