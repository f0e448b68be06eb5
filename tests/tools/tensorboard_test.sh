#!/usr/bin/env bash
# TensorBoard event files, read back by the real tensorboard package (tools/check_tensorboard.py):
# a run, its resume from an earlier checkpoint after it had logged further (as after a kill),
# and `longnet eval`. Every scalar of metrics.jsonl is in the event files once, at its step.
# Usage: tensorboard_test.sh PATH/TO/longnet
source "$(dirname "$0")/lib.sh"

cat > "$work/run.yaml" <<YAML
data: {path: $work/corpus.txt, seq_len: 16, batch_size: 2, cache_dir: $work/cache}
tokenizer: {path: $work/tok.model, type: char}
model: {n_layers: 1, d_model: 16, n_heads: 2}
train: {steps: 6, out_dir: $work/run, threads: 1, log_every: 1, eval_every: 3, ckpt_every: 2, keep_last: 5}
YAML
"$longnet" train "$work/run.yaml" >/dev/null 2>&1
"$python" "$root/tools/check_tensorboard.py" "$work/run"

# As if the run had been killed after logging step 6 but before checkpointing it: latest goes
# back to step 4. Resuming to step 8 must rewrite steps 5 and 6, not add them a second time.
rm -rf "$work/run/checkpoints/step_00000006"
echo step_00000004 > "$work/run/checkpoints/latest"
"$longnet" train "$work/run.yaml" --set train.steps=8 >/dev/null 2>&1
"$python" "$root/tools/check_tensorboard.py" "$work/run"

"$longnet" eval "$work/run.yaml" >/dev/null 2>&1
"$python" "$root/tools/check_tensorboard.py" "$work/run" --eval-step 8

# train.tensorboard: false writes none.
"$longnet" train "$work/run.yaml" --set train.steps=2 --set "train.out_dir=$work/quiet" --set train.tensorboard=false >/dev/null 2>&1
[ ! -e "$work/quiet/tensorboard" ] || { echo "FAIL: train.tensorboard: false wrote $work/quiet/tensorboard"; exit 1; }
echo "ok train.tensorboard: false writes no event file"
