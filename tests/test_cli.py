"""The command line: train, info, --help, bad input → one clear error line."""
import json
import subprocess
import sys

import pytest

from graphmutual.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "graphmutual", *args], capture_output=True,
                          text=True, timeout=600)


def test_train_on_bundled_cora_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--epochs", "5", "--students", "gcn,mlp", "--seeds", "0,1",
                 "--output", str(out), "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "ensemble" in text and "gcn" in text and "±" in text
    res = json.loads((out / "results.json").read_text())
    assert res["seeds"] == [0, 1]
    assert len(res["members"]["gcn"]["test"]) == 2
    assert set(res["members"]) == {"gcn", "mlp", "ensemble", "ensemble_alw"}
    assert len(res["seconds_per_epoch"]) == 2


def test_yaml_config_and_override(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("students: gcn,gin\nmethod: dml\nepochs: 3\ndivergence: js\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--epochs", "2", "--output", str(out),
                 "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["method"] == "dml" and res["config"]["divergence"] == "js"
    assert res["config"]["epochs"] == 2 and res["epochs_run"] == [2]


@pytest.mark.parametrize("args, message", [
    (["--dataset", "coraa"], "Did you mean"),
    (["--students", "gcn,transformer"], "unknown student"),
    (["--dataset", "citeseer", "--root", "/nonexistent/root"], "nonexistent"),
    (["--seeds", "x"], "invalid seeds"),
    (["--device", "cuda:7"], "CUDA"),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path, capsys):
    code = main(["train", "--epochs", "1", "--output", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_corrupt_config_and_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [unclosed\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    bad.write_text("epochz: 3\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "unknown configuration key" in capsys.readouterr().err
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "seed0.pt").write_bytes(b"garbage")
    assert main(["train", "--epochs", "2", "--output", str(out), "--resume"]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert not (out / "results.json").exists()


def test_module_entry_point_help_and_info():
    r = run_cli("--help")
    assert r.returncode == 0 and "train" in r.stdout and "recommend" in r.stdout
    r = run_cli("train", "--help")
    assert r.returncode == 0 and "--seeds" in r.stdout and "--resume" in r.stdout
    r = run_cli("bench", "--help")  # the presets, methods and examples, one per line
    assert r.returncode == 0 and "presets: node = cora" in r.stdout
    assert "ablations = gml, gml-no-alw" in r.stdout
    assert "\n      --sweep t_min=0.5,0.75,1.0" in r.stdout
    r = run_cli("info")
    assert r.returncode == 0
    assert "torch_geometric" in r.stdout and "kernel backends" in r.stdout
    r = run_cli("train", "--dataset", "nope")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "error" in r.stderr
