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


# bad `train` input (one clear line, exit 2): tests/test_faults.py::test_bad_cli_input_is_one_line


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
    assert "\n  graphmutual bench --root DATA --datasets cora,citeseer --methods gml --sweep" \
        in r.stdout
    r = run_cli("info")
    assert r.returncode == 0
    assert "torch_geometric" in r.stdout and "kernel backends" in r.stdout
    r = run_cli("train", "--dataset", "nope")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "error" in r.stderr


def test_datasets_lists_names_tasks_and_presence(tmp_path, capsys):
    (tmp_path / "TUDataset" / "MUTAG" / "raw").mkdir(parents=True)
    (tmp_path / "TUDataset" / "MUTAG" / "raw" / "MUTAG_A.txt").write_text("1, 2\n")
    assert main(["datasets", "--root", str(tmp_path)]) == 0
    lines = {line.split()[0]: line.split()[1:5] for line in
             capsys.readouterr().out.splitlines()[2:]}
    assert lines["mutag"] == ["graph", "accuracy", "yes", "stratified"]
    assert lines["proteins"][2] == "no" and lines["cora-bundled"][2] == "bundled"
    assert lines["ogbg-molhiv"][:3] == ["graph", "rocauc", "no"]
    assert main(["datasets", "--root", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_help_lists_datasets_and_the_common_flags(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in ("cora", "ogbg-molhiv", "imdb-binary", "coauthor-cs"):
        assert name in text
    for flag in ("--batch-size", "--patience", "--layers", "--dropout", "--weight-decay",
                 "--debug"):
        assert flag in text
    # the help quotes the task defaults object, not a copy of its values
    assert "learning rate (default: node 0.01, graph 0.001)" in text


def test_training_flags_reach_the_resolved_config(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "3", "--students", "gcn,mlp", "--layers", "3",
                 "--dropout", "0.2", "--weight-decay", "0", "--patience", "1",
                 "--output", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    r = res["resolved"]
    assert (r["num_layers"], r["dropout"], r["weight_decay"], r["patience"],
            r["batch_size"]) == (3, 0.2, 0.0, 1, None)  # Cora trains full-batch
    assert r["lr"] == 0.01 and r["divergence"] == "balanced" and r["warmup"] == 50
    assert res["input_features"] == "the dataset's node features, row-normalised"
    assert "input features: the dataset's node features, row-normalised" in text
    assert res["warnings"] == []  # 3 epochs are too few to judge


def test_bugs_are_not_dressed_up_as_input_errors(monkeypatch, tmp_path, capsys):
    import graphmutual.cli as cli

    def buggy(args):
        raise KeyError("x")

    monkeypatch.setattr(cli, "cmd_train", buggy)
    assert main(["train"]) == 1
    err = capsys.readouterr().err
    assert "internal error (KeyError: 'x')" in err and "--debug" in err
    with pytest.raises(KeyError):
        main(["train", "--debug"])
    with pytest.raises(KeyError):
        main(["--debug", "train"])


def test_resume_with_other_students_or_foreign_checkpoint_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--epochs", "2", "--output", str(out), "--no-progress"]
    assert main([*base, "--students", "gcn,mlp"]) == 0
    capsys.readouterr()
    assert main([*base, "--students", "gcn,gat", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed0.json" in err and "students" in err
    (out / "seed0.json").unlink()
    assert main([*base, "--students", "gcn,gat", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed0.pt" in err and "another configuration" in err
    assert "Traceback" not in err and "Missing key" not in err


def test_featureless_graphs_say_which_input_features_were_used(tmp_dataset_copy, tmp_path,
                                                               capsys):
    root = tmp_dataset_copy("TUDataset/IMDB-BINARY")
    out = tmp_path / "run"
    assert main(["train", "--dataset", "imdb-binary", "--root", str(root), "--epochs", "1",
                 "--students", "gcn,mlp", "--hidden", "8", "--output", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    first = text.splitlines()[0]  # said before training starts
    assert first.startswith("imdb-binary: input features: ") and "one-hot degree (0.." in first
    res = json.loads((out / "results.json").read_text())
    assert first.endswith(res["input_features"])
    assert f"input features: {res['input_features']}" in text  # and after the table


def test_an_unwritable_output_is_an_input_error_not_a_bug(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["train", "--epochs", "1", "--students", "gcn,mlp", "--no-progress",
                 "--output", str(blocker / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "internal error" not in err
