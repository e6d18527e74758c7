"""Write result files atomically: a reader (or a killed run) never sees half a table.

Every write goes through :func:`graphmutual.train.checkpoint.atomic_write_bytes`, the
package's one atomic-write primitive (a temporary file in the target folder, then
:func:`os.replace`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Tuple, Union

from graphmutual.train.checkpoint import atomic_write_bytes

PathLike = Union[str, Path]


def write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; create the parent folders."""
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))
    return Path(path)


def write_json(path: PathLike, obj: Any, indent: int = 1, sort_keys: bool = False) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (``TypeError`` for what JSON cannot
    hold, before anything is written)."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys)
    return write_text(path, text)


def write_report(stem: PathLike, markdown: str, payload: Dict[str, Any]
                 ) -> Tuple[Path, Path]:
    """Write ``stem.md`` (the table a person reads) and ``stem.json`` (the raw numbers).

    ``payload`` should hold the command and the hardware (:func:`~graphmutual.bench.
    environment.environment`) next to the numbers, as the markdown does.
    """
    stem = Path(stem)
    js = write_json(stem.parent / f"{stem.name}.json", payload)
    md = write_text(stem.parent / f"{stem.name}.md", markdown)
    return md, js
