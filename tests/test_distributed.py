"""Distributed mutual learning (graphmutual.train.distributed) on 2 CPU processes (gloo).

One launch of two worker processes (this file run as a script, on 127.0.0.1 with a free
port) trains every scenario once; the tests below compare what the workers wrote with
single-process training in the test process:

* student-parallel and data-parallel, node (full batch) and graph (mini-batch) tasks, against
  :class:`graphmutual.train.Trainer` with the same seeds and data order;
* student-parallel with dropout on 2 ranks against the same code on 1 rank;
* ``resume`` after a stop equals the uninterrupted run;
* a rank that dies ends the other with a clear :class:`DistributedError`, not a hang.

Tolerances: student-parallel reproduces the single-process run bit for bit (the same
operations on the same values); data-parallel sums the loss in another order, so the
per-epoch losses agree to 1e-5 and the parameters, after a few Adam steps (which amplify
float rounding in near-zero gradients), to 2e-3.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
WORLD = 2
TIMEOUT = 60.0  # seconds a collective waits; the killed rank must be noticed well before
HANG_TIMEOUT = 2.0
NODE_STUDENTS = ["gcn", "sage", "gat"]  # 3 students over 2 ranks: uneven blocks; unfused
GRAPH_STUDENTS = ["sage", "gin"]  # sage keeps the Trainer unfused too (bit-identical check)


# ------------------------------------------------------------------ tiny datasets
def node_dataset():
    from torch_geometric.data import Data

    from graphmutual.data.dataset import GraphDataset, Split

    g = torch.Generator().manual_seed(0)
    n, c, f = 120, 3, 8
    y = torch.randint(0, c, (n,), generator=g)
    x = torch.randn(n, f, generator=g)
    x[torch.arange(n), y] += 1.5
    src = torch.randint(0, n, (3 * n,), generator=g)
    dst = torch.randint(0, n, (3 * n,), generator=g)
    ei = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    ei = torch.unique(ei[:, ei[0] != ei[1]], dim=1)
    train = torch.zeros(n, dtype=torch.bool)
    train[:31] = True  # 31 labelled nodes: unequal shards (16 + 15)
    val = torch.zeros(n, dtype=torch.bool)
    val[31:70] = True
    test = ~(train | val)
    return GraphDataset("synthetic-node", "node", Data(x=x, edge_index=ei, y=y), f, c,
                        "accuracy", splitter=lambda seed: Split(train, val, test, "fixed"))


def graph_dataset():
    from torch_geometric.data import Data, InMemoryDataset

    from graphmutual.data.dataset import GraphDataset, Split

    class Graphs(InMemoryDataset):
        def __init__(self, graphs):
            super().__init__(None)
            self._data, self.slices = self.collate(graphs)

    g = torch.Generator().manual_seed(1)
    graphs = []
    for i in range(48):
        n = int(torch.randint(5, 12, (1,), generator=g))
        label = i % 2
        x = torch.randn(n, 4, generator=g) + label
        ring = torch.arange(n)
        ei = torch.stack([torch.cat([ring, (ring + 1) % n]), torch.cat([(ring + 1) % n, ring])])
        graphs.append(Data(x=x, edge_index=ei, y=torch.tensor([label])))
    split = Split(torch.arange(32), torch.arange(32, 40), torch.arange(40, 48), "fixed")
    return GraphDataset("synthetic-graph", "graph", Graphs(graphs), 4, 2, "accuracy",
                        splitter=lambda seed: split)


def config(task: str, output: Path, **kw):
    from graphmutual.train import TrainConfig

    base = dict(dataset=f"synthetic-{task}", epochs=6, hidden=16, dropout=0.0,
                output=str(output), progress=False, checkpoint_every=3, seeds=[0])
    if task == "node":
        base.update(students=NODE_STUDENTS)
    else:
        # no batch norm in GIN: data-parallel on CPU normalises each rank's share of a batch
        # (SyncBatchNorm is GPU-only), so only a norm-free cohort can match one process
        base.update(students=GRAPH_STUDENTS, batch_size=8, num_layers=2, lr=0.01,
                    gin_norm="none")
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------------ worker
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
    data = {"node": node_dataset(), "graph": graph_dataset()}

    def run(name, mode, task, resume=False, **kw):
        cfg = config(task, out / name, **kw)
        return DistributedTrainer(cfg, mode, ctx, data[task]).run(resume=resume)

    for mode in ("student", "data"):
        for task in ("node", "graph"):
            run(f"{mode}-{task}", mode, task)
        # stop after 3 epochs, then resume to 6
        run(f"{mode}-resume", mode, "node", epochs=3)
        if ctx.is_main:
            (out / f"{mode}-resume" / "seed0.json").unlink()
        dist.barrier()
        run(f"{mode}-resume", mode, "node", resume=True)
    run("student-dropout", "student", "node", dropout=0.5)

    # a rank hangs: the other's collective times out (a group with a 2 s timeout)
    from datetime import timedelta

    from graphmutual.train import build_cohort
    from graphmutual.train.distributed import StudentParallel

    group = dist.new_group(timeout=timedelta(seconds=HANG_TIMEOUT))
    torch.manual_seed(0)
    sp = StudentParallel(build_cohort(data["node"], config("node", out)), group=group)
    (out / f"placement{ctx.rank}.json").write_text(json.dumps({
        "local": sp.local, "trainable": len(sp.local_parameters()),
        "meta": [all(p.is_meta for p in s.parameters()) for s in sp.cohort.students]}))
    if ctx.rank == 1:
        time.sleep(HANG_TIMEOUT + 3)
    t0 = time.time()
    try:
        sp(data["node"].data.x, data["node"].data.edge_index)
    except DistributedError as exc:
        if ctx.is_main:
            (out / "hang.json").write_text(json.dumps({"seconds": time.time() - t0,
                                                       "message": str(exc)}))
    dist.barrier()

    # a rank dies in the middle of training: the other must end with a clear error
    class Dying(DistributedTrainer):
        calls = 0

        def _evaluate(self, *args):
            Dying.calls += 1
            if ctx.rank == 1 and Dying.calls == 3:
                (out / "died_at").write_text(repr(time.time()))
                os._exit(17)
            return super()._evaluate(*args)

    try:
        Dying(config("node", out / "killed", epochs=50), "student", ctx, data["node"]).run()
    except DistributedError as exc:
        (out / "error.json").write_text(json.dumps({"time": time.time(), "message": str(exc)}))
        return 3
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(script: str, out: Path, world: int = WORLD):
    """Run ``script --worker out`` as ``world`` ranks on 127.0.0.1 (a free port); return
    ``(out, exit codes, logs)``."""
    port = _free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests"),
                                               os.environ.get("PYTHONPATH", "")]))
        procs.append(subprocess.Popen(
            [sys.executable, script, "--worker", str(out)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    codes, logs = [], []
    for p in procs:
        try:
            log, _ = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the distributed workers hung")
        codes.append(p.returncode)
        logs.append(log)
    return out, codes, logs


@pytest.fixture(scope="module")
def dist_run(tmp_path_factory):
    """Launch the 2-rank job once; return its output folder and exit codes."""
    return launch(__file__, tmp_path_factory.mktemp("dist"))


def _single(tmp_path, task, **kw):
    """The single-process Trainer's run of the same configuration."""
    from graphmutual.train import Trainer

    cfg = config(task, tmp_path / task, **kw)
    ds = node_dataset() if task == "node" else graph_dataset()
    Trainer(cfg, ds).run()
    return tmp_path / task


