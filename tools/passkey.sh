#!/usr/bin/env bash
# Who reaches how far: trains configs/passkey.yaml once per attention pattern, changing only
# attention.*, then evaluates each model: passkey accuracy per (length, depth) with its SVG
# heatmap, the loss by context length and by position, and the run's time per step and peak
# RSS. The runs go one after another, each alone on the machine with the config's threads, so
# that their times per step are comparable.
# Usage: tools/passkey.sh [dense dilated dilated_2048 dilated_keys dilated_every_offset
#   dilated_2048_every_offset dilated_2048_keys dilated_2048_distance local local_global] [-- --set KEY=VALUE ...]
# (default: dense dilated_2048_distance local local_global, the README's set); what follows `--` goes to every train and eval
# call, e.g. `-- --set train.precision=float32` on a CPU without native bfloat16. Each run
# lives under runs/passkey_<name>/ and is replaced on every call; its outputs are
# runs/passkey_<name>.{log,svg,passkey.txt,lengths.txt,positions.txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/tools/longnet ] || tools/setup.sh --target longnet
declare -A pattern=(
  [dense]="--set attention.kind=dense"
  # LongNet: segments doubling up to T, rates doubling with them (every segment keeps 1024 rows);
  # the config's 4 heads cover every offset of the largest rate.
  [dilated]="--set attention.kind=dilated --set attention.segment_lengths=[1024,2048,4096] --set attention.dilation_rates=[1,2,4]"
  # LongNet's own smallest segment: the paper's segments 2,048 ... 32,768 at rates 1, 2, 4, 6, 12
  # cut at T = 4,096 (a far key in one alignment of two, not four).
  [dilated_2048]="--set attention.kind=dilated --set attention.segment_lengths=[2048,4096] --set attention.dilation_rates=[1,2]"
  # The same segments and rates with only the keys thinned (attention.dilate: keys, not
  # LongNet's pattern): every query reads each head's kept keys, the 4 heads every offset.
  [dilated_keys]="--set attention.kind=dilated --set attention.segment_lengths=[1024,2048,4096] --set attention.dilation_rates=[1,2,4] --set attention.dilate=keys"
  # LongNet's rows in every head (attention.dilate: every_offset): a query meets the keys at its
  # own offset in all 4 heads, not in the one head of that offset; r times the rows per pair.
  [dilated_every_offset]="--set attention.kind=dilated --set attention.segment_lengths=[1024,2048,4096] --set attention.dilation_rates=[1,2,4] --set attention.dilate=every_offset"
  [dilated_2048_every_offset]="--set attention.kind=dilated --set attention.segment_lengths=[2048,4096] --set attention.dilation_rates=[1,2] --set attention.dilate=every_offset"
  # The 2,048-token segment with only the keys thinned: every query reads, in the rate-2 pair,
  # the even keys in heads 0 and 2 and the odd ones in heads 1 and 3: every far key in two of
  # the four heads (under every_offset only the keys at the query's own parity, in all four).
  [dilated_2048_keys]="--set attention.kind=dilated --set attention.segment_lengths=[2048,4096] --set attention.dilation_rates=[1,2] --set attention.dilate=keys"
  # The 2,048-token segment with the keys thinned by distance (attention.dilate: distance): in the
  # rate-2 pair heads 0 and 2 read the keys at an even distance behind every query, heads 1 and 3
  # those at an odd one, so all the tokens of a far key a question copies lie in one class.
  [dilated_2048_distance]="--set attention.kind=dilated --set attention.segment_lengths=[2048,4096] --set attention.dilation_rates=[1,2] --set attention.dilate=distance"
  # A local window: each 256-token block sees itself and the block before (256 to 511 keys back).
  [local]="--set attention.kind=block_sparse --set attention.local_blocks=1"
  # The window plus the first block seen by all and every 4th block behind.
  [local_global]="--set attention.kind=block_sparse --set attention.local_blocks=1 --set attention.global_blocks=1 --set attention.stride=4"
)
names=() extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = -- ]; then shift; extra=("$@"); break; fi
  names+=("$1"); shift
done
[ ${#names[@]} -gt 0 ] || names=(dense dilated_2048_distance local local_global)
for name in "${names[@]}"; do
  [ -n "${pattern[$name]+x}" ] || { echo "unknown pattern '$name' (${!pattern[*]})"; exit 1; }
done

run() {  # name: train, then evaluate; prints one summary block
  local name=$1 out=runs/passkey_$1
  rm -rf "$out"
  mkdir -p runs
  local sets="${pattern[$name]} ${extra[*]} --set train.out_dir=$out"
  # shellcheck disable=SC2086
  /usr/bin/time -v build/tools/longnet train configs/passkey.yaml $sets > "$out.log" 2>&1 ||
    { echo "$name: training failed, see $out.log"; return 0; }
  # shellcheck disable=SC2086
  build/tools/longnet eval configs/passkey.yaml $sets --passkey --lengths 1024,2048,4096 --trials 20 \
    --svg "$out.svg" > "$out.passkey.txt"
  # shellcheck disable=SC2086
  build/tools/longnet eval configs/passkey.yaml $sets --lengths 256,512,1024,2048,4096,8192 > "$out.lengths.txt"
  # shellcheck disable=SC2086
  build/tools/longnet eval configs/passkey.yaml $sets --by-position > "$out.positions.txt"
  local ms rss
  # The mean of the logged windows (evaluations and checkpoints excluded).
  ms=$(grep -o '[0-9.]* ms/step' "$out.log" | awk '{ s += $1; n++ } END { printf "%.0f ms/step", s / n }')
  rss=$(grep 'Maximum resident' "$out.log" | grep -o '[0-9]*$')
  { echo "== $name: $ms, peak RSS $((rss / 1024)) MB"
    cat "$out.passkey.txt" "$out.lengths.txt" "$out.positions.txt"; } > "$out.summary.txt"
}

for name in "${names[@]}"; do run "$name"; done
for name in "${names[@]}"; do cat "runs/passkey_$name.summary.txt" 2>/dev/null || true; done
