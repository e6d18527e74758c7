r"""Export a trained student, and reload it safely -- with plain PyG where possible.

The file is a ``torch.save`` of plain data (loadable with ``weights_only=True``)::

    {"format": "graphmutual-student/2",
     "class": "torch_geometric.nn.models.GCN",   # what rebuilds the model
     "kwargs": {"in_channels": 1433, ...},       # its constructor arguments (plain data)
     "children": {},                             # graph students: the sub-models, same layout
     "state_dict": {...},                        # the weights
     "preprocess": [{"name": "NormalizeFeatures", "kwargs": {}}],  # applied to the inputs
     "meta": {...}}                              # dataset, seed, validation score...

**Node-level students** -- the built-in ones and stock PyG models built by the user
(:class:`torch_geometric.nn.models.GCN`, ``GAT``, ``GIN``, ``GraphSAGE``, ``EdgeCNN`` and
``MLP``) -- are recorded as their PyG class with its constructor arguments (read back from
the model's attributes and checked by rebuilding it), so plain PyG rebuilds them::

    import torch, torch_geometric
    ckpt = torch.load("best_student.pt", weights_only=True)
    model = torch_geometric.nn.models.GCN(**ckpt["kwargs"])
    model.load_state_dict(ckpt["state_dict"])

or, in one call, ``model = graphmutual.train.load_student("best_student.pt")``.  (GIN with
edge features is :class:`graphmutual.nn.students.GINE`, which needs graphmutual.)

**Graph-level students** (:class:`~graphmutual.nn.GraphStudent`) are rebuilt in one call
with :func:`load_student`.  Plain PyG can rebuild every part of one by hand:
``children["node_model"]`` is a PyG model as above (its weights are the ``node_model.*``
entries of the state dict), the optional ``children["encoder"]`` / ``["edge_encoder"]`` are
OGB's ``AtomEncoder`` / ``BondEncoder`` or a :class:`torch.nn.Linear` (``encoder.*``,
``edge_encoder.*``); the readout is PyG's ``global_{kwargs["pool"]}_pool`` and the head is
``Sequential(Linear(H, H), ReLU(), Linear(H, C))`` after dropout (``head.*``).  Only their
composition -- ``head(dropout(pool(node_model(encoder(x), edge_index, edge_attr=
edge_encoder(edge_attr)), batch)))`` -- is graphmutual's.

**Preprocessing.**  ``preprocess`` lists the PyG transforms that made the inputs the student
was trained on (e.g. row-normalised features on Planetoid data, one-hot degrees on
featureless graphs).  Apply them to your data before calling the model:
``data = load_transform("best_student.pt")(data)``; without them the predictions differ.

**Safety.**  :func:`load_student` constructs only the allow-listed classes above
(:data:`ALLOWED_CLASSES`), checks that each is an :class:`torch.nn.Module` subclass before
constructing it, accepts only plain data as constructor arguments, and never calls anything
else named in a file.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from graphmutual.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    restore_module,
    save_checkpoint,
)

FORMAT = "graphmutual-student/2"
#: Formats :func:`load_student` reads (``/1`` files have no ``children``/``preprocess``).
READABLE_FORMATS = ("graphmutual-student/1", FORMAT)

#: PyG model classes recorded (and rebuilt) under their public names.
PYG_MODELS = ("GCN", "GAT", "GIN", "GraphSAGE", "EdgeCNN", "MLP")
#: The classes :func:`load_student` may construct, by the name written in a file.
ALLOWED_CLASSES = (
    *(f"torch_geometric.nn.models.{n}" for n in PYG_MODELS),
    "graphmutual.nn.students.GCN", "graphmutual.nn.students.GAT",
    "graphmutual.nn.students.GIN", "graphmutual.nn.students.GINE",
    "graphmutual.nn.students.GraphSAGE", "graphmutual.nn.students.MLP",
    "graphmutual.nn.graph.GraphStudent",
    "torch.nn.Linear",
    "ogb.graphproppred.mol_encoder.AtomEncoder", "ogb.graphproppred.mol_encoder.BondEncoder",
)
#: The PyG transforms a file's ``preprocess`` may name.
ALLOWED_TRANSFORMS = ("NormalizeFeatures", "OneHotDegree", "StandardizeColumns")
#: The children a :class:`~graphmutual.nn.GraphStudent` is built from.
GRAPH_CHILDREN = ("node_model", "encoder", "edge_encoder")

_PLAIN = (type(None), bool, int, float, str)


# ----------------------------------------------------------------------------- classes
def _class_table() -> Dict[str, type]:
    """Allow-listed name → class (each also under its defining module's name, which files
    of format ``/1`` recorded)."""
    from torch_geometric.nn import models as pyg

    from graphmutual.nn import graph, students

    table: Dict[str, type] = {f"torch_geometric.nn.models.{n}": getattr(pyg, n)
                              for n in PYG_MODELS}
    for n in ("GCN", "GAT", "GIN", "GINE", "GraphSAGE", "MLP"):
        table[f"graphmutual.nn.students.{n}"] = getattr(students, n)
    table["graphmutual.nn.graph.GraphStudent"] = graph.GraphStudent
    table["torch.nn.Linear"] = nn.Linear
    try:
        from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
    except ImportError:  # pragma: no cover - ogb is a dependency
        pass
    else:
        table["ogb.graphproppred.mol_encoder.AtomEncoder"] = AtomEncoder
        table["ogb.graphproppred.mol_encoder.BondEncoder"] = BondEncoder
    for cls in list(table.values()):
        table.setdefault(f"{cls.__module__}.{cls.__qualname__}", cls)
    return table


def _public_name(cls: type) -> Optional[str]:
    """The allow-listed name of ``cls``, or ``None`` when it is not allow-listed."""
    for name, allowed in _class_table().items():
        if allowed is cls and name in ALLOWED_CLASSES:
            return name
    return None


def _resolve_class(name: Any, path) -> type:
    """The allow-listed class a file names; nothing is imported by that name."""
    if not isinstance(name, str):
        raise CheckpointError(f"'{path}' names no model class (got {type(name).__name__})")
    cls = _class_table().get(name)
    if cls is None:
        raise CheckpointError(
            f"'{path}' asks for the class '{name}', which load_student does not construct "
            f"(allowed: the built-in students, GraphStudent and PyG's {', '.join(PYG_MODELS)}); "
            "build the model yourself and pass it as `model=`"
        )
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):  # pragma: no cover
        raise CheckpointError(f"'{path}': '{name}' is not a torch.nn.Module")
    return cls


def _check_plain(value: Any, path, where: str) -> None:
    """Constructor arguments must be plain data: no tensors, no objects."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_plain(v, path, where)
        return
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for v in value.values():
            _check_plain(v, path, where)
        return
    raise CheckpointError(f"'{path}': the constructor arguments of {where} hold a "
                          f"{type(value).__name__}; only plain values are accepted")


