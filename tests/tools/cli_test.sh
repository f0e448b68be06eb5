#!/usr/bin/env bash
# The longnet command line on bad input: one clear line naming the file, key or flag, and a
# non-zero exit; and --help for every subcommand. Usage: cli_test.sh PATH/TO/longnet
set -u
longnet=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0 passed=0

# expect_fail NAME PATTERN -- COMMAND...: COMMAND must exit non-zero with PATTERN on stderr.
expect_fail() {
  local name=$1 pattern=$2
  shift 3
  local err rc
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -eq 0 ]; then
    echo "FAIL $name: exit 0, expected failure"; failures=$((failures + 1))
  elif ! grep -qE -- "$pattern" <<<"$err"; then
    echo "FAIL $name: stderr lacks /$pattern/: $err"; failures=$((failures + 1))
  elif [ "$(grep -c . <<<"$err")" -ne 1 ]; then
    echo "FAIL $name: expected one line, got: $err"; failures=$((failures + 1))
  else
    passed=$((passed + 1))
  fi
}

expect_ok() {
  local name=$1 pattern=$2
  shift 3
  local out
  if ! out=$("$@" 2>&1) || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL $name: $out"; failures=$((failures + 1))
  else
    passed=$((passed + 1))
  fi
}

printf 'To be, or not to be, that is the question.\n%.0s' $(seq 200) > "$work/corpus.txt"
# Every character of a passkey document, for eval --passkey with the char tokenizer.
echo "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about
the important information there. The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.
The pass key is 0123456789. Remember it. What is the pass key?" >> "$work/corpus.txt"
cat > "$work/ok.yaml" <<YAML
data: {path: $work/corpus.txt, seq_len: 16, batch_size: 2, cache_dir: $work/cache}
tokenizer: {path: $work/tok.model, type: char}
model: {n_layers: 1, d_model: 16, n_heads: 2}
train: {steps: 2, out_dir: $work/run, threads: 1, log_every: 1}
YAML
printf 'train:\n  stpes: 3\n' > "$work/typo.yaml"

for cmd in train eval generate tokenizer prepare export bench "bench attention" "bench train" "bench ring" "bench core" launch; do
  # shellcheck disable=SC2086
  expect_ok "help-$cmd" "Usage: longnet $cmd" -- "$longnet" $cmd --help
done
expect_ok help "Subcommands:" -- "$longnet" --help
expect_ok help-bench-lists-ring "ring +attention across P local ranks" -- "$longnet" bench --help
expect_fail bench-density "longnet bench attention: --density: expected a number in \\(0, 1\\], got 'x'" -- "$longnet" bench attention --density x
# bench attention --set: attention keys over a kind's preset, checked as a config's are.
expect_fail bench-set-value "longnet bench attention \\(dilated at T=2048, --heads 8\\): attention.dilate: expected one of queries_and_keys, keys, every_offset, distance, got 'sideways'" -- "$longnet" bench attention --kinds dilated --lengths 2048 --set attention.dilate=sideways
expect_fail bench-set-rule "attention.dilation_rates.*expected" -- "$longnet" bench attention --kinds dilated --lengths 2048 --set 'attention.dilation_rates=[1]'
expect_fail bench-set-section "--set 'model.n_layers=2': expected an attention.\\* key" -- "$longnet" bench attention --set model.n_layers=2
expect_fail bench-set-kind "--set 'attention.kind=dense': choose the kinds with --kinds" -- "$longnet" bench attention --set attention.kind=dense
# every_offset attends r times LongNet's rows in each (w, r) pair: more pairs than the preset's.
bench_pairs() {
  "$longnet" bench attention --kinds dilated --lengths 4096 --heads 2 --head-dim 8 --repeat 1 --threads 1 --json "$@" |
    grep -o '"attended_pairs":[0-9.e+]*' | cut -d: -f2
}
rows_pairs=$(bench_pairs) every_pairs=$(bench_pairs --set attention.dilate=every_offset)
if awk -v a="$rows_pairs" -v b="$every_pairs" 'BEGIN { exit !(a > 0 && b > a) }'; then
  passed=$((passed + 1))
