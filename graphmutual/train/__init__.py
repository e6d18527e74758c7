"""Training: configuration, cohort construction, the trainer, checkpoints and export."""

from graphmutual.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from graphmutual.train.cohort import build_cohort, build_students
from graphmutual.train.config import ConfigError, TrainConfig, load_yaml_config, parse_seeds
from graphmutual.train.export import export_student, load_student
from graphmutual.train.metrics import evaluate
from graphmutual.train.trainer import Trainer, summarize

__all__ = [
    "CheckpointError",
    "ConfigError",
    "TrainConfig",
    "Trainer",
    "build_cohort",
    "build_students",
    "evaluate",
    "export_student",
    "load_checkpoint",
    "load_student",
    "load_yaml_config",
    "parse_seeds",
    "save_checkpoint",
    "summarize",
]
