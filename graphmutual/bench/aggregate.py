"""Aggregate cached runs into mean ± unbiased-std tables (JSON and markdown).

Mean and std follow :mod:`graphmutual.stats` (non-finite seeds left out and counted in ``n``,
unbiased std, 0 for one seed).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from graphmutual.bench.presets import settings_suffix
from graphmutual.stats import format_mean_std, mean_std

BEST = "best student"
ENSEMBLE = "ensemble"
ENSEMBLE_ALW = "ensemble_alw"


def best_student(run: Dict[str, Any]) -> Dict[str, float]:
    """The student with the highest *validation* metric of this run (never test)."""
    name = max(run["students"], key=lambda s: run["members"][s]["val"])
    return {**run["members"][name], "name": name}


def _stat(values: Sequence[float]) -> Dict[str, Any]:
    m, s, n = mean_std(values)
    return {"mean": m, "std": s, "n": n, "values": [float(v) for v in values]}


def aggregate(runs: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """Group runs by (dataset, variant) and summarise every member over seeds.

    Returns ``{"datasets": {dataset: {"metric", "task", "variants": {variant: summary}}}}``
    where a summary holds, per member (each student, ``best student`` chosen per seed on
    validation, ``ensemble`` and — with ALW — ``ensemble_alw``), test and validation
    mean/std/n and the per-seed values, plus seeds, epochs, seconds per epoch, peak memory
    and parameter counts.
    """
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["variant"]), []).append(run)
    out: Dict[str, Any] = {"datasets": {}}
    for (ds, variant), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        entry = out["datasets"].setdefault(ds, {"metric": rs[0]["metric"],
                                                "task": rs[0]["task"], "variants": {}})
        students = rs[0]["students"]
        members: Dict[str, Dict[str, Any]] = {}
        names = list(students) + [m for m in (ENSEMBLE, ENSEMBLE_ALW)
                                  if m in rs[0]["members"]]
        for m in names:
            members[m] = {part: _stat([r["members"][m][part] for r in rs])
                          for part in ("test", "val")}
        bests = [best_student(r) for r in rs]
        members[BEST] = {part: _stat([b[part] for b in bests]) for part in ("test", "val")}
        members[BEST]["chosen"] = [b["name"] for b in bests]
        rss = [r["peak_rss_mb"] for r in rs]
        entry["variants"][variant] = {
            "config": rs[0]["config"],
            "students": students,
            "seeds": [r["seed"] for r in rs],
            "epochs_max": rs[0].get("epochs_max"),
            "epochs_run": [r["epochs_run"] for r in rs],
            "seconds_per_epoch": _stat([r["seconds_per_epoch"] for r in rs]),
            "peak_rss_mb": max(rss),
            "rss_baseline_mb": max(r.get("rss_baseline_mb", float("nan")) for r in rs),
            "params": rs[0]["params"],
            "code_fingerprints": sorted({r.get("code_fingerprint", "unrecorded") for r in rs}),
            "members": members,
        }
    return out


def merge_aggregates(*aggs: Dict[str, Any]) -> Dict[str, Any]:
    """Pool the per-seed results of several :func:`aggregate` outputs into one.

    For reports whose cached runs are gone (e.g. folds 1–3 of a CV in one report, folds
    4–10 in another): each (dataset, variant) gets the union of the seeds, with mean/std
    recomputed from the per-seed values. The same (dataset, variant) must not repeat a
    seed, and must have the same configuration, students, members and metric in every
    report — otherwise a :class:`ValueError` says which.
    """
    out: Dict[str, Any] = {"datasets": {}}
    pooled: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for agg in aggs:
        for ds, entry in agg["datasets"].items():
            target = out["datasets"].setdefault(
                ds, {"metric": entry["metric"], "task": entry["task"], "variants": {}})
            if target["metric"] != entry["metric"]:
                raise ValueError(f"{ds}: metric {entry['metric']!r} vs {target['metric']!r}")
            for variant, summary in entry["variants"].items():
                pooled.setdefault((ds, variant), []).append(summary)
    for (ds, variant), parts in pooled.items():
        first = parts[0]
        seen: List[int] = []
        for p in parts:
            for key in ("config", "students", "params"):
                if p[key] != first[key]:
                    raise ValueError(f"{ds}/{variant}: reports differ in {key}; "
                                     f"{p[key]!r} vs {first[key]!r}")
            if set(p["members"]) != set(first["members"]):
                raise ValueError(f"{ds}/{variant}: reports have different members")
            dup = sorted(set(seen) & set(p["seeds"]))
            if dup:
                raise ValueError(f"{ds}/{variant}: seed(s) {dup} appear in more than one "
                                 "report")
            seen += p["seeds"]
        order = np.argsort(seen, kind="stable")

        def pool(lists: List[List[Any]], order=order) -> List[Any]:
            flat = [x for values in lists for x in values]
            return [flat[i] for i in order]

        members: Dict[str, Dict[str, Any]] = {}
        for m in first["members"]:
            members[m] = {part: _stat(pool([p["members"][m][part]["values"] for p in parts]))
                          for part in ("test", "val")}
        members[BEST]["chosen"] = pool([p["members"][BEST]["chosen"] for p in parts])
        out["datasets"][ds]["variants"][variant] = {
            "config": first["config"],
            "students": first["students"],
            "seeds": sorted(seen),
            "epochs_max": first["epochs_max"],
            "epochs_run": pool([p["epochs_run"] for p in parts]),
            "seconds_per_epoch": _stat(pool([p["seconds_per_epoch"]["values"] for p in parts])),
            "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
            "rss_baseline_mb": max(p.get("rss_baseline_mb", float("nan")) for p in parts),
            "params": first["params"],
            "code_fingerprints": sorted({f for p in parts for f in p["code_fingerprints"]}),
            "members": members,
        }
    return out


# ------------------------------------------------------------------------------ markdown
def fmt(stat: Dict[str, Any], scale: float = 100.0) -> str:
    """``81.23 ± 0.45`` (or ``81.23`` for one seed, ``n/a`` for none)."""
    if not stat:
        return "n/a"
    return format_mean_std(stat["mean"], stat["std"], stat["n"], scale)


def _unit(metric: str) -> str:
    return "test accuracy (%)" if metric == "accuracy" else "test ROC-AUC (×100)"


def _kparams(n: int) -> str:
    return f"{n / 1000:.1f}k" if n < 10**6 else f"{n / 1e6:.2f}M"


def dataset_table(ds: str, entry: Dict[str, Any], order: Optional[Sequence[str]] = None) -> str:
    """One dataset: a row per method variant, a column per student/best/ensemble."""
    variants = entry["variants"]
    order = [v for v in (order or variants) if v in variants]
    students: List[str] = []
    for v in order:
        students += [s for s in variants[v]["students"] if s not in students]
    has_alw = any(ENSEMBLE_ALW in variants[v]["members"] for v in order)
    cols = students + [BEST, ENSEMBLE] + ([ENSEMBLE_ALW] if has_alw else [])
    head = (["method", "seeds", "epochs (run/max)"] + cols
            + ["s/epoch", "peak RSS (MB)", "params (cohort)"])
    lines = [f"### {ds} — {_unit(entry['metric'])}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in order:
        s = variants[v]
        cells = [v, str(len(s["seeds"])),
                 f"{np.mean(s['epochs_run']):.0f}/{s['epochs_max']}"]
        cells += [fmt(s["members"][c]["test"]) if c in s["members"] else "–" for c in cols]
        cells += [f"{s['seconds_per_epoch']['mean']:.3f}", f"{s['peak_rss_mb']:.0f}",
                  _kparams(s["params"]["cohort"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_table(agg: Dict[str, Any], order: Optional[Sequence[str]] = None,
                   part: str = "test") -> str:
    """One row per dataset: per method, the mean ``part`` (test or val) metric of each
    student, the best student and the ensemble (×100, mean ± std over the seeds that ran)."""
    lines: List[str] = []
    for ds, entry in agg["datasets"].items():
        variants = [v for v in (order or entry["variants"]) if v in entry["variants"]]
        students: List[str] = []
        for v in variants:
            students += [x for x in entry["variants"][v]["students"] if x not in students]
        cols = students + [BEST, ENSEMBLE]
        if not lines:
            lines = ["| dataset (metric) | method | seeds | " + " | ".join(cols) + " |",
                     "|" + "---|" * (3 + len(cols))]
        metric = "acc" if entry["metric"] == "accuracy" else "ROC-AUC"
        for v in variants:
            s = entry["variants"][v]
            cells = [f"{ds} ({metric})", v, str(len(s["seeds"]))]
            cells += [fmt(s["members"][c][part]) if c in s["members"] else "–" for c in cols]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def split_variant(variant: str) -> Tuple[str, str]:
    """Split a variant into its method and its ``@settings`` suffix (``""`` when none).

    ``"gml-no-alw@num_layers=3"`` -> ``("gml-no-alw", "@num_layers=3")``.
    """
    base, at, settings = variant.partition("@")
    return base, at + settings


def _paired(a: Dict[str, Any], b: Dict[str, Any], member: str) -> Tuple[List[float], List[float]]:
    """Test values of ``member`` in variants ``a`` and ``b`` on the seeds both ran."""
    va = dict(zip(a["seeds"], a["members"][member]["test"]["values"]))
    vb = dict(zip(b["seeds"], b["members"][member]["test"]["values"]))
    common = [s for s in a["seeds"] if s in vb
              and math.isfinite(va[s]) and math.isfinite(vb[s])]
    return [va[s] for s in common], [vb[s] for s in common]


def comparisons(agg: Dict[str, Any], ours: str = "gml",
                baselines: Sequence[str] = ("independent", "dml")) -> List[Dict[str, Any]]:
    """Per dataset and member: ``ours`` minus each baseline in mean test metric.

    Paired: only the seeds (splits, folds) that both variants finished are compared, so an
    interrupted suite never compares means over different seeds. Variants run with the same
    extra settings are compared with each other (``gml@lr=0.01`` with ``dml@lr=0.01``); the
    rows' ``settings`` holds that suffix (``""`` for the plain variants).
    """
    rows = []
    for ds, entry in agg["datasets"].items():
        variants = entry["variants"]
        for variant in variants:
            base_name, settings = split_variant(variant)
            if base_name != ours:
                continue
            for member in variants[variant]["members"]:
                for base in baselines:
                    # an independent baseline ran without mimicry-only settings
                    theirs = variants.get(base + settings_suffix(base, settings), {})
                    if member not in theirs.get("members", {}):
                        continue
                    x, y = _paired(variants[variant], theirs, member)
                    if not x:
                        continue
                    delta = float(np.mean(x) - np.mean(y))
                    rows.append({"dataset": ds, "settings": settings, "member": member,
                                 "baseline": base, "ours": float(np.mean(x)),
                                 "theirs": float(np.mean(y)), "delta": delta, "n": len(x),
                                 "win": delta > 0,
                                 "seed_wins": int(sum(a > b for a, b in zip(x, y)))})
    return rows


def comparison_table(agg: Dict[str, Any]) -> str:
    """GML − independent and GML − DML per dataset and member (test, ×100, paired seeds)."""
    rows = comparisons(agg)
    if not rows:
        return ""
    by: Dict[Tuple[str, str], Dict[str, Dict[str, Any]]] = {}
    for r in rows:
        label = r["dataset"] + (f" ({r['settings'][1:]})" if r["settings"] else "")
        by.setdefault((label, r["member"]), {})[r["baseline"]] = r

    def cell(r: Optional[Dict[str, Any]]) -> str:
        if r is None:
            return "–"
        mark = "" if r["win"] else " ✗"
        return f"{r['delta'] * 100:+.2f}{mark} ({r['seed_wins']}/{r['n']})"

    lines = ["| dataset | member | GML − independent | GML − DML |", "|---|---|---|---|"]
    for (ds, m), d in by.items():
        lines.append(f"| {ds} | {m} | {cell(d.get('independent'))} | {cell(d.get('dml'))} |")
    losses = [r for r in rows if not r["win"]]
    lines += ["", f"GML better in mean in {len(rows) - len(losses)} of {len(rows)} comparisons "
              "(✗ = GML not better). Each cell compares the seeds both methods finished; "
              "(w/n) = GML better in w of those n seeds."]
    return "\n".join(lines)


def ablation_table(agg: Dict[str, Any], ours: str = "gml") -> str:
    """Every other ``gml-*`` variant minus full GML, per dataset and member (paired seeds).

    Variants run with the same extra settings are paired (``gml-no-alw@num_layers=3`` with
    ``gml@num_layers=3``), as in :func:`comparisons`. Negative = the ablated component
    helped (removing it costs accuracy).
    """
    pairs = []  # (dataset, variant, reference) in report order
    for ds, entry in agg["datasets"].items():
        variants = entry["variants"]
        for v in variants:
            base, settings = split_variant(v)
            if base.startswith(ours + "-") and ours + settings in variants:
                pairs.append((ds, v, ours + settings))
    if not pairs:
        return ""
    # columns: every member of any reference, in order of first appearance, so datasets
    # with different cohorts (e.g. an MLP student on one of them) stay aligned
    members = list(dict.fromkeys(
        m for ds, _, ref in pairs for m in agg["datasets"][ds]["variants"][ref]["members"]
        if m != ENSEMBLE_ALW))
    lines = ["| dataset | variant | n | " + " | ".join(members) + " |",
             "|" + "---|" * (3 + len(members))]
    for ds, v, ref in pairs:
        variants = agg["datasets"][ds]["variants"]
        cells, n = [], 0
        for m in members:
            if m not in variants[v]["members"] or m not in variants[ref]["members"]:
                cells.append("–")
                continue
            x, y = _paired(variants[v], variants[ref], m)
            n = max(n, len(x))
            cells.append(f"{(np.mean(x) - np.mean(y)) * 100:+.2f}" if x else "–")
        lines.append(f"| {ds} | {v} − {ref} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "Negative: the variant is worse than full GML on the same seeds."]
    return "\n".join(lines)


def format_markdown(agg: Dict[str, Any], order: Optional[Sequence[str]] = None,
                    header: str = "") -> str:
    """The full markdown report: a header, one table per dataset, the GML comparisons."""
    parts = [header.rstrip()] if header else []
    parts += ["## Headline (test, mean ± std over seeds)", headline_table(agg, order),
              "## Per dataset"]
    for ds, entry in agg["datasets"].items():
        parts.append(dataset_table(ds, entry, order))
    comp = comparison_table(agg)
    if comp:
        parts += ["### GML versus its baselines (difference of mean test metric, ×100)", comp]
    abl = ablation_table(agg)
    if abl:
        parts += ["### Ablations versus full GML (difference of mean test metric, ×100)", abl]
    parts += ["## Validation (the model-selection metric; tune on this, never on test)",
              headline_table(agg, order, part="val")]
    return "\n\n".join(parts) + "\n"
