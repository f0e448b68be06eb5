#!/usr/bin/env bash
# Trains configs/stability.yaml (24 layers, d = 64, lr 5e-3) with model.norm = post, subln and
# deepnorm, and prints each run's final training and validation loss. Extra arguments go to
# `longnet train` (e.g. --set train.lr=1e-3). Its runs live under runs/stability/ and are
# replaced on every call.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/tools/longnet ] || tools/setup.sh --target longnet
printf '%-9s %12s %12s %10s\n' norm "train loss" "val loss" "seconds"
for norm in post subln deepnorm; do
  out=runs/stability/$norm
  rm -rf "$out"  # a fresh run each time (the trainer would resume a finished one)
  start=$(date +%s)
  build/tools/longnet train configs/stability.yaml --set model.norm=$norm --set train.out_dir=$out "$@" \
    > "runs/stability-$norm.log" 2>&1 || { echo "$norm: training failed, see runs/stability-$norm.log"; continue; }
  secs=$(( $(date +%s) - start ))
  # The last step's record holds its training loss and the final validation loss.
  last=$(tail -1 "$out/metrics.jsonl")
  train=$(sed 's/.*"loss":\([^,}]*\).*/\1/' <<< "$last")
  val=$(sed 's/.*"val_loss":\([^,}]*\).*/\1/' <<< "$last")
  printf '%-9s %12.4f %12.4f %10d\n' "$norm" "$train" "$val" "$secs"
done
