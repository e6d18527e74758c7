"""The documentation's claims, checked against the code (the full build is ``tox -e docs``).

* every ``graphmutual ...`` command line in README, docs, tutorials, ``benchmarks/`` and the
  result files parses with the real argument parser (inline fragments: every option exists);
* every file path they name (result tables, benchmark scripts, configs) exists;
* every Python snippet in README and docs compiles, and its ``graphmutual`` imports work;
* every public module has an API page that documents all its exports;
* the benchmark pages are generated from ``benchmarks/results`` at build time.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import re
import shlex
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
BENCHMARKS = REPO / "benchmarks"
TUTORIALS = sorted((DOCS / "tutorials").glob("tutorial_*.py"))
PUBLIC = ["graphmutual", "graphmutual.mutual", "graphmutual.nn", "graphmutual.data",
          "graphmutual.train", "graphmutual.ops", "graphmutual.recsys"]


def _prose_files() -> List[Path]:
    """Every file a reader follows commands or paths from."""
    files = [REPO / "README.md", *sorted(DOCS.glob("*.rst")), *sorted(DOCS.glob("api/*.rst")),
             *TUTORIALS, *sorted(BENCHMARKS.glob("*.md")), BENCHMARKS / "reproduce.sh"]
    files += sorted(p for p in (BENCHMARKS / "results").rglob("*.md")
                    if "runs" not in p.relative_to(BENCHMARKS / "results").parts[:-1])
    return [f for f in files if f.is_file()]


PROSE = _prose_files()


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# ------------------------------------------------------------------------ command lines
_PREFIXES = ("graphmutual ", "python -m graphmutual ")
_INLINE = re.compile(r"``([^`]+)``|`([^`]+)`")


def _logical_lines(path: Path) -> Iterator[str]:
    """Lines with ``\\`` continuations joined; shell and tutorial comment markers, ``$ ``
    prompts and reproduce.sh's ``$BENCH`` expanded away."""
    text = path.read_text(encoding="utf-8")
    bench = re.search(r'^BENCH="([^"]+)"', text, re.M)
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if path.suffix in (".py", ".sh"):
            line = line.lstrip("#").strip()
        line = line.removeprefix("$ ")
        if bench:
            line = line.replace("$BENCH", bench.group(1))
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        yield buf + line
        buf = ""


def _looks_like_cli(line: str) -> bool:
    """``graphmutual train ...`` or ``graphmutual --version``, not prose that starts with
    the word (``graphmutual needs Python ...``) or program output (``graphmutual 0.1.0``)."""
    try:
        words = _argv(line)
    except ValueError:  # unbalanced quotes: prose
        return False
    return bool(words) and (words[0].startswith("-") or words[0] in _COMMANDS)


def _command_lines(path: Path) -> Iterator[Tuple[str, bool]]:
    """``(command, complete)``: whole lines that are commands (complete) and inline code
    spans that start like one (possibly a fragment such as ``graphmutual train --config``)."""
    for line in _logical_lines(path):
        for part in line.split("&&"):
            part = part.strip()
            if part.startswith(_PREFIXES) and (path.suffix == ".sh" or _looks_like_cli(part)):
                yield part, True
        for m in _INLINE.finditer(line):
            span = (m.group(1) or m.group(2)).strip()
            if span.startswith(_PREFIXES) and span != line.strip():
                yield span, False


def _argv(command: str) -> List[str]:
    tokens = shlex.split(command, comments=True)
    return tokens[3:] if tokens[:3] == ["python", "-m", "graphmutual"] else tokens[1:]


def _subcommands() -> List[str]:
    from graphmutual.cli import build_parser

    return list(_subparsers(build_parser()))


@pytest.fixture(scope="module")
def cli_parser() -> argparse.ArgumentParser:
    from graphmutual.cli import build_parser

    return build_parser()


