"""Distributed *sampled* node training (``--batch-size`` with ``--distributed``) on 2 CPU
processes (gloo), against the single-process :class:`~graphmutual.train.sampled.SampledNodeTask`.

One launch of two worker processes (this file run as a script, with the harness of
``tests/test_distributed.py``) trains every scenario once; the tests compare what the
workers wrote with single-process runs in the test process.

Tolerances, and why:

* **student-parallel** samples the *same* subgraph on every rank (the same global generator,
  advanced as in one process), so with the same seeds it reproduces the single-process
  sampled trainer **bit for bit** (students run one by one in both; dropout 0). With dropout
  each student draws its masks from a stream of ``(seed, epoch, step, student)``, so 1 and 2
  ranks agree bit for bit with each other (not with the trainer's masks).
* **data-parallel**: rank ``r`` takes its share of every global batch (the single process's
  batch of ``batch_size`` seeds, split 13/12 here) and samples its own subgraph. With
  fan-out ``-1`` (all neighbours) and students whose output at a node depends only on its
  full neighbourhood (SAGE, GAT) the seeds' logits do not depend on how the batch is split,
  and the loss weights make the ranks' mean gradient exactly the single batch's
  (CE and ALW by the rank's share of the batch's labelled seeds, mimicry and entropy by its
  share of the seeds). What is left is float summation order: per-epoch losses agree to
  1e-5 (relative) and the parameters after 6 epochs (30 steps) of Adam to 1e-4 (observed:
  1e-7 and 4e-7; Adam can amplify rounding in near-zero gradients, hence the margin). On one
  rank (``test_one_rank_sampled_is_the_trainer``) both modes are the trainer bit for bit,
  with real fan-outs (dropout 0).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_distributed import (  # noqa: E402  (the shared harness and tiny datasets)
    NODE_STUDENTS,
    TIMEOUT,
    _losses,
    _max_diff,
    _run_one_rank,
    _state,
    config,
    launch,
    node_dataset,
)

BATCH = 25  # 120 nodes: 4 batches of 25 and one of 20; 25 splits 13/12 over 2 ranks
SAMPLED = dict(batch_size=BATCH, fanout=[5, 3])
#: all neighbours, students exact on any batch split (see the module docs)
EXACT = dict(batch_size=BATCH, fanout=[-1, -1], students=["sage", "gat"])
KILL_STEP = 2  # rank 1 dies at this step of the second epoch


def _worker(out: Path) -> int:
    """The scenarios, run by every rank of the 2-process job."""
    import torch.distributed as dist

    from graphmutual.train.distributed import (
        DistributedError,
        DistributedTrainer,
        init_distributed,
    )

    torch.set_num_threads(1)
    ctx = init_distributed("gloo", TIMEOUT, "cpu")
    data = node_dataset()

    def run(name, mode, resume=False, **kw):
        return DistributedTrainer(config("node", out / name, **kw), mode, ctx, data).run(
            resume=resume)

    run("student", "student", **SAMPLED)
    run("student-dropout", "student", dropout=0.5, **SAMPLED)
    run("data", "data", **EXACT)
    run("data-sampled", "data", **SAMPLED)
    # one seed per global step: rank 1's share is always empty, most steps mimicry-only
    run("data-b1", "data", epochs=2, **{**EXACT, "batch_size": 1})
    for mode, kw in (("student", SAMPLED), ("data", EXACT)):  # stop after 3 epochs, resume
        run(f"{mode}-resume", mode, epochs=3, **kw)
        if ctx.is_main:
            (out / f"{mode}-resume" / "seed0.json").unlink()
        dist.barrier()
        run(f"{mode}-resume", mode, resume=True, **kw)

    # a rank dies in the middle of a sampled epoch: the other must end with a clear error
    class Dying(DistributedTrainer):
        def _data_step(self, cohort, opt, chunk, epoch, step):
            if ctx.rank == 1 and epoch == 1 and step == KILL_STEP:
                (out / "died_at").write_text(repr(time.time()))
                os._exit(17)
            return super()._data_step(cohort, opt, chunk, epoch, step)

    try:
        Dying(config("node", out / "killed", epochs=50, **SAMPLED), "data", ctx, data).run()
    except DistributedError as exc:
        (out / "error.json").write_text(json.dumps({"time": time.time(), "message": str(exc)}))
        return 3
    return 0


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory):
    out, codes, logs = launch(__file__, tmp_path_factory.mktemp("dist-sampled"))
    assert codes == [3, 17], "workers failed:\n" + "\n".join(log[-3000:] for log in logs)
    return out


def _single(tmp_path, name, **kw):
    """The single-process Trainer's sampled run of the same configuration."""
    from graphmutual.train import Trainer
    from graphmutual.train.sampled import SampledNodeTask

    trainer = Trainer(config("node", tmp_path / name, **kw), node_dataset())
    assert isinstance(trainer.task, SampledNodeTask)
    trainer.run()
    return tmp_path / name