else
  echo "FAIL bench-set-applied: attended pairs $rows_pairs (rows), $every_pairs (every_offset)"; failures=$((failures + 1))
fi
expect_fail bench-bucket-alone "longnet eval: --bucket requires --by-position" -- "$longnet" eval "$work/ok.yaml" --bucket 4
expect_ok version "LibTorch 2\.[0-9]+\.[0-9]+ \(built against\)" -- "$longnet" --version
expect_ok version-cpu "CUDA: not compiled in \(CPU build\)" -- "$longnet" --version
expect_fail cpu-build-cuda "train.device: cuda: this is longnet's CPU build" -- "$longnet" train "$work/ok.yaml" --set train.device=cuda
expect_fail unknown-command "unknown command 'trian'" -- "$longnet" trian
expect_fail missing-config "nope.yaml: config file not found" -- "$longnet" train "$work/nope.yaml"
expect_fail unknown-key "typo.yaml: train.stpes: unknown key" -- "$longnet" train "$work/typo.yaml"
expect_fail bad-type "train.steps: expected an integer, got 'ten'" -- "$longnet" train "$work/ok.yaml" --set train.steps=ten
expect_fail bad-set "--set 'train.steps': expected key.path=value" -- "$longnet" train "$work/ok.yaml" --set train.steps
expect_fail unknown-flag "longnet train: The following argument was not expected: --fast" -- "$longnet" train "$work/ok.yaml" --fast
expect_fail missing-data "data.path.*/no/such/corpus" -- "$longnet" train "$work/ok.yaml" --set data.path=/no/such/corpus
expect_fail eval-no-tokenizer "tokenizer.path.*does not exist" -- "$longnet" eval "$work/ok.yaml"
expect_ok tokenizer "pieces" -- "$longnet" tokenizer "$work/ok.yaml"
expect_fail vocab-mismatch "model.vocab_size: 999 does not match" -- "$longnet" train "$work/ok.yaml" --set model.vocab_size=999
expect_fail eval-no-checkpoint "no checkpoint" -- "$longnet" eval "$work/ok.yaml"
expect_fail export-no-checkpoint "no checkpoint .*longnet export --checkpoint DIR" -- "$longnet" export "$work/ok.yaml" --out "$work/exported"
expect_fail export-no-out "--out is required" -- "$longnet" export "$work/ok.yaml"
expect_fail window-too-long "a window needs data.seq_len \+ 1 = 5001 in each split: use a larger corpus or a shorter data.seq_len" -- "$longnet" train "$work/ok.yaml" --set data.seq_len=5000
expect_fail val-split-too-small "data.val_fraction: .* validation tokens.*raise data.val_fraction from 0.1 to about 0\.2" -- "$longnet" train "$work/ok.yaml" --set data.seq_len=1000
printf '{"text": "a document"}\n{"text": oops}\n' > "$work/bad.jsonl"
expect_fail jsonl-bad-line "bad.jsonl:2: not valid JSON .*data.skip_bad_lines" -- "$longnet" prepare "$work/ok.yaml" --set "data.path=$work/bad.jsonl"
[ -e "$work/run" ] && { echo "FAIL: a failed run created $work/run"; failures=$((failures + 1)); }
expect_ok train "done: step 2" -- "$longnet" train "$work/ok.yaml"
expect_ok eval-json '"bits_per_byte":' -- "$longnet" eval "$work/ok.yaml" --json
# eval takes attention.* from --set (a kernel has no weights), the model's keys from the checkpoint.
local_attention=(--set attention.kind=block_sparse --set attention.block_size=4 --set attention.local_blocks=0)
a=$("$longnet" eval "$work/ok.yaml" --json 2>/dev/null | grep -oE '"loss":[0-9.e+-]+')
b=$("$longnet" eval "$work/ok.yaml" --json "${local_attention[@]}" 2>/dev/null | grep -oE '"loss":[0-9.e+-]+')
if [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ]; then passed=$((passed + 1)); else echo "FAIL eval-set-attention: dense $a, local $b"; failures=$((failures + 1)); fi
expect_ok eval-set-attention-log "attention: block_sparse from --set, the checkpoint's model trained with dense" -- \
  "$longnet" eval "$work/ok.yaml" "${local_attention[@]}"
