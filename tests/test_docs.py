"""Cheap checks of the documentation sources (the full build is ``tox -e docs``)."""
from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("tutorial_*.py"))
PUBLIC = ["graphmutual", "graphmutual.mutual", "graphmutual.nn", "graphmutual.data",
          "graphmutual.train", "graphmutual.ops", "graphmutual.recsys"]


@pytest.fixture(scope="module")
def ext():
    sys.path.insert(0, str(DOCS))
    try:
        yield importlib.import_module("_ext.generated_pages")
    finally:
        sys.path.remove(str(DOCS))


def test_six_tutorials():
    assert len(TUTORIALS) == 6, [p.name for p in TUTORIALS]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_structure(path):
    """Each tutorial says what it teaches, its prerequisites and time, and where to go next;
    it limits torch to one thread (the docs build machine is shared)."""
    text = path.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.splitlines()[1].startswith("==="), "sphinx-gallery needs a title"
    for needle in ("**What you learn:**", "**Prerequisites:**", "**Time:**"):
        assert needle in doc, f"{path.name}: docstring lacks {needle}"
    assert "# Where next" in text, f"{path.name}: no 'Where next' section"
    assert "torch.set_num_threads(1)" in text


@pytest.mark.parametrize("module", PUBLIC)
def test_every_public_module_has_an_api_page(module):
    pages = " ".join(p.read_text(encoding="utf-8") for p in (DOCS / "api").glob("*.rst"))
    assert f".. automodule:: {module}\n" in pages


@pytest.mark.parametrize("module", PUBLIC[1:])
def test_api_pages_cover_all_exports(ext, module):
    """Every exported name is documented: on the hand-written page or by the generated
    include (which picks up exports added later)."""
    mod = importlib.import_module(module)
    short = module.split(".")[-1]
    page = (DOCS / "api" / f"{short}.rst").read_text(encoding="utf-8")
    assert f".. include:: ../generated/api/{short}_members.inc" in page
    text = page + ext.api_member_directives(module, page)
    missing = [n for n in mod.__all__ if f":: {module}.{n}\n" not in text
               and not (n == "MutualEnsemble" and ":: graphmutual.MutualEnsemble\n" in text)]
    assert not missing, f"{module}: not documented: {missing}"


def test_benchmark_pages_tolerate_missing_results(ext, tmp_path, monkeypatch):
    monkeypatch.setattr(ext, "RESULTS", tmp_path / "none")
    monkeypatch.setattr(ext, "OUT", tmp_path / "out")
    assert ext.generate_benchmark_pages() == []
    assert "No result tables" in (tmp_path / "out" / "benchmarks_list.inc").read_text()


def test_benchmark_pages_include_results(ext, tmp_path, monkeypatch):
    res = tmp_path / "results"
    res.mkdir()
    (res / "a_summary.md").write_text("# Summary\n\n| a |\n|---|\n| 1 |\n")
    (res / "b.md").write_text("no heading\n")
    (res / "b.json").write_text("{}")
    monkeypatch.setattr(ext, "RESULTS", res)
    monkeypatch.setattr(ext, "OUT", tmp_path / "out")
    names = ext.generate_benchmark_pages()
    assert names == ["generated/benchmarks/a_summary", "generated/benchmarks/b"]
    b = (tmp_path / "out" / "benchmarks" / "b.md").read_text()
    assert b.startswith("# b\n") and "{include}" in b and "b.json" in b
    (res / "b.md").unlink()
    assert ext.generate_benchmark_pages() == ["generated/benchmarks/a_summary"]
    assert not (tmp_path / "out" / "benchmarks" / "b.md").exists()


def test_widen_simple_tables(ext):
    publish_doctree = pytest.importorskip("docutils.core").publish_doctree

    lines = ["====  ===", "a     b", "toolong  c", "====  ===", ""]
    ext.widen_simple_tables(lines)
    tree = publish_doctree("\n".join(lines), settings_overrides={"report_level": 5})
    assert not [n for n in tree.traverse() if n.tagname == "system_message"]
    assert tree.astext().split() == ["a", "b", "toolong", "c"]