# ---------------------------------------------------------------- constructor arguments
def _attrs(module: nn.Module) -> Dict[str, Any]:
    """The module's public plain-valued attributes (what its repr is made of)."""
    out = {}
    for k, v in vars(module).items():
        if k.startswith("_") or k in ("training", "init_kwargs"):
            continue
        try:
            _check_plain(v, "", "")
        except CheckpointError:
            continue
        out[k] = v
    return out


def _init_params(cls: type) -> List[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _non_default(values: Dict[str, Any], *classes: type) -> Dict[str, Any]:
    """``values`` without the entries equal to their default in the first of ``classes``
    whose constructor has that argument (keeps the recorded arguments short)."""
    defaults: Dict[str, Any] = {}
    for cls in reversed(classes):
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.default is not p.empty:
                defaults[p.name] = p.default
    return {k: v for k, v in values.items()
            if not (k in defaults and type(defaults[k]) is type(v) and defaults[k] == v)}


def _act(act: Optional[nn.Module]) -> Dict[str, Any]:
    """``act`` / ``act_kwargs`` that PyG's ``activation_resolver`` turns back into ``act``."""
    if act is None:
        return {"act": None, "act_kwargs": None}
    attrs = _attrs(act)
    kwargs = _non_default({k: attrs[k] for k in _init_params(type(act)) if k in attrs},
                          type(act))
    return {"act": type(act).__name__.lower(), "act_kwargs": kwargs or None}


def _norm(norm: nn.Module) -> Dict[str, Any]:
    """``norm`` / ``norm_kwargs`` for PyG's ``normalization_resolver`` (channels excluded)."""
    if isinstance(norm, nn.Identity):
        return {"norm": None, "norm_kwargs": None}
    attrs = {**_attrs(getattr(norm, "module", norm)), **_attrs(norm)}
    kwargs = _non_default({k: attrs[k] for k in _init_params(type(norm))
                           if k in attrs and k not in ("in_channels", "num_features")},
                          type(norm))
    return {"norm": type(norm).__name__.lower(), "norm_kwargs": kwargs or None}


def _basic_gnn_kwargs(model: nn.Module) -> Dict[str, Any]:
    from torch_geometric.nn.conv import GATv2Conv
    from torch_geometric.nn.models.basic_gnn import BasicGNN

    to_out = getattr(model, "_is_conv_to_out", False) or model.jk_mode is not None
    kw: Dict[str, Any] = dict(
        in_channels=model.in_channels, hidden_channels=model.hidden_channels,
        num_layers=model.num_layers, out_channels=model.out_channels if to_out else None,
        dropout=model.dropout.p, **_act(model.act), act_first=model.act_first,
        norm=model.norm, norm_kwargs=model.norm_kwargs, jk=model.jk_mode,
    )
    # the message-passing layers' own arguments, read back from the first layer
    conv = model.convs[0]
    base = set(_init_params(BasicGNN))
    attrs = _attrs(conv)
    for name in _init_params(type(conv)):
        if name in base or name in ("in_channels", "out_channels", "nn"):
            continue
        if name == "bias" and "bias" in vars(conv)["_parameters"]:
            kw["bias"] = conv.bias is not None
        elif name == "train_eps" and hasattr(conv, "initial_eps"):
            kw["train_eps"] = isinstance(conv.eps, nn.Parameter)
        elif name == "eps" and hasattr(conv, "initial_eps"):
            kw["eps"] = conv.initial_eps
        elif name in attrs:
            kw[name] = attrs[name]
    if isinstance(conv, GATv2Conv):
        kw["v2"] = True
    return _non_default(kw, BasicGNN, type(conv))


def _mlp_kwargs(model: nn.Module) -> Dict[str, Any]:
    bias = [lin.bias is not None for lin in model.lins]
    norms = list(model.norms)
    dropout = list(model.dropout)
    scalar = [dropout[0]] * len(dropout)  # how MLP expands a single dropout rate
    if model.plain_last:
        scalar[-1] = 0.0
    kw = dict(channel_list=list(model.channel_list),
              dropout=dropout[0] if dropout == scalar else dropout,
              **_act(model.act), act_first=model.act_first,
              **_norm(norms[0] if norms else nn.Identity()),
              plain_last=model.plain_last, bias=bias[0] if len(set(bias)) == 1 else bias)
    return _non_default(kw, type(model))


def _guess_kwargs(module: nn.Module, cls: type) -> Optional[Dict[str, Any]]:
    """Constructor arguments of ``cls`` read back from ``module``'s attributes."""
    from torch_geometric.nn.models import MLP
    from torch_geometric.nn.models.basic_gnn import BasicGNN

    if issubclass(cls, BasicGNN):
        return _basic_gnn_kwargs(module)
    if issubclass(cls, MLP):
        return _mlp_kwargs(module)
    if cls is nn.Linear:
        return dict(in_features=module.in_features, out_features=module.out_features,
                    bias=module.bias is not None)
    if cls.__name__ in ("AtomEncoder", "BondEncoder"):
        embeddings = module.atom_embedding_list if hasattr(module, "atom_embedding_list") \
            else module.bond_embedding_list
        return dict(emb_dim=embeddings[0].embedding_dim)
    return None


def _structure(module: nn.Module, root_type: bool = True) -> list:
    """Everything that makes two modules of one class interchangeable: the sub-module
    tree (types and plain attributes) and every parameter's and buffer's name and shape."""
    mods = [(n, type(m) if (n or root_type) else None, _attrs(m) if n else None)
            for n, m in module.named_modules()]
    params = [(n, tuple(p.shape), "p") for n, p in module.named_parameters()]
    buffers = [(n, tuple(b.shape), "b") for n, b in module.named_buffers()]
    return [mods, params, buffers]


def _rebuilds(module: nn.Module, cls: type, kwargs: Dict[str, Any]) -> bool:
    """Whether ``cls(**kwargs)`` has exactly ``module``'s structure (built with the global
    random state left untouched)."""
    try:
        with torch.random.fork_rng(devices=[]):
            other = cls(**kwargs)
    except Exception:
        return False
    def root(m: nn.Module) -> Dict[str, Any]:
        return {k: v for k, v in _attrs(m).items() if k != "name"}

    return (_structure(other, root_type=False) == _structure(module, root_type=False)
            and root(other) == root(module))


def _pyg_base(module: nn.Module) -> type:
    """The class that rebuilds ``module``: a graphmutual student is rebuilt as its PyG base
    class, unless its class changes the layers (defines ``init_conv``, e.g. ``GINE``)."""
    cls = type(module)
    if not cls.__module__.startswith("graphmutual."):
        return cls
    for base in cls.__mro__:
        if base.__module__.startswith("torch_geometric.") or "init_conv" in vars(base):
            return base
    return cls


def _spec(module: nn.Module) -> Dict[str, Any]:
    """``{"class", "kwargs", "children"}`` of one module (``kwargs`` ``None`` when they
    cannot be recovered: such a model is reloaded with ``load_student(path, model=...)``)."""
    from graphmutual.nn.graph import GraphStudent

    if isinstance(module, GraphStudent):
        children = {name: (_spec(getattr(module, name)) if getattr(module, name) is not None
                           else None) for name in GRAPH_CHILDREN}
        kwargs = dict(hidden_channels=module.head[0].in_features,
                      out_channels=module.head[-1].out_features, pool=module.pool_name,
                      dropout=module.dropout.p, name=module.name)
        complete = all(c is None or c["kwargs"] is not None for c in children.values())
        return {"class": "graphmutual.nn.graph.GraphStudent",
                "kwargs": kwargs if complete else None, "children": children}
    cls = _pyg_base(module)
    name = _public_name(cls)
    recorded = getattr(module, "init_kwargs", None)
    kwargs = dict(recorded) if isinstance(recorded, dict) else None
    if name is not None and kwargs is None:
        kwargs = _guess_kwargs(module, cls)
    if kwargs is not None and not _rebuilds(module, cls, kwargs):
        kwargs = None
    if kwargs is None:
        warnings.warn(
            f"export_student: the constructor arguments of {type(module).__name__} could not "
            "be recorded; reload it with load_student(path, model=<a model built like it>)",
            stacklevel=3,
        )
    return {"class": name or f"{cls.__module__}.{cls.__qualname__}", "kwargs": kwargs,
            "children": {}}


# ---------------------------------------------------------------------- preprocessing
def _check_preprocess(steps: Any, path) -> List[Dict[str, Any]]:
    if steps is None:
        return []
    if not isinstance(steps, (list, tuple)):
        raise CheckpointError(f"'{path}': preprocess must be a list of transforms")
    for step in steps:
        if not (isinstance(step, dict) and step.get("name") in ALLOWED_TRANSFORMS
                and isinstance(step.get("kwargs", {}), dict)):
            raise CheckpointError(f"'{path}': unknown preprocessing step {step!r}; allowed: "
                                  f"{', '.join(ALLOWED_TRANSFORMS)}")
        _check_plain(step.get("kwargs", {}), path, step["name"])
    return [dict(name=s["name"], kwargs=dict(s.get("kwargs", {}))) for s in steps]


def preprocess_steps(dataset: Any, normalize_features: bool = False) -> List[Dict[str, Any]]:
    """The ``preprocess`` steps of a student trained on ``dataset`` (a
    :class:`~graphmutual.data.GraphDataset`): the transform that builds its features when the
    dataset has none or that rescales them (``dataset.input_transform``), then
    ``NormalizeFeatures`` when the trainer row-normalised them.  TU continuous attributes,
    standardised over the dataset, travel as a ``StandardizeColumns`` step with the training
    statistics.  Pass the result to :func:`export_student`."""
    steps = []
    if getattr(dataset, "input_transform", None) is not None:
        steps.append(dict(dataset.input_transform))
    if normalize_features:
        steps.append({"name": "NormalizeFeatures", "kwargs": {}})
    return _check_preprocess(steps, getattr(dataset, "name", "dataset"))


def build_transform(steps: Sequence[Dict[str, Any]]) -> Callable:
    """A PyG transform applying ``steps`` (a ``preprocess`` list) in order: it maps a
    :class:`~torch_geometric.data.Data` to the inputs the student was trained on."""
    import torch_geometric.transforms as T

    from graphmutual.data.transforms import TRANSFORMS

    steps = _check_preprocess(list(steps), "preprocess")
    return T.Compose([TRANSFORMS.get(s["name"], getattr(T, s["name"], None))(**s["kwargs"])
                      for s in steps])


# ------------------------------------------------------------------------- public API
def export_student(student: nn.Module, path, meta: Optional[Dict[str, Any]] = None,
                   preprocess: Optional[Sequence[Dict[str, Any]]] = None) -> None:
    """Write ``student`` -- its class, constructor arguments, weights and the preprocessing
    of its inputs -- to ``path`` (atomically; see the module docs for the layout).

    Args:
        student: a built-in student, a :class:`~graphmutual.nn.GraphStudent`, or a stock
            PyG model (``GCN``, ``GAT``, ``GIN``, ``GraphSAGE``, ``EdgeCNN``, ``MLP``), whose
            constructor arguments are read back from its attributes and checked by
            rebuilding it.  Other modules are saved with ``kwargs: None`` (with a warning).
        path: the file to write.
        meta: free-form plain data stored under ``"meta"`` (dataset, seed, scores...).
        preprocess: the PyG transforms applied to the inputs in training, as
            ``[{"name": "NormalizeFeatures", "kwargs": {}}, ...]``
            (:data:`ALLOWED_TRANSFORMS`).  ``None``: ``NormalizeFeatures`` when
            ``meta["normalize_features"]`` is true, else none.
    """
    if not isinstance(student, nn.Module):
        raise ValueError(f"export_student needs a torch.nn.Module, got {type(student).__name__}")
    meta = dict(meta or {})
    if preprocess is None:
        preprocess = ([{"name": "NormalizeFeatures", "kwargs": {}}]
                      if meta.get("normalize_features") else [])
    try:
        steps = _check_preprocess(preprocess, path)
    except CheckpointError as exc:
        raise ValueError(str(exc)) from None
    state = {
        "format": FORMAT,
        **_spec(student),
        "state_dict": {k: v.detach().cpu() for k, v in student.state_dict().items()},
        "preprocess": steps,
        "meta": meta,
    }
    save_checkpoint(state, Path(path))


def _build(spec: Any, path, where: str, depth: int = 0) -> nn.Module:
    """Construct one allow-listed module (and its children) from plain data."""
    if not isinstance(spec, dict):
        raise CheckpointError(f"'{path}': {where} is not described")
    cls = _resolve_class(spec.get("class"), path)
    kwargs = spec.get("kwargs")
    if kwargs is None:
        raise CheckpointError(
            f"'{path}' holds a {spec.get('class')} ({where}) without constructor arguments; "
            "build the model yourself and pass it as `model=`"
        )
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise CheckpointError(f"'{path}': the constructor arguments of {where} are not a "
                              "mapping of names to values")
    _check_plain(kwargs, path, where)
    children = spec.get("children") or {}
    from graphmutual.nn.graph import GraphStudent

    if issubclass(cls, GraphStudent):
        if depth > 0 or not isinstance(children, dict) or set(children) - set(GRAPH_CHILDREN):
            raise CheckpointError(f"'{path}': malformed graph student ({where})")
        modules = {name: _build(children[name], path, name, depth + 1)
                   for name in GRAPH_CHILDREN if children.get(name) is not None}
        if "node_model" not in modules:
            raise CheckpointError(f"'{path}': the graph student has no node model")
        kwargs = {**kwargs, **modules}
    elif children:
        raise CheckpointError(f"'{path}': {spec.get('class')} takes no sub-models")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"'{path}': could not build {spec.get('class')} ({where}) from "
                              f"its recorded arguments: {exc}") from None