def _subparsers(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _parse_error(parser: argparse.ArgumentParser, argv: List[str]) -> str:
    """argparse's complaint about ``argv`` ('' when it parses; ``--help`` counts as parsing)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                return err.getvalue().strip().splitlines()[-1]
    return ""


def _fragment_error(parser: argparse.ArgumentParser, argv: List[str]) -> str:
    """For an inline fragment: the subcommand exists and so does every ``--option``."""
    if not argv:
        return ""
    subs = _subparsers(parser)
    sub = argv[0].rstrip(".,;:")
    if sub.startswith("-"):
        known, rest = parser._option_string_actions, argv
    elif sub in subs:
        known, rest = subs[sub]._option_string_actions, argv[1:]
    else:
        return f"unknown command {sub!r} (choose from {', '.join(subs)})"
    bad = [a.split("=")[0] for a in rest
           if a.startswith("--") and a.split("=")[0].rstrip(".,;:") not in known]
    return f"unknown option(s) {bad}" if bad else ""


_COMMANDS = _subcommands()


def test_commands_are_found():
    """The collector sees the commands of README, docs, tutorials and reproduce.sh."""
    found = {_rel(p) for p in PROSE for _ in _command_lines(p)}
    for name in ("README.md", "docs/quickstart.rst", "benchmarks/reproduce.sh",
                 "docs/tutorials/tutorial_05_recommendation.py",
                 "benchmarks/results/bench/node.md"):
        assert name in found, name


@pytest.mark.parametrize("path", PROSE, ids=_rel)
def test_quoted_commands_parse(path, cli_parser):
    """A documented or recorded command runs with today's CLI: complete command lines
    parse with ``graphmutual``'s own parser; inline fragments name existing options."""
    problems = []
    for command, complete in _command_lines(path):
        if "..." in command or "<" in command or "|" in command:  # placeholders, pipes
            continue
        argv = _argv(command)
        error = (_parse_error(cli_parser, argv) if complete
                 else _fragment_error(cli_parser, argv))
        if error:
            problems.append(f"{command!r}: {error}")
    assert not problems, f"{_rel(path)}:\n  " + "\n  ".join(problems)


def test_fragment_checks_catch_bad_commands(cli_parser):
    """The checks above can fail."""
    assert _parse_error(cli_parser, ["bench", "--no-such-option"])
    assert _parse_error(cli_parser, ["nosuchcommand"])
    assert not _parse_error(cli_parser, ["train", "--help"])
    assert _fragment_error(cli_parser, ["bench", "--sweepp", "x"])
    assert _fragment_error(cli_parser, ["trian"])
    assert not _fragment_error(cli_parser, ["train", "--config"])


# --------------------------------------------------------------------------- file paths
_PATH = re.compile(r"(?<![\w/.-])((?:benchmarks/|results/)[\w./*{},<>\[\]-]*)")


def _expand(ref: str) -> List[str]:
    """``results/x_cpu.{md,json}`` -> both names."""
    m = re.search(r"\{([^}]*)\}", ref)
    if not m:
        return [ref]
    return [ref[:m.start()] + alt + ref[m.end():] for alt in m.group(1).split(",")]


def _referenced_paths(path: Path) -> Iterator[str]:
    text = path.read_text(encoding="utf-8")
    for m in _PATH.finditer(text):
        ref = m.group(1).rstrip(".,-")
        if not any(ch in ref for ch in "<>[]"):  # placeholders: recsys_<suite>.md
            yield from _expand(ref)


def _exists(ref: str, source: Path) -> bool:
    bases = [REPO, BENCHMARKS] if ref.startswith("results/") else [REPO]
    if source.is_relative_to(BENCHMARKS / "results"):  # links inside a results README
        bases.append(source.parent)
    for base in bases:
        target = base / ref
        if "*" in ref and list(base.glob(ref)):
            return True
        if target.exists() or list(target.parent.glob(target.name + ".*")):  # a stem
            return True
    return False


SOURCES = PROSE + sorted((REPO / "graphmutual").rglob("*.py")) + sorted(BENCHMARKS.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_referenced_files_exist(path):
    """Result tables, scripts and configs named in prose, docstrings and comments exist
    (after the benchmarks/ re-layout, an old path fails here). A benchmark script may name
    the results it *writes* before they are checked in."""
    writes = path.suffix == ".py" and path.is_relative_to(BENCHMARKS)
    missing = sorted({ref for ref in _referenced_paths(path)
                      if not ref.endswith("/") and not _exists(ref, path)
                      and "NAME" not in ref
                      and not (writes and ref.startswith(("benchmarks/results", "results/")))})
    assert not missing, f"{_rel(path)} names files that do not exist: {missing}"


def test_results_readme_lists_existing_tables():
    """Every table the results README describes is checked in, and vice versa."""
    folder = BENCHMARKS / "results" / "bench"
    text = (folder / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w.-]+\.md)`", text))
    missing = sorted(n for n in named
                     if not (folder / n).is_file() and not (BENCHMARKS / n).is_file())
    assert not missing, f"results/bench/README.md names missing tables: {missing}"
    unlisted = sorted(p.name for p in folder.glob("*.md")
                      if p.name != "README.md" and p.name not in named)
    assert not unlisted, f"tables not described in results/bench/README.md: {unlisted}"


def test_path_check_can_fail(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("see `benchmarks/bench_suite.py` and benchmarks/results/{a,b}.md\n")
    refs = list(_referenced_paths(doc))
    assert refs == ["benchmarks/bench_suite.py", "benchmarks/results/a.md",
                    "benchmarks/results/b.md"]
    assert not any(_exists(r, doc) for r in refs)
    assert _exists("results/bench/node.md", doc)


# ------------------------------------------------------------------------ code snippets
def _markdown_python(text: str) -> Iterator[str]:
    yield from re.findall(r"```python\n(.*?)```", text, re.S)


def _rst_python(text: str) -> Iterator[str]:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(\s*)\.\. (?:code-block|code|sourcecode):: python\s*$", line) or \
            re.match(r"(\s*)\.\. plot::\s*$", line)
        if not m:
            continue
        indent, body = len(m.group(1)), []
        for nxt in lines[i + 1:]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            body.append(nxt)
        body = [b for b in body if not re.match(r"\s*:\w[\w-]*:", b)]  # directive options
        yield textwrap.dedent("\n".join(body))


SNIPPETS = [(p, i, code) for p in [REPO / "README.md", *sorted(DOCS.glob("*.rst")),
                                   *sorted(DOCS.glob("api/*.rst"))]
            for i, code in enumerate((_markdown_python if p.suffix == ".md" else _rst_python)(
                p.read_text(encoding="utf-8")))]


def test_snippets_are_found():
    assert {_rel(p) for p, _, _ in SNIPPETS} >= {"README.md", "docs/index.rst"}


@pytest.mark.parametrize("path, index, code", SNIPPETS,
                         ids=[f"{_rel(p)}#{i}" for p, i, _ in SNIPPETS])
def test_python_snippets_compile_and_import(path, index, code):
    """Each snippet is valid Python, and the graphmutual names it imports exist."""
    tree = ast.parse(code, filename=f"{_rel(path)} snippet {index}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("graphmutual"):
            mod = importlib.import_module(node.module)
            missing = [a.name for a in node.names
                       if not hasattr(mod, a.name) and a.name != "*"]
            assert not missing, f"{node.module} has no {missing}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("graphmutual"):
                    importlib.import_module(alias.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "graphmutual":
            assert hasattr(importlib.import_module("graphmutual"), node.attr), node.attr


# ------------------------------------------------------------------ tutorials, API pages
@pytest.fixture(scope="module")
def ext():
    sys.path.insert(0, str(DOCS))
    try:
        yield importlib.import_module("_ext.generated_pages")
    finally:
        sys.path.remove(str(DOCS))


def test_seven_tutorials():
    assert len(TUTORIALS) == 7, [p.name for p in TUTORIALS]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_structure(path):
    """Each tutorial compiles, says what it teaches, its prerequisites and time, and where
    to go next; it limits torch to one thread (the docs build machine is shared)."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    compile(tree, str(path), "exec")
    doc = ast.get_docstring(tree)
    assert doc and doc.splitlines()[1].startswith("==="), "sphinx-gallery needs a title"
    for needle in ("**What you learn:**", "**Prerequisites:**", "**Time:**"):
        assert needle in doc, f"{path.name}: docstring lacks {needle}"
    assert "# Where next" in text, f"{path.name}: no 'Where next' section"
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and n.func.attr == "set_num_threads"]
    assert calls and all(isinstance(c.args[0], ast.Constant) and c.args[0].value == 1
                         for c in calls), f"{path.name}: torch.set_num_threads(1) missing"


@pytest.mark.parametrize("module", PUBLIC + ["graphmutual.stats"])
def test_every_public_module_has_an_api_page(module):
    pages = " ".join(p.read_text(encoding="utf-8") for p in (DOCS / "api").glob("*.rst"))
    assert f".. automodule:: {module}\n" in pages
    importlib.import_module(module)


@pytest.mark.parametrize("module", PUBLIC[1:])
def test_api_pages_cover_all_exports(ext, module):
    """Every exported name exists and is documented: on the hand-written page or by the
    generated include (which picks up exports added later)."""
    mod = importlib.import_module(module)
    short = module.split(".")[-1]
    page = (DOCS / "api" / f"{short}.rst").read_text(encoding="utf-8")
    assert f".. include:: ../generated/api/{short}_members.inc" in page
    assert not [n for n in mod.__all__ if not hasattr(mod, n)], f"{module}.__all__ is stale"
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


def test_benchmark_pages_cover_result_folders(ext, tmp_path, monkeypatch):
    """Tables in results/<folder>/ (bench/, reference/, ...) get pages too, README first;
    run caches and plots do not."""
    res = tmp_path / "results"
    for folder in ("bench", "bench/runs", "bench/plots", "reference"):
        (res / folder).mkdir(parents=True)
    (res / "ops.md").write_text("# Ops\n")
    (res / "bench" / "node.md").write_text("# Node\n")
    (res / "bench" / "README.md").write_text("# Results\n")
    (res / "bench" / "runs" / "x.md").write_text("# not a table\n")
    (res / "reference" / "tu.md").write_text("no title\n")
    monkeypatch.setattr(ext, "RESULTS", res)
    monkeypatch.setattr(ext, "OUT", tmp_path / "out")
    names = ext.generate_benchmark_pages()
    assert names == ["generated/benchmarks/ops", "generated/benchmarks/bench/README",
                     "generated/benchmarks/bench/node", "generated/benchmarks/reference/tu"]
    page = (tmp_path / "out" / "benchmarks" / "bench" / "node.md").read_text()
    assert "{include} ../../../../benchmarks/results/bench/node.md" in page
    assert (tmp_path / "out" / "benchmarks" / "reference" / "tu.md").read_text().startswith(
        "# reference/tu\n")
    toc = (tmp_path / "out" / "benchmarks_list.inc").read_text()
    assert ":caption: benchmarks/results/bench/" in toc and "generated/benchmarks/ops" in toc
    (res / "bench" / "node.md").unlink()
    ext.generate_benchmark_pages()
    assert not (tmp_path / "out" / "benchmarks" / "bench" / "node.md").exists()
