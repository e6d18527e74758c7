"""Check: does one benchmark run reproduce across code versions and denormal flushing?

Trains one (dataset, method, seed) run three times, two at once, with the package's
``Trainer`` and the bench's settings (one torch thread): with the current code, flushing
denormals (as the bench workers do) and not flushing, and with the code of an older commit
(checked out into a temporary ``git worktree``). Identical members say that neither the
code changes since that commit nor the flushing change the run on this machine; a checked-in
table made from that commit's code elsewhere that differs then differs because of the CPU.
Writes ``benchmarks/results/bench/check-reproducibility.md``.

    python benchmarks/checks/check_reproducibility.py --root ~/.cache/graphmutual/bench-data
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Optional

from graphmutual.bench.environment import command_line, environment, environment_markdown
from graphmutual.bench.report import write_text

REPO = Path(__file__).resolve().parents[2]

_RUN = """
import json, sys, torch
torch.set_flush_denormal(sys.argv[1] == "on")
torch.set_num_threads(1)
from graphmutual.train import Trainer, TrainConfig
res = Trainer(TrainConfig(dataset=sys.argv[2], method=sys.argv[3], seeds=[int(sys.argv[4])],
                          root=sys.argv[5], progress=False)).run()
print(json.dumps({m: [round(100 * v["test"][0], 2), round(100 * v["val"][0], 2)]
                  for m, v in res["members"].items()}))
"""


def train(code: Path, flush: str, args: argparse.Namespace) -> Dict[str, list]:
    env = dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _RUN, flush, args.dataset, args.method,
                          str(args.seed), args.root], env=env, cwd=tempfile.gettempdir(),
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Optional[list] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="dataset root (holds TUDataset/, ...)")
    p.add_argument("--commit", default="7fe2f9b", help="older commit to compare with")
    p.add_argument("--dataset", default="enzymes")
    p.add_argument("--method", default="dml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=str(REPO / "benchmarks/results/bench/"
                                            "check-reproducibility.md"))
    args = p.parse_args(argv)
    args.root = str(Path(args.root).expanduser().resolve())
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old),
                        args.commit], check=True, capture_output=True)
        try:
            cases = {"current code, flush on": (REPO, "on"),
                     "current code, flush off": (REPO, "off"),
                     f"commit {args.commit}, flush on": (old, "on")}
            with ThreadPoolExecutor(2) as pool:
                futures = {k: pool.submit(train, c, f, args) for k, (c, f) in cases.items()}
                results = {k: f.result() for k, f in futures.items()}
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(old)], check=False, capture_output=True)
    members = list(next(iter(results.values())))
    lines = [f"# Reproducibility check — {args.dataset}, {args.method}, seed {args.seed}", "",
             "Command:", "", "```", command_line(), "```", "",
             "Test / validation accuracy (%) of each member, one run per row.", "",
             "| run | " + " | ".join(members) + " |",
             "|---|" + "---|" * len(members)]
    for k, r in results.items():
        lines.append(f"| {k} | " + " | ".join(f"{r[m][0]:.2f} / {r[m][1]:.2f}"
                                              for m in members) + " |")
    same = all(r == results[next(iter(results))] for r in results.values())
    lines += ["", f"All three runs identical: **{'yes' if same else 'no'}**.", "",
              "Hardware and software:", "", environment_markdown(environment()), ""]
    write_text(args.output, "\n".join(lines))
    print("\n".join(lines[9:9 + len(results) + 3]))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
