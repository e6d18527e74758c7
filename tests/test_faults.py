"""Fault injection (issue 18): kills and ``--resume``, damaged run files, bad input.

Training runs go through the command line in a subprocess, so these tests check what a
user sees whatever the trainer looks like inside.  The kill is a real ``SIGKILL`` at a
chosen checkpoint, on any machine speed: a ``sitecustomize`` hook put on the subprocess's
path watches the checkpoint of one seed being moved into place and, at its n-th write,
either makes the process kill itself (``GM_TEST_KILL_AFTER``) or holds it there
(``GM_TEST_PAUSE_AFTER``) while the test sees the file appear and sends ``SIGKILL`` from
outside, as ``kill -9`` would.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from graphmutual.cli import main
from graphmutual.train import CheckpointError, export_student, load_student
from graphmutual.train.checkpoint import (
    load_checkpoint,
    load_json,
    require_keys,
    restore_module,
    save_checkpoint,
)
from graphmutual.train.export import load_transform

REPO = Path(__file__).resolve().parents[1]

KILL_HOOK = textwrap.dedent('''
    import os
    import signal
    import time

    _target = os.environ.get("GM_TEST_KILL_AFTER") or os.environ.get("GM_TEST_PAUSE_AFTER")
    if _target:  # "<file name>:<n>"
        _pause = "GM_TEST_PAUSE_AFTER" in os.environ
        _name, _n = _target.rsplit(":", 1)
        _left = [int(_n)]
        _replace = os.replace

        def _replace_then_stop(src, dst, *args, **kwargs):
            _replace(src, dst, *args, **kwargs)
            if os.path.basename(os.fspath(dst)) == _name:
                _left[0] -= 1
                if _left[0] == 0:
                    if _pause:
                        time.sleep(3600)  # until the test kills us
                    os.kill(os.getpid(), signal.SIGKILL)

        os.replace = _replace_then_stop
''')

#: Tiny runs: two seeds, a checkpoint every epoch.  Node: the seeds are put in an order
#: where the seed trained first has the validation-best student (``Runs`` checks it with an
#: uninterrupted run and swaps them when needed, so no training number is assumed here) and
#: the process kills itself in the second seed.  Graph: the test kills it from outside once
#: its first checkpoint appeared.
SCENARIOS = {
    "node": dict(dataset="cora", seeds="2,0", epochs=4, kill="second:2",
                 students="gcn,mlp", external=False, best_first=True),
    "graph": dict(dataset="mutag", seeds="1,0", epochs=3, kill="seed1.pt:1",
                  students="gin,mlp", external=True),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    hook = root / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK)
    (root / "run.yaml").write_text("checkpoint_every: 1\npatience: 1000\nhidden: 8\n")
    return root


def copy_mutag(workdir: Path) -> None:
    """MUTAG from the shared datasets (as conftest finds them), or skip the test."""
    env = os.environ.get("GRAPHMUTUAL_SHARED_DATASETS")
    shared = Path(env).expanduser() if env else REPO.parent / "shared" / "datasets"
    src = shared / "TUDataset" / "MUTAG"
    if not src.is_dir():
        pytest.skip(f"MUTAG not found under {shared} (set GRAPHMUTUAL_SHARED_DATASETS)")
    dst = workdir / "datasets" / "TUDataset" / "MUTAG"
    if not dst.exists():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("processed"))


def command(workdir: Path, scenario: str, output: Path, *extra: str, kill: str = "",
            external: bool = False):
    s = SCENARIOS[scenario]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(workdir / "hook")]))
    env.pop("GRAPHMUTUAL_DATA", None)
    if kill:
        env["GM_TEST_PAUSE_AFTER" if external else "GM_TEST_KILL_AFTER"] = kill
    args = ["train", "--dataset", s["dataset"], "--students", s["students"],
            "--seeds", s["seeds"], "--epochs", str(s["epochs"]), "--threads", "1",
            "--no-progress", "--config", str(workdir / "run.yaml"), "--output", str(output)]
    if s["dataset"] != "cora":
        args += ["--root", str(workdir / "datasets")]
    return [sys.executable, "-m", "graphmutual", *args, *extra], env


def train(workdir: Path, scenario: str, output: Path, *extra: str, kill: str = ""):
    cmd, env = command(workdir, scenario, output, *extra, kill=kill)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def kill_from_outside(workdir: Path, scenario: str, output: Path, kill: str) -> int:
    """Start a run, wait for the checkpoint named in ``kill`` to appear, ``SIGKILL`` it."""
    cmd, env = command(workdir, scenario, output, kill=kill, external=True)
    ckpt = output / "checkpoints" / kill.rsplit(":", 1)[0]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 900
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ckpt.exists(), proc.stderr.read().decode() if proc.poll() is not None else ""
        proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


class Runs(dict):
    """Per scenario, made on first use: an uninterrupted run, and a run killed then
    resumed (plus a copy of the run directory as the kill left it)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir

    def __missing__(self, name: str):
        s, workdir = SCENARIOS[name], self.workdir
        if s["dataset"] == "mutag":
            copy_mutag(workdir)
        full = workdir / f"{name}-full"
        done = train(workdir, name, full)
        assert done.returncode == 0, done.stderr
        if s.get("best_first"):
            order = s["seeds"].split(",")
            best_seed = str(best_of_all_seeds(full, name)[1])
            if best_seed != order[0]:  # train the best seed first, then kill in the other
                SCENARIOS[name] = s = dict(s, seeds=",".join(reversed(order)))
                shutil.rmtree(full)
                done = train(workdir, name, full)
                assert done.returncode == 0, done.stderr
            second = s["seeds"].split(",")[1]
            SCENARIOS[name] = s = dict(s, kill=s["kill"].replace("second", f"seed{second}.pt"))
        resumed = workdir / f"{name}-resumed"
        if s["external"]:
            assert kill_from_outside(workdir, name, resumed, s["kill"]) == -signal.SIGKILL
        else:
            killed = train(workdir, name, resumed, kill=s["kill"])
            assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert not (resumed / "results.json").exists()
        snapshot = workdir / f"{name}-killed"
        shutil.copytree(resumed, snapshot)
        again = train(workdir, name, resumed, "--resume")
        assert again.returncode == 0, again.stderr
        self[name] = (full, resumed, snapshot)
        return self[name]


