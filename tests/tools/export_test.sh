#!/usr/bin/env bash
# longnet export, read by the real safetensors package: every tensor equal to the checkpoint's
# (tools/check_export.py), and an independent numpy forward pass (tools/reference_forward.py)
# that must reproduce longnet's logits to 1e-4, for two sets of model options; and train.init_from, from a fitting export and from one that does not fit.
# Usage: export_test.sh PATH/TO/longnet
source "$(dirname "$0")/lib.sh"

cat > "$work/run.yaml" <<YAML
data: {path: $work/corpus.txt, seq_len: 32, batch_size: 2, cache_dir: $work/cache}
tokenizer: {path: $work/tok.model, type: char}
model: {n_layers: 2, d_model: 32, n_heads: 4}
train: {steps: 4, out_dir: $work/a, threads: 1, lr: 1.0e-2, warmup_steps: 1}
YAML
other=(--set train.out_dir="$work/b" --set model.n_kv_heads=2 --set model.mlp=swiglu --set model.norm_type=rmsnorm
       --set model.bias=true --set model.pos=none)

"$longnet" train "$work/run.yaml" >/dev/null 2>&1
"$longnet" export "$work/run.yaml" --out "$work/export_a" --sample-tokens 32 >/dev/null
echo "export of layernorm, gelu, rope:"
"$python" "$root/tools/reference_forward.py" "$work/export_a"
"$python" "$root/tools/check_export.py" "$work/a/checkpoints/$(cat "$work/a/checkpoints/latest")" "$work/export_a"
for f in model.safetensors config.json tokenizer.model; do
  [ -s "$work/export_a/$f" ] || { echo "FAIL: export wrote no $f"; exit 1; }
done
cmp -s "$work/tok.model" "$work/export_a/tokenizer.model" || { echo "FAIL: tokenizer.model is not the run's"; exit 1; }

"$longnet" train "$work/run.yaml" "${other[@]}" >/dev/null 2>&1
"$longnet" export "$work/run.yaml" "${other[@]}" --out "$work/export_b" --sample-tokens 32 >/dev/null
echo "export of rmsnorm, swiglu, no positions, biases, 2 key/value heads:"
"$python" "$root/tools/reference_forward.py" "$work/export_b"
"$python" "$root/tools/check_export.py" "$work/b/checkpoints/$(cat "$work/b/checkpoints/latest")" "$work/export_b"

# The way back: a new run from export_a's weights; a model that does not fit export_b.
out=$("$longnet" train "$work/run.yaml" --set train.out_dir="$work/c" --set train.init_from="$work/export_a" 2>&1)
grep -q "initialized the model from $work/export_a" <<<"$out" || { echo "FAIL: init_from: $out"; exit 1; }
echo "ok train.init_from starts a run from export_a"
if err=$("$longnet" train "$work/run.yaml" --set train.out_dir="$work/d" --set train.init_from="$work/export_b" 2>&1 >/dev/null); then
  echo "FAIL: init_from accepted an export of other settings"; exit 1
fi
grep -q "train.init_from: .*tensor 'blocks.0.attn.qkv.weight' has shape \[64, 32\], the model expects \[96, 32\]" <<<"$err" ||
  { echo "FAIL: init_from's error: $err"; exit 1; }
[ "$(grep -c . <<<"$err")" -eq 1 ] || { echo "FAIL: more than one line: $err"; exit 1; }
echo "ok an export of other settings is refused in one line naming its first tensor that does not fit"
