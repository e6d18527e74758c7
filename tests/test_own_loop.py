"""The "own PyG loop" path: ``graphmutual.defaults_for`` at the top level, and the README
snippet "Inside your own PyG loop" building what ``graphmutual train`` builds."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import graphmutual

REPO = Path(__file__).resolve().parent.parent


def test_top_level_defaults_for_is_the_train_one():
    from graphmutual import defaults_for
    from graphmutual.train import defaults_for as train_defaults_for

    assert defaults_for is train_defaults_for
    assert "defaults_for" in graphmutual.__all__ and "defaults_for" in dir(graphmutual)
    assert defaults_for("cora").divergence == "balanced"


def test_top_level_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        graphmutual.not_a_name  # noqa: B018


def test_import_graphmutual_stays_light():
    """``defaults_for`` is imported on first use: ``import graphmutual`` does not pull in
    the training stack (and cannot import it in a cycle)."""
    code = ("import sys, graphmutual; assert 'graphmutual.train' not in sys.modules; "
            "graphmutual.defaults_for; assert 'graphmutual.train' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                   env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def _readme_own_loop_snippet() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Inside your own PyG loop"):text.index("## Command line")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def test_readme_own_loop_snippet_matches_the_cli():
    """Run the README snippet (2 epochs instead of ``d.epochs``) and compare its cohort,
    students, features and optimiser with what ``graphmutual train --dataset cora`` uses."""
    from graphmutual.train import TrainConfig, build_cohort, resolve_config

    code = _readme_own_loop_snippet()
    assert "range(d.epochs)" in code  # the snippet trains for the CLI's epochs
    torch.manual_seed(0)
    ns: dict = {}
    exec(code.replace("range(d.epochs)", "range(2)"), ns)
    dataset, cohort, data, opt = ns["dataset"], ns["cohort"], ns["data"], ns["opt"]
    resolved = resolve_config(TrainConfig(dataset="cora"), dataset)
    cli = build_cohort(dataset, resolved)
    assert cohort.extra_repr() == cli.extra_repr()
    assert len(cohort.students) == len(cli.students)
    for ours, theirs in zip(cohort.students, cli.students):
        assert repr(ours) == repr(theirs)
        assert [(n, p.shape) for n, p in ours.named_parameters()] == \
            [(n, p.shape) for n, p in theirs.named_parameters()]
        drop = [m.p for m in ours.modules() if isinstance(m, torch.nn.Dropout)]
        assert drop == [m.p for m in theirs.modules() if isinstance(m, torch.nn.Dropout)]
        for attr in ("heads", "dropout", "eps"):  # conv settings, e.g. GAT's heads and 0.6
            assert [getattr(c, attr, None) for c in getattr(ours, "convs", [])] == \
                [getattr(c, attr, None) for c in getattr(theirs, "convs", [])], attr
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (resolved.lr, resolved.weight_decay)
    assert resolved.normalize_features
    assert torch.allclose(data.x.sum(-1)[data.x.sum(-1) > 0], torch.ones(1))  # row-normalised
    assert ns["probs"].shape == (data.num_nodes, dataset.num_classes)
