#!/usr/bin/env python
"""Build ``graphmutual/data/bundled/cora.npz`` from the Planetoid raw files.

Usage::

    python scripts/build_bundled_cora.py [--raw ../shared/datasets/Planetoid/Cora/raw]
                                         [--out graphmutual/data/bundled/cora.npz]

The raw folder is copied to a temporary directory first and read with PyG's own
``Planetoid(tmp, "Cora")`` loader, so the source folder never gets a ``processed/`` directory
and the bundled graph equals PyG's Cora exactly.  The result is checked by reloading it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RAW = REPO.parent / "shared" / "datasets" / "Planetoid" / "Cora" / "raw"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="Planetoid Cora raw/ dir")
    parser.add_argument("--out", type=Path, default=None, help="output .npz path")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from torch_geometric.datasets import Planetoid

    from graphmutual.data.bundled import BUNDLED_CORA_PATH, load_bundled_cora, save_bundled_cora

    out = args.out or BUNDLED_CORA_PATH
    if not args.raw.is_dir():
        print(f"error: Planetoid Cora raw folder not found: {args.raw}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(args.raw, Path(tmp) / "Cora" / "raw")
        data = Planetoid(tmp, "Cora")[0]
    save_bundled_cora(data, out)

    loaded = load_bundled_cora(out)
    for key in data.keys():
        a, b = data[key], loaded[key]
        if a.dtype != b.dtype or not bool((a == b).all()):
            print(f"error: round trip differs in {key!r}", file=sys.stderr)
            return 1
    print(f"wrote {out} ({out.stat().st_size / 1024:.1f} KiB): {data}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
