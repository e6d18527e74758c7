"""matplotlib figures: test metric per method and member; ALW weights/temperatures."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from graphmutual.bench.aggregate import BEST, ENSEMBLE
from graphmutual.stats import mean_std


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_methods(ds: str, entry: Dict[str, Any], path: Path,
                 order: Optional[Sequence[str]] = None) -> Path:
    """Grouped bars: one group per member (students, best, ensemble), one bar per variant."""
    plt = _pyplot()
    variants = [v for v in (order or entry["variants"]) if v in entry["variants"]]
    members: List[str] = []
    for v in variants:
        members += [m for m in entry["variants"][v]["students"] if m not in members]
    members += [BEST, ENSEMBLE]
    x = np.arange(len(members))
    width = 0.8 / max(len(variants), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(members) * max(1, len(variants) / 3)), 4))
    lo = 1.0
    for i, v in enumerate(variants):
        ms = entry["variants"][v]["members"]
        mean = np.array([ms[m]["test"]["mean"] * 100 if m in ms else np.nan for m in members])
        std = np.array([ms[m]["test"]["std"] * 100 if m in ms else np.nan for m in members])
        n = len(entry["variants"][v]["seeds"])
        ax.bar(x + (i - (len(variants) - 1) / 2) * width, mean, width, yerr=std, capsize=2,
               label=f"{v} (n={n})")
        if np.isfinite(mean).any():
            lo = min(lo, np.nanmin(mean - np.nan_to_num(std)) / 100)
    ax.set_xticks(x)
    ax.set_xticklabels(members)
    unit = "accuracy (%)" if entry["metric"] == "accuracy" else "ROC-AUC (×100)"
    ax.set_ylabel(f"test {unit}")
    ax.set_ylim(max(0.0, lo * 100 - 5), None)
    ax.set_title(f"{ds}: mean ± std over seeds")
    ax.legend(fontsize=7, ncol=min(len(variants), 4))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _curves(runs: Sequence[Dict[str, Any]], column: str) -> np.ndarray:
    """``[seeds, epochs]`` of one history column, NaN-padded (early stopping)."""
    series = [r["history"].get(column, []) for r in runs]
    length = max((len(s) for s in series), default=0)
    out = np.full((len(series), length), np.nan)
    for i, s in enumerate(series):
        out[i, : len(s)] = s
    return out


def plot_alw(ds: str, variant: str, runs: Sequence[Dict[str, Any]], path: Path) -> Optional[Path]:
    """Learned ALW temperatures and the mean weight peers give each student, per epoch.

    Mean over seeds (shaded: ± std). ``None`` if the runs logged no ALW statistics.
    """
    runs = [r for r in runs if any(k.startswith("alw/") for k in r.get("history", {}))]
    if not runs:
        return None
    plt = _pyplot()
    students = runs[0]["students"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, kind, label in ((axes[0], "weight", "mean peer weight given to the student"),
                            (axes[1], "tau", "ALW temperature")):
        for s in students:
            c = _curves(runs, f"alw/{kind}/{s}")
            if c.size == 0:
                continue
            # per epoch over the seeds that reached it (shorter runs are NaN-padded)
            mean, std = (np.array(v) for v in zip(*(mean_std(col)[:2] for col in c.T)))
            ep = np.arange(mean.size)
            ax.plot(ep, mean, label=s)
            ax.fill_between(ep, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(f"{ds} / {variant}: ALW over training ({len(runs)} seed(s), mean ± std)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(agg: Dict[str, Any], runs: Iterable[Dict[str, Any]], out_dir: Path,
               prefix: str, order: Optional[Sequence[str]] = None) -> List[Path]:
    """Every figure of a suite; returns the written paths."""
    runs = list(runs)
    paths = []
    for ds, entry in agg["datasets"].items():
        paths.append(plot_methods(ds, entry, out_dir / f"{prefix}_{ds}_methods.png", order))
        for variant in entry["variants"]:
            rs = [r for r in runs if r["dataset"] == ds and r["variant"] == variant]
            if variant == "gml":
                p = plot_alw(ds, variant, rs, out_dir / f"{prefix}_{ds}_{variant}_alw.png")
                if p is not None:
                    paths.append(p)
    return paths
