"""Pages generated at build time from files owned by other parts of the repository.

* ``generated/benchmarks/[<folder>/]<name>.md`` -- one page per ``benchmarks/results/*.md``
  and ``benchmarks/results/<folder>/*.md`` (``bench/``, ``reference/``, ...), which
  *includes* the result file (MyST ``include``), so the tables are never retyped and files
  that appear later are picked up by the next build;
* ``generated/benchmarks_list.inc`` -- the toctree of those pages (a sentence when there are
  none yet), included by ``benchmarks.rst``;
* ``generated/api/<module>_members.inc`` -- autodoc directives for every name in a public
  module's ``__all__`` that its hand-written page ``api/<module>.rst`` does not already
  document, so a newly exported class or function is documented without editing the docs.

Files are only rewritten when their content changes, so incremental builds stay incremental.
"""
from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = DOCS / "generated"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _title(md: Path) -> str | None:
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.strip():
            return line[2:].strip() if line.startswith("# ") else None
    return None


def _order(md: Path) -> tuple:
    # summaries (and a folder's README) first, then alphabetical
    return (0 if "summary" in md.stem or md.stem == "README" else 1, md.stem)


#: Folders under ``benchmarks/results/<group>/`` that hold data, not tables.
SKIP_DIRS = ("runs", "plots")


def _result_groups() -> list[tuple[str, list[Path]]]:
    """``("", results/*.md)`` then ``(folder, results/<folder>/*.md)`` per subfolder."""
    if not RESULTS.is_dir():
        return []
    groups = [("", sorted(RESULTS.glob("*.md"), key=_order))]
    for sub in sorted(p for p in RESULTS.iterdir() if p.is_dir() and p.name not in SKIP_DIRS):
        groups.append((sub.name, sorted(sub.glob("*.md"), key=_order)))
    return [(g, files) for g, files in groups if files]


def generate_benchmark_pages() -> list[str]:
    """Write the wrapper pages; return their docnames (relative to the docs root)."""
    out = OUT / "benchmarks"
    names: list[str] = []
    tocs: list[str] = []
    written: set[Path] = set()
    for group, files in _result_groups():
        entries = []
        for md in files:
            src_rel = Path(group, md.name).as_posix()
            up = "../" * (3 + bool(group))
            label = f"{group}/{md.stem}" if group else md.stem
            head = "" if _title(md) else f"# {label.replace('_', ' ')}\n\n"
            extra = md.with_suffix(".json")
            src = f"`benchmarks/results/{src_rel}`"
            if extra.exists():
                src += f" (raw numbers: `benchmarks/results/{Path(src_rel).with_suffix('.json')}`)"
            text = (f"{head}```{{include}} {up}benchmarks/results/{src_rel}\n```\n\n"
                    f"---\n\n*Generated from {src} at documentation build time.*\n")
            name = Path("generated", "benchmarks", group, md.stem).as_posix()
            _write(out / group / f"{md.stem}.md", text)
            written.add(out / group / f"{md.stem}.md")
            entries.append(name)
        names += entries
        caption = f"   :caption: benchmarks/results/{group}/\n" if group else ""
        # entries are relative to the *including* document (benchmarks.rst)
        tocs.append(".. toctree::\n   :maxdepth: 1\n" + caption + "\n"
                    + "".join(f"   {n}\n" for n in entries))
    if out.is_dir():
        for stale in out.rglob("*.md"):
            if stale not in written:
                stale.unlink()
    if tocs:
        toc = "\n".join(tocs)
    else:
        toc = ("*No result tables have been checked in yet* (``benchmarks/results/*.md``); "
               "they appear here at the next documentation build.\n")
    # ".inc", not ".rst": it must not be read as a document of its own
    _write(OUT / "benchmarks_list.inc", toc)
    return names


#: Public modules with an API page ``api/<last component>.rst``.
API_MODULES = ["graphmutual.mutual", "graphmutual.nn", "graphmutual.data", "graphmutual.train",
               "graphmutual.ops", "graphmutual.recsys"]

#: One-line descriptions of exported constants (their values have no docstrings).
CONSTANTS = {
    "graphmutual.data.DATASETS": "Registry of the supported datasets: canonical name → "
    "specification (family, source name, task, metric, split protocol); "
    ":func:`graphmutual.data.available_datasets` lists the names.",
    "graphmutual.mutual.METHODS": "The method presets: ``(\"independent\", \"dml\", \"gml\")``.",
    "graphmutual.mutual.PRESETS": "The defaults of each preset (``weighting`` and ``entropy``); "
    "keyword arguments given to :class:`~graphmutual.MutualEnsemble` win.",
    "graphmutual.mutual.DIVERGENCES": "Name → row-wise divergence function: ``kl``, "
    "``reverse_kl``, ``js``, ``renyi``, ``balanced``.",
    "graphmutual.nn.STUDENTS": "Name → class of the built-in students: ``gcn``, ``gat``, "
    "``gin``, ``mlp``, ``sage``.",
    "graphmutual.ops.BACKENDS": "The kernel backends in the order ``auto`` tries them.",
}