def test_student_parallel_sampled_is_the_trainer(sampled_run, tmp_path):
    single = _single(tmp_path, "ref", **SAMPLED)
    ref, got = _state(single), _state(sampled_run / "student")
    assert _max_diff(ref["cohort"], got["cohort"]) == 0.0
    assert _losses(ref) == _losses(got)
    assert (single / "log_seed0.csv").read_text() == \
        (sampled_run / "student" / "log_seed0.csv").read_text()
    res = json.loads((sampled_run / "student" / "results.json").read_text())
    assert res["members"] == json.loads((single / "results.json").read_text())["members"]
    assert res["distributed"]["mode"] == "student" and res["distributed"]["world_size"] == 2


def test_student_parallel_sampled_with_dropout_matches_one_rank(sampled_run, tmp_path):
    _run_one_rank(config("node", tmp_path / "one", dropout=0.5, **SAMPLED), "student",
                  node_dataset())
    one, two = _state(tmp_path / "one"), _state(sampled_run / "student-dropout")
    assert _max_diff(one["cohort"], two["cohort"]) == 0.0
    assert _losses(one) == _losses(two)


def test_data_parallel_sampled_matches_the_trainer(sampled_run, tmp_path):
    ref, got = _state(_single(tmp_path, "ref", **EXACT)), _state(sampled_run / "data")
    for a, b in zip(_losses(ref), _losses(got), strict=True):
        assert sorted(a) == sorted(b)
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(a[k])), k
    assert _max_diff(ref["cohort"], got["cohort"]) < 1e-4  # observed: 4e-7
    # the alw/* columns are logged in the data-parallel run too
    cols = (sampled_run / "data" / "log_seed0.csv").read_text().splitlines()[0].split(",")
    assert "alw/tau/sage" in cols and "alw/weight/gat" in cols


def test_data_parallel_with_empty_shares_matches_the_trainer(sampled_run, tmp_path):
    """A global batch of one seed: one rank's share is empty (it contributes no gradient,
    ALW's included, but takes part in every all-reduce); still the single-process run."""
    kw = {**EXACT, "batch_size": 1}
    ref = _state(_single(tmp_path, "ref", epochs=2, **kw))
    got = _state(sampled_run / "data-b1")
    for a, b in zip(_losses(ref), _losses(got), strict=True):
        assert sorted(a) == sorted(b)
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(a[k])), k
    assert _max_diff(ref["cohort"], got["cohort"]) < 1e-4


def test_data_parallel_with_real_fanout_learns(sampled_run):
    """Each rank samples its own subgraphs (fan-out 5,3): no single-process twin, but a
    run that learns, with exact evaluation of all members."""
    res = json.loads((sampled_run / "data-sampled" / "results.json").read_text())
    assert res["epochs_run"] == [6] and res["distributed"]["world_size"] == 2
    hist = _state(sampled_run / "data-sampled")["history"]
    assert hist[-1]["loss/ce"] < hist[0]["loss/ce"]


@pytest.mark.parametrize("mode", ["student", "data"])
def test_sampled_resume_continues_the_run(sampled_run, mode):
    whole, resumed = _state(sampled_run / mode), _state(sampled_run / f"{mode}-resume")
    assert resumed["epoch"] == whole["epoch"] == 5
    assert _max_diff(whole["cohort"], resumed["cohort"]) == 0.0
    assert _losses(whole) == _losses(resumed)


def test_dead_rank_during_a_sampled_epoch_ends_the_job(sampled_run):
    err = json.loads((sampled_run / "error.json").read_text())
    died = float((sampled_run / "died_at").read_text())
    assert "rank 0/2" in err["message"] and "another rank probably died" in err["message"]
    assert err["time"] - died < TIMEOUT + 5
    assert not (sampled_run / "killed" / "results.json").exists()


@pytest.mark.parametrize("mode,kw", [("student", dict(students=NODE_STUDENTS)),
                                     ("data", dict(students=["sage", "gat"]))])
def test_one_rank_sampled_is_the_trainer(tmp_path, mode, kw):
    """On one rank both modes sample, shuffle and step exactly as the trainer does."""
    single = _single(tmp_path, "ref", epochs=3, **{**SAMPLED, **kw})
    _run_one_rank(config("node", tmp_path / "one", epochs=3, **{**SAMPLED, **kw}), mode,
                  node_dataset())
    ref, got = _state(single), _state(tmp_path / "one")
    assert _max_diff(ref["cohort"], got["cohort"]) == 0.0
    assert _losses(ref) == _losses(got)
    assert (single / "log_seed0.csv").read_text() == \
        (tmp_path / "one" / "log_seed0.csv").read_text()


def test_entry_point_passes_batch_size_and_fanout():
    from graphmutual.train.distributed import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(
        ["--mode", "data", "--batch-size", "64", "--fanout", "10,5", "--students", "gcn,gat"]))
    assert (cfg.batch_size, cfg.fanout, cfg.students) == (64, [10, 5], ["gcn", "gat"])


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    sys.exit(_worker(Path(sys.argv[2])))