expect_fail eval-set-model "--set 'model.n_layers=2': the model is the checkpoint's \(.*/config.yaml\); only attention.\*, model.loss_chunk and model.mlp_chunk can change after training" -- \
  "$longnet" eval "$work/ok.yaml" --set model.n_layers=2
expect_ok eval-set-model-same '"bits_per_byte":' -- "$longnet" eval "$work/ok.yaml" --json --set model.n_layers=1
expect_ok eval-set-loss-chunk '"bits_per_byte":' -- "$longnet" eval "$work/ok.yaml" --json --set model.loss_chunk=8
# generate: the prompt, then text; the same seed the same text; greedy twice the same.
expect_ok generate "^To be.*" -- "$longnet" generate "$work/ok.yaml" --prompt "To be" --max-new-tokens 20
expect_ok generate-rate "generated [0-9]+ tokens in [0-9.]+ s: [0-9.]+ tokens/s \(KV cache at most [0-9]+ KiB" -- "$longnet" generate "$work/ok.yaml" --prompt "To be" --max-new-tokens 5
same_text() {  # NAME ARGS...: two runs print the same text
  local name=$1 a b
  shift
  a=$("$longnet" generate "$work/ok.yaml" --prompt "To be" --max-new-tokens 30 "$@" 2>/dev/null)
  b=$("$longnet" generate "$work/ok.yaml" --prompt "To be" --max-new-tokens 30 "$@" 2>/dev/null)
  if [ -n "$a" ] && [ "$a" = "$b" ]; then passed=$((passed + 1)); else echo "FAIL $name: '$a' then '$b'"; failures=$((failures + 1)); fi
}
same_text generate-seed --seed 5 --top-k 5 --top-p 0.9
same_text generate-greedy --temperature 0
# The KV cache and full forward passes write the same text, past the context of 16 tokens too.
a=$("$longnet" generate "$work/ok.yaml" --prompt "To be" --max-new-tokens 40 --seed 2 2>/dev/null)
b=$("$longnet" generate "$work/ok.yaml" --prompt "To be" --max-new-tokens 40 --seed 2 --no-kv-cache 2>/dev/null)
if [ -n "$a" ] && [ "$a" = "$b" ]; then passed=$((passed + 1)); else echo "FAIL generate-no-kv-cache: '$a' then '$b'"; failures=$((failures + 1)); fi
expect_fail generate-too-long "the prompt is [0-9]+ tokens, longer than the model's context of 16 \(model.max_seq_len\).*--truncate" -- \
  "$longnet" generate "$work/ok.yaml" --prompt "To be, or not to be, that is the question."
