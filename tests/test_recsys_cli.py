"""Tests of the ``recommend`` sub-command through ``add_arguments`` / ``run``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from graphmutual.recsys import cli

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
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
    with pytest.raises(ValueError, match="seeds"):
        cli.run(parse("--seeds", "a,b"))
    with pytest.raises(ValueError, match="top"):
        cli.run(parse("--top", "0"))
    with pytest.raises(ValueError, match="device"):
        cli.run(parse("--device", "cuda:0"))


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