def _state(folder: Path):
    from graphmutual.train import load_checkpoint

    return load_checkpoint(folder / "checkpoints" / "seed0.pt")


def _losses(state):
    return [{k: v for k, v in row.items() if k.startswith("loss/")} for row in state["history"]]


def _max_diff(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b)
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _ok(dist_run):
    out, codes, logs = dist_run
    assert codes == [3, 17], "workers failed:\n" + "\n".join(log[-3000:] for log in logs)
    return out


# -------------------------------------------------------------------------- tests
@pytest.mark.parametrize("task", ["node", "graph"])
def test_student_parallel_matches_single_process(dist_run, tmp_path, task):
    out = _ok(dist_run)
    ref, got = _state(_single(tmp_path, task)), _state(out / f"student-{task}")
    assert _max_diff(ref["cohort"], got["cohort"]) == 0.0
    assert _losses(ref) == _losses(got)
    # the optimizer state is saved in the single-process layout (full-cohort indices)
    assert sorted(ref["optimizer"]["state"]) == sorted(got["optimizer"]["state"])
    for i, s in ref["optimizer"]["state"].items():
        assert torch.equal(s["exp_avg"], got["optimizer"]["state"][i]["exp_avg"])
    res = json.loads((out / f"student-{task}" / "results.json").read_text())
    assert {k: res["distributed"][k] for k in ("mode", "world_size", "backend")} == {
        "mode": "student", "world_size": 2, "backend": "gloo"}
    assert len(res["distributed"]["peak_rss_mib"]) == 2
    ref_res = json.loads((tmp_path / task / "results.json").read_text())
    assert res["members"] == ref_res["members"]
    # the same per-epoch log, ALW's alw/* columns included
    log = (out / f"student-{task}" / "log_seed0.csv").read_text()
    assert log == (tmp_path / task / "log_seed0.csv").read_text() and "alw/tau/" in log
    assert res["warnings"] == ref_res["warnings"]
    # rank 0 exports the validation-best student, even one another rank trained
    from graphmutual.train import load_checkpoint

    ref_best = load_checkpoint(tmp_path / task / "best_student.pt")
    got_best = load_checkpoint(out / f"student-{task}" / "best_student.pt")
    assert ref_best["meta"]["name"] == got_best["meta"]["name"]
    assert _max_diff(ref_best["state_dict"], got_best["state_dict"]) == 0.0