expect_ok generate-truncate "tokens/s" -- "$longnet" generate "$work/ok.yaml" --prompt "To be, or not to be, that is the question." --truncate --max-new-tokens 3
expect_fail generate-no-prompt "expected --prompt TEXT or --prompt-file F" -- "$longnet" generate "$work/ok.yaml"
expect_fail generate-missing-file "--prompt-file '.*/nope.txt': no such file" -- "$longnet" generate "$work/ok.yaml" --prompt-file "$work/nope.txt"
expect_fail generate-top-p "--top-p: expected a number in \(0, 1\], got '0'" -- "$longnet" generate "$work/ok.yaml" --prompt x --top-p 0
expect_ok eval-by-position '"by_position":\[\{"begin":0,"end":2,' -- "$longnet" eval "$work/ok.yaml" --json --by-position
expect_ok eval-by-position-table "positions +loss" -- "$longnet" eval "$work/ok.yaml" --by-position --bucket 4
expect_fail eval-bad-bucket "--bucket: expected a positive integer, got '0'" -- "$longnet" eval "$work/ok.yaml" --by-position --bucket 0
expect_fail eval-too-long "data.seq_len 64 exceeds the model.max_seq_len 16 .*; evaluate longer contexts with --lengths" -- "$longnet" eval "$work/ok.yaml" --set data.seq_len=64
expect_ok eval-lengths '"extrapolated":true,"length":32,"loss":[0-9.]+' -- \
  "$longnet" eval "$work/ok.yaml" --lengths 8,16,32 --json
expect_ok eval-lengths-table "32 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+  \(extrapolated\)" -- "$longnet" eval "$work/ok.yaml" --lengths 8,16,32
expect_fail eval-lengths-zero "--lengths: expected a positive integer, got '0'" -- "$longnet" eval "$work/ok.yaml" --lengths 8,0
expect_fail eval-score-last "--score-last 10 exceeds the shortest of --lengths, 8" -- "$longnet" eval "$work/ok.yaml" --lengths 8,16 --score-last 10
expect_ok eval-passkey '"cells":\[\{"accuracy":[0-9.]+,"depth":0\.0,"first_token_accuracy":[0-9.]+,"length":300,"passed":[0-9]+,"token_accuracy":[0-9.]+,"trials":2\}' -- \
  "$longnet" eval "$work/ok.yaml" --passkey --lengths 300 --depths 0,1 --trials 2 --json --svg "$work/pk.svg"
# The heatmap is XML that a parser reads (a checkpoint path with '&' in its title included), of
# 2 cells, and wide enough for its title (8 px a character at 14 px).
cp -r "$work/run/checkpoints/$(cat "$work/run/checkpoints/latest")" "$work/a&b"
"$longnet" eval "$work/ok.yaml" --passkey --lengths 300 --depths 0 --trials 1 --checkpoint "$work/a&b" --svg "$work/amp.svg" > /dev/null 2>&1
svg_ok='import sys, xml.dom.minidom as m
d = m.parse(sys.argv[1]); svg = d.documentElement; title = svg.getElementsByTagName("text")[0].firstChild.data
assert len(d.getElementsByTagName("rect")) == int(sys.argv[2]), "cells"
assert int(svg.getAttribute("width")) >= 8 * len(title), "width"
assert sys.argv[3] in title, title'
if python3 -c "$svg_ok" "$work/pk.svg" 2 "$work/run/checkpoints" && python3 -c "$svg_ok" "$work/amp.svg" 1 "$work/a&b"; then
  passed=$((passed + 1))
else
  echo "FAIL eval-passkey-svg: $work/pk.svg or $work/amp.svg is not a heatmap of its cells under its checkpoint's path"; failures=$((failures + 1))
fi
expect_fail eval-passkey-depth "--depths: Value 1.5 not in range" -- "$longnet" eval "$work/ok.yaml" --passkey --depths 0,1.5
expect_fail eval-passkey-short "--lengths 20 cannot hold a passkey document: at least [0-9]+ tokens" -- \
  "$longnet" eval "$work/ok.yaml" --passkey --lengths 20
expect_fail eval-depths-alone "--depths requires --passkey" -- "$longnet" eval "$work/ok.yaml" --depths 0.5
expect_fail bench-unknown "unknown benchmark 'trian'" -- "$longnet" bench trian
expect_fail bench-train-lengths "longnet bench train: Could not convert: --lengths = 1k" -- "$longnet" bench train "$work/ok.yaml" --lengths 1k
expect_fail bench-train-config "typo.yaml: train.stpes: unknown key" -- "$longnet" bench train "$work/typo.yaml"
expect_ok bench-train '"tokens_per_s":' -- "$longnet" bench train "$work/ok.yaml" --lengths 32 --json --set model.max_seq_len=32 \
  --set train.activation_checkpointing=blocks
