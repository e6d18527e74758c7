"""``graphmutual train`` with the fused cohort switched off (every student runs its own PyG
forward): a diagnostic of whether the fused path changes what a run learns.

    python benchmarks/reference/diag/unfused_train.py --config ... --dataset ... (train's options)
"""
import sys

from graphmutual.cli import main
from graphmutual.nn.fused import FusedCohort

FusedCohort.try_build = classmethod(lambda cls, students: None)

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