@pytest.mark.parametrize("task", ["node", "graph"])
def test_data_parallel_matches_single_process(dist_run, tmp_path, task):
    out = _ok(dist_run)
    ref, got = _state(_single(tmp_path, task)), _state(out / f"data-{task}")
    for a, b in zip(_losses(ref), _losses(got), strict=True):
        assert sorted(a) == sorted(b)
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(a[k])), k
    assert _max_diff(ref["cohort"], got["cohort"]) < 2e-3


def test_data_parallel_gradient_equals_single_process():
    """The shard losses' mean gradient is the full loss's gradient (2 shards, unequal)."""
    from graphmutual.train import build_cohort
    from graphmutual.train.distributed import node_shard, sharded_node_loss

    ds = node_dataset()
    cfg = config("node", Path("unused"), epochs=1)
    torch.manual_seed(0)
    cohort = build_cohort(ds, cfg).double()
    cohort.set_epoch(60)  # past the warm-up: mimicry and ALW at full weight
    data, split = ds.data, ds.split(0)
    x = data.x.double()

    def grads(loss):
        cohort.zero_grad()
        loss.backward()
        return {n: p.grad.clone() for n, p in cohort.named_parameters()}

    full = grads(cohort.loss(cohort(x, data.edge_index), data.y, split.train)["total"])
    summed = None
    for rank in range(WORLD):
        index, n_lab = node_shard(split.train, data.num_nodes, rank, WORLD)
        part = grads(sharded_node_loss(cohort, cohort(x, data.edge_index), data.y, index,
                                       n_lab, int(split.train.sum()), WORLD)["total"])
        summed = part if summed is None else {k: summed[k] + part[k] for k in part}
    assert _max_diff(full, {k: v / WORLD for k, v in summed.items()}) < 1e-12


def test_student_parallel_with_dropout_matches_one_rank(dist_run, tmp_path):
    """Per-student dropout streams make the result independent of the number of ranks."""
    out = _ok(dist_run)
    _run_one_rank(config("node", tmp_path / "one", dropout=0.5), "student", node_dataset())
    one, two = _state(tmp_path / "one"), _state(out / "student-dropout")
    assert _max_diff(one["cohort"], two["cohort"]) == 0.0
    assert _losses(one) == _losses(two)