expect_ok bench-ring '"step_rss_mb":' -- "$longnet" bench ring --lengths 64 --ranks 2 --heads 2 --head-dim 8 --json
expect_ok bench-ring-dilated '"kind":"dilated"' -- "$longnet" bench ring --kind dilated --lengths 64 --ranks 1,2 --heads 2 --head-dim 8 --json
expect_fail bench-ring-kind "--kind: expected a kind with a cross-rank form .block_sparse, dense, dilated, ring., got 'flash'" -- "$longnet" bench ring --kind flash
expect_fail checkpointing-bad "train.activation_checkpointing: expected none, blocks or \{every_k: N\}, got 'all'" -- \
  "$longnet" train "$work/ok.yaml" --set train.activation_checkpointing=all
expect_fail launch-no-nproc "longnet launch: --nproc is required" -- "$longnet" launch -- train "$work/ok.yaml"
# Each rank reports its own error, then launch names the first rank that failed.
out=$("$longnet" launch --nproc 2 -- train "$work/nope.yaml" 2>&1) && rc=0 || rc=$?
if [ $rc -ne 1 ] || ! grep -q "config file not found" <<<"$out" || ! grep -qE "launch: rank [01] exited with status 1" <<<"$out"; then
  echo "FAIL launch-rank-fails (exit $rc): $out"; failures=$((failures + 1))
else
  passed=$((passed + 1))
fi
expect_ok launch-train "2 data-parallel replicas of 1 sequence ranks" -- "$longnet" launch --nproc 2 -- train "$work/ok.yaml" \
  --set train.out_dir="$work/run-dp"
expect_ok launch-sp "1 data-parallel replicas of 2 sequence ranks" -- "$longnet" launch --nproc 2 -- train "$work/ok.yaml" \
  --set train.out_dir="$work/run-sp" --set distributed.sequence_parallel=2
expect_fail dist-sp-alone "distributed.sequence_parallel: 2 needs a run of a multiple of 2 ranks" -- "$longnet" train "$work/ok.yaml" --set distributed.sequence_parallel=2
out=$("$longnet" launch --nproc 3 -- train "$work/ok.yaml" --set distributed.sequence_parallel=2 2>&1) && rc=0 || rc=$?
if [ $rc -ne 1 ] || ! grep -q "distributed.sequence_parallel: 2 does not divide the 3 ranks" <<<"$out"; then
  echo "FAIL launch-sp-not-dividing (exit $rc): $out"; failures=$((failures + 1))
else
  passed=$((passed + 1))
fi
expect_ok launch-eval-lengths '"length":16' -- "$longnet" launch --nproc 2 -- eval "$work/ok.yaml" --lengths 8,16 --json
out=$("$longnet" launch --nproc 2 -- eval "$work/ok.yaml" 2>&1) && rc=0 || rc=$?
if [ $rc -ne 1 ] || ! grep -q "under launch only --lengths runs" <<<"$out"; then
  echo "FAIL launch-eval-whole (exit $rc): $out"; failures=$((failures + 1))
else
  passed=$((passed + 1))
fi
expect_fail eval-bad-checkpoint "not a checkpoint directory" -- "$longnet" eval "$work/ok.yaml" --checkpoint "$work/nowhere"
# A name longer than the file system allows is the same refusal, naming the path, not a filesystem_error.
expect_fail eval-checkpoint-name-too-long "/$(printf 'x%.0s' {1..300}): not a checkpoint directory .*File name too long" -- \
  "$longnet" eval "$work/ok.yaml" --checkpoint "$work/$(printf 'x%.0s' {1..300})"
expect_fail other-model "other model/attention settings" -- "$longnet" train "$work/ok.yaml" --set model.d_model=32
echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