@pytest.fixture(scope="module")
def runs(workdir):
    return Runs(workdir)


def members(run_dir: Path):
    return json.loads((run_dir / "results.json").read_text())["members"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_kill_and_resume_equals_an_uninterrupted_run(runs, scenario):
    full, resumed, _ = runs[scenario]
    assert members(resumed) == members(full)
    for seed in SCENARIOS[scenario]["seeds"].split(","):
        a = json.loads((full / f"seed{seed}.json").read_text())
        b = json.loads((resumed / f"seed{seed}.json").read_text())
        assert a["members"] == b["members"] and a["epochs_run"] == b["epochs_run"]


def best_of_all_seeds(run_dir: Path, scenario: str):
    """(val, seed, student) of the validation-best single student over every seed."""
    best = None
    for seed in SCENARIOS[scenario]["seeds"].split(","):
        res = json.loads((run_dir / f"seed{seed}.json").read_text())
        for name, m in res["members"].items():
            if not name.startswith("ensemble") and (best is None or m["val"] > best[0]):
                best = (m["val"], int(seed), name)
    return best


@pytest.mark.parametrize("scenario", [
    "node",
    "graph",
])
def test_best_student_after_resume_is_the_validation_best_of_all_seeds(runs, scenario):
    full, resumed, _ = runs[scenario]
    val, seed, name = best_of_all_seeds(full, scenario)
    for run_dir in (full, resumed):
        meta = torch.load(run_dir / "best_student.pt", weights_only=True)["meta"]
        assert (meta["val"], meta["seed"], meta["name"]) == (val, seed, name), run_dir.name


def test_the_node_scenario_exercises_defect_2(runs):
    """The kill falls in the second seed, after a first seed that holds the best student."""
    full, _, killed = runs["node"]
    first, second = SCENARIOS["node"]["seeds"].split(",")
    assert (killed / f"seed{first}.json").exists()
    assert not (killed / f"seed{second}.json").exists()
    assert str(best_of_all_seeds(full, "node")[1]) == first


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_reloaded_best_student_reproduces_its_validation_score(runs, workdir, scenario):
    """Issue 20: ``best_student.pt`` reloads in one call, with its preprocessing, and gives
    exactly the validation score recorded when it was trained."""
    from graphmutual.data import load_dataset

    full = runs[scenario][0]
    path = full / "best_student.pt"
    model = load_student(path).eval()
    meta = torch.load(path, weights_only=True)["meta"]
    transform = load_transform(path)
    if scenario == "node":
        ds = load_dataset("cora")
        data = transform(ds.data.clone())
        mask = ds.split(meta["seed"]).val
        with torch.no_grad():
            pred = model(data.x, data.edge_index).argmax(-1)
        acc = (pred[mask] == data.y[mask]).float().mean().item()
    else:
        from torch_geometric.loader import DataLoader

        ds = load_dataset("mutag", workdir / "datasets")  # copied by runs["graph"]
        loader = DataLoader(ds.data[ds.split(meta["seed"]).val], batch_size=256)
        hits = total = 0
        with torch.no_grad():
            for b in loader:
                b = transform(b)
                pred = model(b.x, b.edge_index, batch=b.batch).argmax(-1)
                hits += int((pred == b.y).sum())
                total += b.y.numel()
        acc = hits / total
    assert acc == pytest.approx(meta["val"], abs=1e-6)


# ---------------------------------------------------------------- damaged run files
def resume_copy(runs, tmp_path, scenario="node"):
    """A copy of the killed node run, to damage and resume in-process."""
    out = tmp_path / "run"
    shutil.copytree(runs[scenario][2], out)
    return out


def killed_seed(kind: str) -> str:
    """The node scenario's ``seed{N}.pt`` (``kind="pt"``) of the seed the kill interrupted,
    or the ``seed{N}.json`` of the seed finished before it (``kind="json"``)."""
    first, second = SCENARIOS["node"]["seeds"].split(",")
    return f"seed{second}.pt" if kind == "pt" else f"seed{first}.json"


def resume_in_process(workdir, out, capsys, *extra):
    s = SCENARIOS["node"]
    code = main(["train", "--dataset", s["dataset"], "--students", s["students"],
                 "--seeds", s["seeds"], "--epochs", str(s["epochs"]), "--threads", "1",
                 "--no-progress", "--config", str(workdir / "run.yaml"),
                 "--output", str(out), "--resume", *extra])
    return code, capsys.readouterr().err.strip()


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "weights_only" not in err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated", "pickled-code"])
def test_damaged_checkpoint_on_resume_is_one_line(runs, workdir, tmp_path, capsys, damage):
    """Issue 18 #3: a 0-byte checkpoint crashed ``--resume`` with an ``IndexError``."""
    out = resume_copy(runs, tmp_path)
    ckpt = out / "checkpoints" / killed_seed("pt")
    if damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "garbage":
        ckpt.write_bytes(b"\x00garbage" * 100)
    elif damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:2000])
    else:
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):
                return (os.mkdir, (str(marker),))

        torch.save({"cohort": Evil()}, ckpt)
    code, err = resume_in_process(workdir, out, capsys)
    assert_one_line_error(code, err, killed_seed("pt"), "delete it")
    if damage == "pickled-code":
        assert not (tmp_path / "pwned").exists()


