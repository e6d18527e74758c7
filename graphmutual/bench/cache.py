"""Finished runs as JSON files keyed by a hash of their full configuration."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

from graphmutual.bench.inherited import defaults_drift
from graphmutual.bench.presets import RunSpec

#: Bumped when a change to the harness invalidates earlier results.
CACHE_VERSION = 1


def key_payload(spec: RunSpec) -> Dict[str, Any]:
    """What :func:`config_hash` hashes: the spec, plus the defaults it inherits that
    differ from the baseline (:func:`~graphmutual.bench.inherited.defaults_drift`; left out
    while empty, so keys made before defaults were covered stay valid)."""
    drift = defaults_drift(spec)
    return {"v": CACHE_VERSION, **spec.key_dict(), **({"defaults": drift} if drift else {})}


def _hash(payload: Dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(spec: RunSpec) -> str:
    """A stable 16-hex-digit key of everything that determines ``spec``'s result."""
    return _hash(key_payload(spec))


def atomic_write_json(path: Path, obj: Any, indent: Optional[int] = 1) -> None:
    """Write ``obj`` as JSON so that readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=indent, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class RunCache:
    """A directory of ``<dataset>/<variant>-s<seed>-<hash>.json`` files, one per finished run."""

    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(root)

    def _path(self, spec: RunSpec, key: str) -> Path:
        return self.root / spec.dataset / f"{spec.variant}-s{spec.seed}-{key}.json"

    def path(self, spec: RunSpec) -> Path:
        return self._path(spec, config_hash(spec))

    def get(self, spec: RunSpec) -> Optional[Dict[str, Any]]:
        """The cached result of ``spec``, or ``None`` (a corrupt file counts as missing)."""
        key = config_hash(spec)
        p = self._path(spec, key)
        if not p.is_file():
            return None
        try:
            result = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return result if result.get("key") == key else None

    def put(self, spec: RunSpec, result: Dict[str, Any]) -> Path:
        payload = key_payload(spec)
        key = _hash(payload)
        p = self._path(spec, key)
        atomic_write_json(p, {**result, "key": key, "spec": spec.key_dict(),
                              "inherited_drift": payload.get("defaults", {})}, indent=None)
        return p

    def __contains__(self, spec: RunSpec) -> bool:
        return self.get(spec) is not None

    def all(self) -> Iterator[Dict[str, Any]]:
        for p in sorted(self.root.glob("*/*.json")):
            try:
                yield json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                continue
