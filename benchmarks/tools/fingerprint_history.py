"""Which commit made a run: the code fingerprint of every commit in this repository.

Every benchmark run records ``code_fingerprint`` (:func:`graphmutual.bench.worker.code_fingerprint`,
a hash of the ``data/``, ``mutual/``, ``nn/``, ``ops/``, ``train/`` sources) and every
table lists the fingerprints of its runs. This script computes the same hash from git for
each commit and prints one line per change, so a fingerprint in a table can be traced to
the commits that had it — or to none, for runs made from uncommitted code::

    python benchmarks/tools/fingerprint_history.py            # every change on the current branch
    python benchmarks/tools/fingerprint_history.py a72ea1221cfe bfe1d7eb050a   # look some up
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
from pathlib import PurePosixPath
from typing import List

from graphmutual.bench.worker import RESULT_PACKAGES


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], check=True, capture_output=True).stdout


def fingerprint(commit: str) -> str:
    """``code_fingerprint()`` of the sources as they were at ``commit``."""
    files = _git("ls-tree", "-r", "--name-only", commit, "graphmutual/").decode().split()
    h = hashlib.sha256()
    for pkg in RESULT_PACKAGES:
        # code_fingerprint sorts Path objects per package; PurePosixPath sorts the same way
        for f in sorted(PurePosixPath(f) for f in files
                        if f.startswith(f"graphmutual/{pkg}/") and f.endswith(".py")):
            h.update(str(f.relative_to("graphmutual")).encode())
            h.update(_git("show", f"{commit}:{f}"))
    return h.hexdigest()[:12]


def main(argv: List[str] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("fingerprints", nargs="*",
                   help="only report these fingerprints (default: every change)")
    p.add_argument("--rev", default="HEAD", help="history to walk (default: HEAD)")
    args = p.parse_args(argv)
    wanted = set(args.fingerprints)
    found, previous = set(), None
    log = _git("log", "--reverse", "--format=%h %ad %s", "--date=short", args.rev).decode()
    for line in log.splitlines():
        fp = fingerprint(line.split()[0])
        if fp != previous and (not wanted or fp in wanted):
            print(fp, line[:100])
            found.add(fp)
        previous = fp
    for fp in sorted(wanted - found):
        print(fp, "no commit on this history (uncommitted code, or another branch)")


if __name__ == "__main__":
    main()