def test_checkpoint_with_other_keys_is_one_line(runs, workdir, tmp_path, capsys):
    """Issue 18 #3: printed ``error: 'cohort'``."""
    out = resume_copy(runs, tmp_path)
    save_checkpoint({"model": {}}, out / "checkpoints" / killed_seed("pt"))
    code, err = resume_in_process(workdir, out, capsys)
    assert_one_line_error(code, err, killed_seed("pt"), "not a graphmutual training checkpoint")


def test_resume_with_other_students_is_one_line(runs, workdir, tmp_path, capsys):
    """Issue 18 #3: dumped torch's missing/unexpected-keys report."""
    out = resume_copy(runs, tmp_path)
    code, err = resume_in_process(workdir, out, capsys, "--students", "gcn,gat")
    assert_one_line_error(code, err, killed_seed("pt"), "another configuration")


def test_damaged_seed_result_is_one_line(runs, workdir, tmp_path, capsys):
    out = resume_copy(runs, tmp_path)
    (out / killed_seed("json")).write_text('{"seed": 2, "memb')
    code, err = resume_in_process(workdir, out, capsys)
    assert_one_line_error(code, err, killed_seed("json"))


@pytest.mark.parametrize("damage", ["empty", "garbage", "other-file"])
def test_damaged_best_student_is_one_line(runs, tmp_path, damage):
    path = tmp_path / "best_student.pt"
    shutil.copy(runs["node"][0] / "best_student.pt", path)
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    else:
        shutil.copy(runs["node"][0] / "checkpoints" / "seed0.pt", path)
    with pytest.raises(CheckpointError) as err:
        load_student(path)
    assert "best_student.pt" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content, needle", [
    (b"epochs: 3\nstudents: caf\xe9\n", "is not UTF-8"),
    (b"epochs: [3\n", "is not valid YAML"),
    (b"- 1\n- 2\n", "must hold a mapping"),
    (b"epochz: 3\n", "unknown configuration key"),
    (b"epochs: -3\n", "epochs must be a positive integer"),
])
def test_damaged_or_wrong_config_is_one_line(tmp_path, capsys, content, needle):
    """Issue 18 #5: a config file that is not UTF-8 gave an error without the file name."""
    cfg = tmp_path / "run.yaml"
    cfg.write_bytes(content)
    code = main(["train", "--config", str(cfg), "--output", str(tmp_path / "o"),
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert_one_line_error(code, err, needle)
    if needle != "epochs must be a positive integer" and "unknown" not in needle:
        assert "run.yaml" in err


# ------------------------------------------------------------------ bad CLI input
@pytest.mark.parametrize("args, needle", [
    (["--dataset", "coraa"], "Did you mean 'cora'"),
    (["--dataset", "ogbg-molpcba"], "not supported"),
    (["--seeds", "0"], "number of seeds must be positive"),
    (["--seeds", "1,1"], "seeds must be distinct"),
    (["--seeds", "x"], "invalid seeds"),
    (["--students", "gcn,transformer"], "unknown student 'transformer'"),
    (["--epochs", "0"], "epochs must be a positive integer"),
    (["--lr", "-1"], "lr must be > 0"),
    (["--dataset", "mutag", "--root", "/nonexistent/gm-data"], "does not exist"),
    (["--config", "/nonexistent/run.yaml"], "does not exist"),
    (["--device", "tpu:7"], "invalid device"),
    (["--device", "cuda:7"], "CUDA"),
    (["--dataset", "citeseer", "--root", "/nonexistent/root"], "nonexistent"),
])
def test_bad_cli_input_is_one_line(tmp_path, capsys, args, needle):
    code = main(["train", *args, "--output", str(tmp_path / "o"), "--no-progress"])
    assert_one_line_error(code, capsys.readouterr().err.strip(), needle)
    assert not (tmp_path / "o" / "results.json").exists()


# ------------------------------------------------------- the checkpoint helpers (unit)
def test_restore_module_reports_another_configuration_in_one_line(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    other = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Linear(5, 2),
                                torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError) as err:
        restore_module(model, other.state_dict(), tmp_path / "seed0.pt", what="cohort")
    text = str(err.value)
    assert "\n" not in text and "seed0.pt" in text and "another configuration" in text
    assert "2 unexpected weights (2.bias, 2.weight)" in text and "of another shape" in text
    with pytest.raises(CheckpointError, match="no valid cohort weights"):
        restore_module(model, {"0.weight": "not a tensor"}, "f.pt", what="cohort")
    before = model[0].weight.clone()
    restore_module(model, {k: v + 1 for k, v in model.state_dict().items()}, "f.pt")
    assert torch.equal(model[0].weight, before + 1)


def test_require_keys_and_load_json(tmp_path):
    with pytest.raises(CheckpointError, match=r"'x.pt' is not a graphmutual training "
                                              r"checkpoint \(it lacks 'cohort'\)"):
        require_keys({"model": 1}, ["cohort"], "x.pt")
    require_keys({"cohort": 1}, ["cohort"], "x.pt")
    good = tmp_path / "seed0.json"
    good.write_text('{"seed": 0}')
    assert load_json(good) == {"seed": 0}
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(CheckpointError, match="empty.json' is empty"):
        load_json(tmp_path / "empty.json")
    (tmp_path / "bad.json").write_bytes(b"\xff{")
    with pytest.raises(CheckpointError, match="bad.json' is not valid JSON"):
        load_json(tmp_path / "bad.json")


def test_run_files_respect_the_umask(tmp_path):
    """Issue 18 #5: run files were created with mode 0600."""
    old = os.umask(0o022)
    try:
        save_checkpoint({"a": torch.ones(1)}, tmp_path / "a.pt")
        os.umask(0o077)
        export_student(torch.nn.Linear(2, 2), tmp_path / "b.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.pt").stat().st_mode & 0o777 == 0o600
    assert torch.equal(load_checkpoint(tmp_path / "a.pt")["a"], torch.ones(1))
