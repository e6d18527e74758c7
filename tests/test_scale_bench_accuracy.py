"""benchmarks/scale/bench_accuracy.py: per-mode settings, incremental files and --resume."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale" / "bench_accuracy.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_accuracy", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parse_args_rejects_bad_values(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--out", "x", "--modes", "fullbatch,minibatch"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--out", "x", "--sampled-epochs", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--out", "x", "--sampled-warmup", "-1"])
    args = bench.parse_args(["--out", "x", "--epochs", "7", "--sampled-warmup", "2"])
    assert bench.setup_of("fullbatch", args, [10, 5]) == dict(epochs=7, warmup=None)
    s = bench.setup_of("sampled", args, [10, 5])
    assert s["epochs"] == 7 and s["warmup"] == 2 and s["fanout"] == [10, 5]
    args = bench.parse_args(["--out", "x", "--epochs", "7", "--sampled-epochs", "3"])
    assert bench.setup_of("sampled", args, [10, 5])["epochs"] == 3
    assert bench.setup_of("fullbatch", args, [10, 5])["epochs"] == 7


def test_resume_refuses_a_foreign_file_and_keeps_it(bench, tmp_path):
    out = tmp_path / "res"
    out.with_suffix(".json").write_text('{"rows": [{"mode": "sampled"}]}')
    with pytest.raises(SystemExit, match="not a bench_accuracy result"):
        bench.main(["--epochs", "1", "--resume", "--out", str(out)])
    assert out.with_suffix(".json").read_text() == '{"rows": [{"mode": "sampled"}]}'


def test_runs_are_written_per_run_and_resumed(bench, tmp_path, capsys):
    out = str(tmp_path / "res")
    argv = ["--seeds", "0", "--epochs", "2", "--sampled-epochs", "1", "--sampled-warmup", "0",
            "--batch-size", "1024", "--fanout", "5,5", "--resume", "--out", out]
    bench.main(argv)
    rows = json.loads(Path(out + ".json").read_text())["rows"]
    assert [(r["mode"], r["seed"], r["epochs_run"]) for r in rows] == [
        ("fullbatch", 0, 2), ("sampled", 0, 1)]
    assert rows[1]["setup"] == dict(epochs=1, warmup=0, batch_size=1024, fanout=[5, 5],
                                    seed_nodes="all")
    for r in rows:
        assert set(r["members"]) >= {"gcn", "gat", "gin"}
        assert 0.0 <= r["members"]["gcn"]["test"] <= 1.0
    md = Path(out + ".md").read_text()
    assert "fullbatch, 2 ep, warm-up 50" in md and "sampled, 1 ep, warm-up 0" in md
    assert "Val accuracy" in md and "| CPU s/run |" in md
    # the same call again runs nothing; another sampled setting adds a row
    bench.main(argv)
    assert capsys.readouterr().out.count("skipped") == 2
    bench.main(argv[:-5] + ["--modes", "sampled", "--fanout", "3,3", "--resume", "--out", out])
    rows = json.loads(Path(out + ".json").read_text())["rows"]
    assert len(rows) == 3 and rows[2]["setup"]["fanout"] == [3, 3]
    # without --resume the files start afresh; --history keeps every epoch's row
    bench.main(argv[:-3] + ["--modes", "fullbatch", "--history", "--out", out])
    assert len(json.loads(Path(out + ".json").read_text())["rows"]) == 1
    lines = Path(out + ".fullbatch-seed0.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["setup"]["epochs"] == 2
    assert [json.loads(x)["epoch"] for x in lines[1:]] == [0, 1]
    assert "val/gcn" in json.loads(lines[1])
