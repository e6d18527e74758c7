"""Tests of the ``recommend`` sub-command through ``add_arguments`` / ``run``."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import torch

from graphmutual.recsys import cli
from graphmutual.train import ConfigError

SHARED = Path(os.environ.get("GRAPHMUTUAL_SHARED_DATASETS", "")
              or Path(__file__).resolve().parents[2] / "shared" / "datasets")
needs_data = pytest.mark.skipif(not (SHARED / "lfm2k-multimodal").is_dir(),
                                reason="shared Last.fm datasets not available")


def parse(*argv: str) -> argparse.Namespace:
    return cli.add_arguments(argparse.ArgumentParser(prog="recommend")).parse_args(list(argv))


def test_defaults_and_help():
    args = parse()
    assert args.dataset == "lfm2k-multimodal" and args.model == "mutual"
    assert args.top == 10 and args.user is None
    text = cli.add_arguments(argparse.ArgumentParser(prog="recommend")).format_help()
    for opt in ("--dataset", "--root", "--model", "--epochs", "--seeds", "--device",
                "--output", "--user", "--top"):
        assert opt in text
    with pytest.raises(SystemExit):
        parse("--dataset", "movielens")


def test_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="lfm2k-multimodal"):
        cli.run(parse("--root", str(tmp_path)))
    with pytest.raises(ConfigError, match="seeds"):
        cli.run(parse("--seeds", "a,b"))
    with pytest.raises(ConfigError, match="top"):
        cli.run(parse("--top", "0"))
    with pytest.raises(ConfigError, match="--device: invalid device 'gpu'"):
        cli.run(parse("--device", "gpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            cli.run(parse("--device", "cuda:0"))


def test_seeds_follow_graphmutual_train(monkeypatch, tmp_path):
    """``--seeds 3`` runs seeds 0-2 (as ``graphmutual train``); ``3,`` runs seed 3."""
    seen = []

    def stop(name, root, seed, **kw):
        seen.append(seed)
        raise FileNotFoundError("stop here")

    monkeypatch.setattr(cli, "load_dataset", stop)
    for text, first in (("3", 0), ("3,", 3), ("1", 0)):
        with pytest.raises(FileNotFoundError):
            cli.run(parse("--seeds", text, "--root", str(tmp_path)))
        assert seen[-1] == first
    assert parse().seeds == "1"


@needs_data
def test_bad_branch_and_user():
    with pytest.raises(ValueError, match="unknown lfm2k modalities"):
        cli.run(parse("--root", str(SHARED), "--branches", "whisper,image"))


@needs_data
def test_train_and_recommend(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli.run(parse("--root", str(SHARED), "--epochs", "1", "--dim", "16", "--layers", "1",
                       "--no-progress", "--threads", "2", "--batch-size", "16384",
                       "--output", str(out),
                       "--user", "2", "--top", "3"))
    assert rc == 0
    text = capsys.readouterr().out
    assert "ndcg@10" in text and "branch whisper alone" in text
    assert "top 3 artists for user 2" in text
    assert (out / "seed0" / "best.pt").is_file()
    res = json.loads((out / "results.json").read_text())
    assert "mutual" in res["table"]
    with pytest.raises(ValueError, match="unknown user"):
        cli.run(parse("--root", str(SHARED), "--epochs", "1", "--dim", "8", "--layers", "1",
                      "--no-progress", "--user", "999999"))