def _load_export(path) -> Dict[str, Any]:
    state = load_checkpoint(path)
    if state.get("format") not in READABLE_FORMATS:
        raise CheckpointError(f"'{path}' is not an exported graphmutual student "
                              "(no 'graphmutual-student' format tag)")
    return state


def load_student(path, model: Optional[nn.Module] = None) -> nn.Module:
    """Rebuild an exported student in one call (or load its weights into ``model``).

    Only allow-listed classes (:data:`ALLOWED_CLASSES`: the built-in students,
    :class:`~graphmutual.nn.GraphStudent`, PyG's ``GCN``, ``GAT``, ``GIN``, ``GraphSAGE``,
    ``EdgeCNN``, ``MLP``, ``torch.nn.Linear`` and OGB's atom/bond encoders) are constructed,
    from plain-data arguments; a file naming anything else is refused.  The returned model is
    in training mode, like any new module: call ``.eval()`` before predicting.  Apply
    :func:`load_transform` to the inputs first when the file lists preprocessing.

    Raises:
        CheckpointError: the file is missing, damaged, not an exported student, names a
            class that is not allow-listed, or its weights do not fit the model.
    """
    state = _load_export(path)
    if model is None:
        model = _build({k: state.get(k) for k in ("class", "kwargs", "children")}, path,
                       "the student")
    elif not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    restore_module(model, state.get("state_dict"), path, what="student")
    return model


def load_transform(path) -> Callable:
    """The PyG transform that prepares inputs for the student exported at ``path``.

    ``data = load_transform("best_student.pt")(data)`` applies the recorded ``preprocess``
    steps (e.g. :class:`~torch_geometric.transforms.NormalizeFeatures`); an identity when
    there are none.  Files of format ``/1`` record only ``meta["normalize_features"]``.
    """
    state = _load_export(path)
    steps = state.get("preprocess")
    if steps is None and state.get("meta", {}).get("normalize_features"):
        steps = [{"name": "NormalizeFeatures", "kwargs": {}}]
    return build_transform(_check_preprocess(steps, path))


__all__ = ["export_student", "load_student", "load_transform", "build_transform",
           "preprocess_steps",
           "ALLOWED_CLASSES", "ALLOWED_TRANSFORMS"]