def _describe_value(value) -> str:
    if isinstance(value, dict):
        keys = ", ".join(f"``{k}``" for k in list(value)[:12])
        return f"A mapping with keys {keys}{', …' if len(value) > 12 else ''}."
    text = repr(value)
    return f"``{text if len(text) <= 120 else text[:117] + '...'}``"


def api_member_directives(module_name: str, page_text: str = "") -> str:
    """reST for every ``__all__`` name of ``module_name`` not yet documented in ``page_text``."""
    import importlib
    import inspect

    mod = importlib.import_module(module_name)
    out = []
    skipped = 0
    for name in getattr(mod, "__all__", []):
        full = f"{module_name}.{name}"
        obj = getattr(mod, name)
        if f":: {full}\n" in page_text or (
                name == "MutualEnsemble" and ":: graphmutual.MutualEnsemble\n" in page_text):
            skipped += 1
            continue
        if inspect.isclass(obj):
            out.append(f".. autoclass:: {full}\n   :members:\n")
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj) or callable(obj) and \
                hasattr(obj, "__wrapped__"):
            out.append(f".. autofunction:: {full}\n")
        elif inspect.ismodule(obj):
            out.append(f".. automodule:: {obj.__name__}\n   :no-members:\n")
        else:
            desc = CONSTANTS.get(full) or _describe_value(obj)
            out.append(f".. py:data:: {full}\n\n   {desc}\n")
    if out and skipped:  # a hand-written page: put the rest under a heading of its own
        out.insert(0, "Other exports\n-------------\n")
    return "\n".join(out)


def generate_api_members() -> None:
    for module_name in API_MODULES:
        short = module_name.rsplit(".", 1)[-1]
        page = DOCS / "api" / f"{short}.rst"
        text = page.read_text(encoding="utf-8") if page.exists() else ""
        _write(OUT / "api" / f"{short}_members.inc", api_member_directives(module_name, text)
               or "..\n   (every export is documented on the page itself)\n")


def _on_builder_inited(app) -> None:
    generate_benchmark_pages()
    generate_api_members()


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    app.connect("autodoc-process-docstring", _on_docstring)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}


def widen_simple_tables(lines: list[str]) -> None:
    """Repair reST *simple tables* whose first-column text runs into the column gap.

    docutils rejects ("Text in column margin") a row whose first cell is longer than the
    ``====`` border above it. This widens the first column of such a table, in place, by
    the overflow. Used on docstrings (``autodoc-process-docstring``) so that a one-character
    overflow in a module docstring does not fail the ``-W`` build.
    """
    i = 0
    while i < len(lines):
        border = lines[i]
        stripped = border.strip()
        if not (stripped.startswith("=") and "  " in stripped and set(stripped) <= {"=", " "}):
            i += 1
            continue
        indent = len(border) - len(border.lstrip())
        width = len(stripped.split()[0])  # first column width
        end = i + 1
        bottom_seen = 0
        while end < len(lines) and lines[end].strip():
            if lines[end].strip() == stripped:
                bottom_seen += 1
            end += 1
        if not bottom_seen:
            i += 1
            continue
        gap_col = indent + width  # where the first column's margin starts
        overflow = 0
        for line in lines[i:end]:
            if line.strip() == stripped:
                continue
            cell = line[gap_col:]
            # count non-space characters spilling into the two-space margin
            run = len(cell) - len(cell.lstrip(" ")) if cell[:1] == " " else None
            if run is None:
                spill = len(cell.split(" ", 1)[0])
                overflow = max(overflow, spill)
        if overflow:
            for j in range(i, end):
                line = lines[j]
                if line.strip() == stripped:
                    lines[j] = line[:gap_col] + "=" * overflow + line[gap_col:]
                else:
                    cell = line[gap_col:]
                    spill = len(cell.split(" ", 1)[0]) if cell[:1] not in ("", " ") else 0
                    # shift everything after the (possibly spilling) first cell right
                    lines[j] = line[:gap_col + spill] + " " * overflow + line[gap_col + spill:]
        i = end


def _on_docstring(app, what, name, obj, options, lines) -> None:
    widen_simple_tables(lines)