def test_data_parallel_one_rank_with_dropout_is_the_trainer(tmp_path):
    """On one rank, data-parallel graph training draws the trainer's dropout masks."""
    _run_one_rank(config("graph", tmp_path / "one", dropout=0.5), "data", graph_dataset())
    single = _single(tmp_path, "graph", dropout=0.5)
    ref, got = _state(single), _state(tmp_path / "one")
    assert _max_diff(ref["cohort"], got["cohort"]) < 1e-6
    for a, b in zip(_losses(ref), _losses(got), strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    # the per-epoch log is written by the trainer's writer: the same columns ("epoch" first,
    # then sorted), ALW's per-student alw/tau/* and alw/weight/* included
    ref_cols = (single / "log_seed0.csv").read_text().splitlines()[0].split(",")
    cols = (tmp_path / "one" / "log_seed0.csv").read_text().splitlines()[0].split(",")
    assert cols == ref_cols and "alw/tau/sage" in cols and "alw/weight/gin" in cols


def _run_one_rank(cfg, mode: str, dataset, resume: bool = False) -> None:
    """``DistributedTrainer(cfg, mode).run()`` in this process as the only rank."""
    import torch.distributed as dist

    from graphmutual.train.distributed import DistContext, DistributedTrainer

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        ctx = DistContext(0, 1, 0, torch.device("cpu"), "gloo", TIMEOUT)
        DistributedTrainer(cfg, mode, ctx, dataset).run(resume=resume)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("mode", ["student", "data"])
def test_resume_with_other_settings_fails_with_one_line(tmp_path, mode):
    """--resume checks the checkpoint and the finished seeds' settings as the trainer does."""
    from graphmutual.train import CheckpointError
    from graphmutual.train.config import ConfigError

    out = tmp_path / "run"
    _run_one_rank(config("node", out, epochs=2, checkpoint_every=1, seeds=[0, 1]), mode,
                  node_dataset())
    assert json.loads((out / "seed0.json").read_text())["settings"]["hidden"] == 16
    # a finished seed trained with another hidden width
    with pytest.raises(ConfigError, match="trained with other settings \\(hidden\\)") as e:
        _run_one_rank(config("node", out, epochs=2, hidden=8, seeds=[0, 1]), mode,
                      node_dataset(), resume=True)
    assert "\n" not in str(e.value)
    # an interrupted seed's checkpoint of another cohort: refused before any training
    (out / "seed1.json").unlink()
    before = (out / "checkpoints" / "seed1.pt").read_bytes()
    with pytest.raises(CheckpointError, match="another configuration") as e:
        _run_one_rank(config("node", out, epochs=3, students=["gcn", "sage"], seeds=[1]),
                      mode, node_dataset(), resume=True)
    assert "\n" not in str(e.value) and "seed1.pt" in str(e.value)
    assert (out / "checkpoints" / "seed1.pt").read_bytes() == before  # nothing lost
    # the same settings resume
    _run_one_rank(config("node", out, epochs=3, seeds=[1]), mode, node_dataset(), resume=True)
    from graphmutual.train import load_checkpoint

    assert load_checkpoint(out / "checkpoints" / "seed1.pt")["epoch"] == 2


@pytest.mark.parametrize("mode", ["student", "data"])
def test_resume_continues_the_run(dist_run, mode):
    out = _ok(dist_run)
    whole, resumed = _state(out / f"{mode}-node"), _state(out / f"{mode}-resume")
    assert resumed["epoch"] == whole["epoch"] == 5
    assert _max_diff(whole["cohort"], resumed["cohort"]) == 0.0
    assert _losses(whole) == _losses(resumed)


def test_dead_rank_ends_the_job_with_a_clear_error(dist_run):
    out = _ok(dist_run)
    err = json.loads((out / "error.json").read_text())
    died = float((out / "died_at").read_text())
    assert "rank 0/2" in err["message"] and "another rank probably died" in err["message"]
    assert err["time"] - died < TIMEOUT + 5
    assert not (out / "killed" / "results.json").exists()


def test_student_parallel_keeps_only_local_students(dist_run):
    """Rank 0 holds students 0-1, rank 1 student 2; the others' weights are released."""
    out = _ok(dist_run)
    p0, p1 = (json.loads((out / f"placement{r}.json").read_text()) for r in range(WORLD))
    assert (p0["local"], p0["meta"]) == ([0, 1], [False, False, True])
    assert (p1["local"], p1["meta"]) == ([2], [True, True, False])
    assert p0["trainable"] > p1["trainable"] > 0


def test_hung_rank_times_out_with_a_clear_error(dist_run):
    out = _ok(dist_run)
    hang = json.loads((out / "hang.json").read_text())
    assert "rank 0/2" in hang["message"] and "another rank probably died or hung" in \
        hang["message"]
    assert HANG_TIMEOUT - 0.5 < hang["seconds"] < HANG_TIMEOUT + 10


@pytest.mark.slow  # ~70 s on the shared 2-core machine (two torchrun workers load Cora)
def test_torchrun_graphmutual_train(tmp_path):
    """`torchrun -m graphmutual train --distributed data` on the bundled Cora, 2 ranks."""
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "graphmutual", "train", "--distributed", "data", "--dataset", "cora",
           "--students", "gcn,mlp", "--epochs", "3", "--hidden", "8", "--threads", "1",
           "--no-progress", "--output", str(tmp_path / "run"), "--dist-timeout", "120"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["distributed"]["world_size"] == 2 and res["epochs_run"] == [3]
    assert proc.stdout.count("results written to") == 1  # rank 0 only
    assert (tmp_path / "run" / "checkpoints" / "seed0.pt").is_file()


def test_cli_distributed_needs_torchrun_and_torchrun_needs_distributed(monkeypatch, capsys):
    from graphmutual.cli import main

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    assert main(["train", "--distributed", "student", "--epochs", "1", "--no-progress"]) == 2
    assert "torchrun --standalone --nproc-per-node 2" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--epochs", "1", "--no-progress"]) == 2
    assert "add --distributed data or --distributed student" in capsys.readouterr().err


def test_partition_and_bad_input():
    from graphmutual.train.distributed import init_distributed, node_shard, partition

    assert partition(5, 2) == [[0, 1, 2], [3, 4]]
    assert partition(2, 2) == [[0], [1]]
    with pytest.raises(ValueError, match="at least one student per rank"):
        partition(1, 2)
    with pytest.raises(ValueError, match="cannot be shared"):
        node_shard(torch.tensor([True, False, False]), 3, 0, 2)
    index, n_lab = node_shard(torch.tensor([True, True, True, False, False]), 5, 1, 2)
    assert index.tolist() == [2, 4] and n_lab == 1
    if "RANK" not in os.environ:
        with pytest.raises(ValueError, match="torchrun"):
            init_distributed()


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    sys.exit(_worker(Path(sys.argv[2])))
