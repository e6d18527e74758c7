#!/usr/bin/env bash
# Plain-PyG reference and `graphmutual train --method independent` of the same shape, one job
# at a time, one torch thread.  Resumable: finished seeds/folds are skipped.
# Usage: benchmarks/reference/side_by_side.sh DATA_ROOT RUN_DIR JOB...
#   JOB = ogb:<dataset>:<seeds>:<epochs>  (e.g. ogb:ogbg-molbace:0,1,2,3,4:50)
#         tu:<DATASET>:<folds>:<epochs>   (e.g. tu:MUTAG:0-9:100)
# Reference JSON goes to benchmarks/results/reference/runs/, graphmutual runs to RUN_DIR.
set -euo pipefail
ROOT=$1; RUNS=$2; shift 2
HERE=$(cd "$(dirname "$0")/../.." && pwd)
RAW=$HERE/benchmarks/results/reference/runs
mkdir -p "$RAW" "$RUNS"
export OMP_NUM_THREADS=1 PYTHONPATH=$HERE
seeds_of() { case $1 in *-*) seq "${1%-*}" "${1#*-}";; *) tr , '\n' <<<"$1";; esac; }
for job in "$@"; do
  IFS=: read -r kind ds seeds epochs <<<"$job"
  lower=$(tr '[:upper:]' '[:lower:]' <<<"$ds")
  if [ "$kind" = ogb ]; then
    python "$HERE/benchmarks/reference/ogb_mol.py" --dataset "$ds" --root "$ROOT" \
      --seeds "$(seeds_of "$seeds" | paste -sd,)" --epochs "$epochs" --threads 1 \
      --out "$RAW/ref-$lower-gin-e$epochs.json" | grep -v ' epoch ' || true
    cfg=$HERE/benchmarks/configs/graph-small-ogb.yaml
  else
    python "$HERE/benchmarks/reference/tu.py" --dataset "$ds" --root "$ROOT" \
      --folds "$seeds" --epochs "$epochs" --threads 1 --out "$RAW/ref-$lower-gin-e$epochs.json"
    cfg=$HERE/benchmarks/configs/graph-small-tu.yaml
  fi
  for s in $(seeds_of "$seeds"); do
    out=$RUNS/gm-$lower-e$epochs-s$s
    [ -f "$out/results.json" ] && continue
    python -m graphmutual train --config "$cfg" --dataset "$lower" --root "$ROOT" \
      --epochs "$epochs" --seeds "$s," --output "$out" --no-progress | tail -3
  done
done
