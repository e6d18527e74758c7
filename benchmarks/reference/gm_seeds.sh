#!/usr/bin/env bash
# `graphmutual train` of one YAML config, one seed per output folder (resumable: finished
# seeds are skipped), one torch thread.
# Usage: benchmarks/reference/gm_seeds.sh CONFIG DATASET SEEDS(0-4|0,2) EPOCHS DATA_ROOT OUT_PREFIX
set -euo pipefail
cfg=$1; ds=$2; seeds=$3; epochs=$4; root=$5; prefix=$6
HERE=$(cd "$(dirname "$0")/../.." && pwd)
export OMP_NUM_THREADS=1 PYTHONPATH=$HERE
case $seeds in *-*) list=$(seq "${seeds%-*}" "${seeds#*-}");; *) list=$(tr , ' ' <<<"$seeds");; esac
for s in $list; do
  out=$prefix-s$s
  [ -f "$out/results.json" ] && continue
  python -m graphmutual train --config "$cfg" --dataset "$ds" --root "$root" --epochs "$epochs" \
    --seeds "$s," --output "$out" --no-progress | tail -2
done
