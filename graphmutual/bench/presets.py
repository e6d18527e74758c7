"""Datasets, method variants and the unit of work, :class:`RunSpec` (one config, one seed)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from graphmutual.data import canonical_name
from graphmutual.mutual import DIVERGENCES
from graphmutual.train import TrainConfig

#: Node-classification presets (``--datasets node``).
NODE_PRESETS = ("cora", "citeseer", "amazon-photo", "coauthor-cs")
#: Graph-classification presets (``--datasets graph``).
GRAPH_PRESETS = ("mutag", "proteins", "enzymes", "ogbg-molbace", "ogbg-molbbbp", "ogbg-molhiv")
#: ``--quick``: the small datasets, a few epochs, one seed.
QUICK_DATASETS = ("cora", "mutag")
QUICK_EPOCHS = 5
#: The cohort of a suite run: ``graphmutual train``'s (``TrainConfig().students``).
DEFAULT_STUDENTS = tuple(TrainConfig().students)
MAIN_METHODS = ("independent", "dml", "gml")


def _variants() -> Dict[str, Dict[str, Any]]:
    """Method variant name → the :class:`~graphmutual.train.TrainConfig` keys it sets."""
    out: Dict[str, Dict[str, Any]] = {
        "independent": {"method": "independent"},
        "dml": {"method": "dml"},
        "gml": {"method": "gml"},
        # ablations: GML without adaptive logit weighting (uniform peers, entropy kept) ...
        "gml-no-alw": {"method": "gml", "weighting": "uniform"},
        # ... and without entropy enhancement (ALW kept)
        "gml-no-ee": {"method": "gml", "entropy": 0.0},
    }
    # each divergence set explicitly (plain gml uses the task's default -- balanced on the
    # Planetoid datasets, KL elsewhere -- so one of these repeats gml under another key)
    for div in sorted(DIVERGENCES):
        out[f"gml-{div.replace('_', '-')}"] = {"method": "gml", "divergence": div}
    return out


#: :class:`~graphmutual.train.TrainConfig` keys that act only through mimicry.  They cannot
#: change an ``independent`` run, so :func:`expand_suite` leaves them out of its specs: with
#: ``--set transductive=true`` the independent rows are the plain runs (from the cache), and
#: GML's rows are compared with them.
MIMICRY_ONLY_KEYS = frozenset({"transductive", "divergence", "temperature", "mimic_weight",
                               "warmup", "t_min", "t_max", "renyi_alpha", "balance",
                               "node_mimic", "alw_holdout", "boost"})


def changes_result(variant: str, key: str) -> bool:
    """Whether setting TrainConfig ``key`` can change a run of method ``variant``."""
    return not (VARIANTS.get(variant, {}).get("method") == "independent"
                and key in MIMICRY_ONLY_KEYS)


def settings_suffix(variant: str, suffix: str) -> str:
    """The part of a ``@key=value...`` settings suffix that can change ``variant``'s runs.

    ``settings_suffix("independent", "@lr=0.01@t_min=1.0") == "@lr=0.01"``; for any
    variant with mimicry the suffix is returned unchanged.
    """
    parts = [p for p in suffix.split("@")[1:] if changes_result(variant, p.split("=", 1)[0])]
    return "".join("@" + p for p in parts)


#: Every method variant the suite knows.
VARIANTS: Dict[str, Dict[str, Any]] = _variants()
#: The ablation set (``--methods ablations``): GML, without ALW, without EE, each divergence.
ABLATIONS = tuple(v for v in VARIANTS if v.startswith("gml"))


@dataclass(frozen=True)
class RunSpec:
    """One benchmark run: a dataset, a method variant, a cohort and one seed.

    ``config`` holds the :class:`~graphmutual.train.TrainConfig` keys of the run (without
    ``seeds``, ``output``, ``progress`` or ``root``, which do not change the result).
    """

    dataset: str
    variant: str
    seed: int
    config: Dict[str, Any] = field(hash=False)

    def key_dict(self) -> Dict[str, Any]:
        """Everything that determines the result — what the cache key hashes."""
        return {"dataset": self.dataset, "variant": self.variant, "seed": self.seed,
                "config": dict(sorted(self.config.items()))}


def resolve_datasets(names: Sequence[str]) -> List[str]:
    """Expand ``node``/``graph``/``all`` and canonicalise names (``ValueError`` if unknown)."""
    out: List[str] = []
    for name in names:
        key = name.strip().lower()
        if not key:
            continue
        group = {"node": NODE_PRESETS, "graph": GRAPH_PRESETS,
                 "all": NODE_PRESETS + GRAPH_PRESETS}.get(key)
        for n in group or (canonical_name(key),):
            if n not in out:
                out.append(n)
    if not out:
        raise ValueError("no datasets given")
    return out


def resolve_methods(names: Sequence[str]) -> List[str]:
    """Expand ``main`` (independent, dml, gml), ``ablations`` and ``all``; check names."""
    out: List[str] = []
    for name in names:
        key = name.strip().lower().replace("_", "-")
        if not key:
            continue
        group = {"main": MAIN_METHODS, "ablations": ABLATIONS, "all": tuple(VARIANTS)}.get(key)
        if group is None and key not in VARIANTS:
            raise ValueError(f"unknown method variant '{name}'; choose from "
                             f"{', '.join(VARIANTS)} or main/ablations/all")
        for v in group or (key,):
            if v not in out:
                out.append(v)
    if not out:
        raise ValueError("no methods given")
    return out


def expand_suite(
    datasets: Sequence[str],
    methods: Sequence[str],
    students: Sequence[str],
    seeds: Sequence[int],
    overrides: Optional[Dict[str, Any]] = None,
    settings: Optional[Dict[str, Any]] = None,
) -> List[RunSpec]:
    """The cross product datasets × variants × seeds as :class:`RunSpec` s.

    ``overrides`` (``epochs``, ``hidden``, ``lr``, ...) apply to every run and enter the
    cache key. ``settings`` (any other :class:`~graphmutual.train.TrainConfig` keys, e.g.
    ``{"t_min": 1.0}``) do too, and are appended to the variant's name
    (``gml@t_min=1.0``) so that runs of a sweep stay apart in the tables -- except the
    :data:`MIMICRY_ONLY_KEYS`, which ``independent`` runs leave out (:func:`settings_suffix`).
    A cohort of one student runs ``independent`` only.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    settings = dict(sorted((settings or {}).items()))
    specs = []
    for ds in resolve_datasets(datasets):
        for variant in resolve_methods(methods):
            if len(students) < 2 and variant != "independent":
                raise ValueError(f"method '{variant}' needs at least 2 students "
                                 f"(got {list(students)})")
            kept = {k: v for k, v in settings.items() if changes_result(variant, k)}
            own = "".join(f"@{k}={v}" for k, v in kept.items())
            cfg = {"dataset": ds, "students": list(students), **VARIANTS[variant],
                   **kept, **overrides}
            for seed in seeds:
                specs.append(RunSpec(ds, variant + own, int(seed), cfg))
    return specs
