"""Result files of the benchmarks: where they go, how they are written, what they record."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from graphmutual.bench import cli as bench_cli
from graphmutual.bench.environment import (
    command_line,
    environment,
    environment_markdown,
    load_average,
    report_header,
)
from graphmutual.bench.report import write_json, write_report, write_text

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def _load(path: Path):
    """Import a benchmark script as a module (runs only its top level)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # recsys helpers import run_recsys
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(path.parent))
    return mod


def test_benchmark_folders_say_what_each_script_is():
    loose = sorted(p.name for p in BENCHMARKS.glob("*.py"))
    assert loose == [], f"scripts belong in a purpose folder (speed/, checks/, ...): {loose}"
    for folder in ("speed", "checks", "tools", "recsys"):
        assert list((BENCHMARKS / folder).glob("*.py")), folder
    readme = (BENCHMARKS / "README.md").read_text(encoding="utf-8")
    for folder in sorted(p.name for p in BENCHMARKS.iterdir() if p.is_dir()):
        assert f"`{folder}/`" in readme, f"benchmarks/README.md does not describe {folder}/"


@pytest.mark.parametrize("script, attr, target", [
    ("speed/bench_cohort.py", "RESULTS", "benchmarks/results"),
    ("speed/bench_denormal.py", "OUT", "benchmarks/results"),
    ("speed/bench_ops.py", "RESULTS", "benchmarks/results"),
    ("speed/bench_sparse_input.py", "OUT", "benchmarks/results"),
    ("checks/check_gat_anchor.py", "OUT", "benchmarks/results/bench"),
    ("checks/check_reproducibility.py", "REPO", ""),
    ("recsys/run_recsys.py", "RESULTS", "benchmarks/results"),
])
def test_scripts_write_into_the_checked_in_results(script, attr, target):
    """A script moved between folders must still find the repository's results folder."""
    mod = _load(BENCHMARKS / script)
    assert Path(getattr(mod, attr)).resolve() == (REPO / target).resolve()


def test_bench_output_defaults_to_the_working_directory(tmp_path, monkeypatch, capsys):
    """The installed `graphmutual bench` writes under ./runs/bench of the current
    directory, never into the repository (or site-packages) tree."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRAPHMUTUAL_DATA", raising=False)
    before = sorted((BENCHMARKS / "results" / "bench").glob("*"))
    p = bench_cli.argparse.ArgumentParser()
    bench_cli.add_arguments(p)
    args = p.parse_args(["--datasets", "cora", "--methods", "independent", "--students",
                         "gcn", "--seeds", "1", "--epochs", "1", "--hidden", "8",
                         "--jobs", "0", "--no-plots", "--no-progress", "--name", "t"])
    assert bench_cli.run(args) == 0
    assert "bench: output runs/bench (the default under the working directory" in \
        capsys.readouterr().err
    out = tmp_path / "runs" / "bench"
    assert (out / "t.md").is_file() and (out / "t.json").is_file()
    assert list((out / "runs" / "cora").glob("independent-s0-*.json"))
    assert sorted((BENCHMARKS / "results" / "bench").glob("*")) == before
    header = (out / "t.md").read_text(encoding="utf-8")
    assert "- **cpu**: " in header and "- **torch**: " in header


def test_write_report_is_atomic(tmp_path):
    md, js = write_report(tmp_path / "sub" / "r", "# R\n", {"command": "x", "n": [1, 2]})
    assert md.read_text() == "# R\n" and json.loads(js.read_text())["n"] == [1, 2]
    # a payload JSON cannot hold fails before anything is replaced: the old file survives
    with pytest.raises(TypeError):
        write_json(js, {"bad": object()})
    assert json.loads(js.read_text())["n"] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["r.json", "r.md"]
    write_text(md, "new")
    assert md.read_text() == "new"


def test_environment_records_the_machine():
    info = environment({"backend": "cpp"})
    for key in ("cpu", "cores", "torch", "torch_geometric", "python", "torch threads",
                "date (UTC)"):
        assert info[key], key
    assert info["cores"] == str(os.cpu_count()) and info["backend"] == "cpp"
    assert list(info)[-1] == "backend"  # extras come last
    assert environment_markdown({"a": "1", "b": "2"}) == "- **a**: 1\n- **b**: 2"
    load = load_average()
    assert load == "n/a" or len(load.split()) == 3


def test_report_header(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/speed/bench_ops.py", "--quick"])
    text = report_header("T", {"cpu": "X"}, notes="Some notes.", load_at_start="1.00 1.00 1.00")
    lines = text.splitlines()
    assert lines[0] == "# T"
    assert "python benchmarks/speed/bench_ops.py --quick" in lines
    assert "Some notes." in lines and "- **cpu**: X" in lines
    assert any(line.startswith("Load average (1/5/15 min) at the start 1.00 1.00 1.00")
               for line in lines)


@pytest.mark.parametrize("argv, shown", [
    (["/usr/bin/graphmutual", "bench", "--quick"], "graphmutual bench --quick"),
    (["/x/graphmutual/__main__.py", "bench", "--name", "a b"],
     "python -m graphmutual bench --name 'a b'"),
    (["/x/graphmutual/bench/cli.py", "--quick"], "graphmutual bench --quick"),
    (["benchmarks/tools/merge_reports.py", "a.json"],
     "python benchmarks/tools/merge_reports.py a.json"),
])
def test_command_line(argv, shown):
    assert command_line(argv) == shown
