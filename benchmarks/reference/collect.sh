#!/usr/bin/env bash
# Copy the small outputs (results.json, per-epoch log CSVs) of graphmutual runs into the repo.
# Usage: benchmarks/reference/collect.sh RUN_DIR_PREFIX...   (checkpoints are left behind)
set -euo pipefail
RAW=$(cd "$(dirname "$0")/../.." && pwd)/benchmarks/results/reference/runs
for run in "$@"; do
  [ -f "$run/results.json" ] || continue
  dst=$RAW/$(basename "$run"); mkdir -p "$dst"
  cp "$run/results.json" "$dst/"; cp "$run"/log_seed*.csv "$dst/" 2>/dev/null || true
done
