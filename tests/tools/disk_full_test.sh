#!/usr/bin/env bash
# Writes that cannot complete, on real limits: a checkpoint on a full filesystem (a small tmpfs
# in a mount namespace of its own, where this process may create one), a checkpoint, the
# tokenizer and the token shards past a file-size limit (ulimit -f: EFBIG). Each must stop the
# run with one line naming the path and the error, exit 1, leave no temporary behind, keep the
# last whole checkpoint where `latest` points, and let a later run resume from it.
# Usage: disk_full_test.sh PATH/TO/longnet
set -u
longnet=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0 passed=0 skipped=0
check() {  # NAME ok|MESSAGE
  if [ "$2" = ok ]; then passed=$((passed + 1)); else echo "FAIL $1: $2"; failures=$((failures + 1)); fi
}

printf 'To be, or not to be, that is the question: whether tis nobler in the mind to suffer.\n%.0s' $(seq 300) > "$work/corpus.txt"
# 2 layers of d = 128: a checkpoint of about 5 MB (weights and AdamW moments).
config() {  # OUT_DIR CACHE_DIR TOKENIZER
  cat <<YAML
data: {path: $work/corpus.txt, seq_len: 32, batch_size: 2, cache_dir: $2}
tokenizer: {path: $3, type: char}
model: {n_layers: 2, d_model: 128, n_heads: 2}
train: {steps: 6, out_dir: $1, threads: 1, log_every: 1, ckpt_every: 2, keep_last: 1, eval_every: 0}
YAML
}

# expect_stop NAME PATTERN DIR -- COMMAND...: exit 1, one line on stderr matching PATTERN, no
# temporary (.tmp-*) left under DIR, no "terminate" or abort.
expect_stop() {
  local name=$1 pattern=$2 dir=$3
  shift 4
  local err rc
  err=$("$@" 2>&1 >/dev/null) && rc=0 || rc=$?
  if [ $rc -ne 1 ]; then
    check "$name" "exit $rc, expected 1: $err"
  elif [ "$(grep -c . <<<"$err")" -ne 1 ] || ! grep -qE -- "$pattern" <<<"$err"; then
    check "$name" "expected one line matching /$pattern/, got: $err"
  elif [ -n "$(find "$dir" -name '.tmp-*' 2>/dev/null)" ]; then
    check "$name" "temporaries left: $(find "$dir" -name '.tmp-*')"
  else
    check "$name" ok
  fi
}

# latest_is NAME CKPT_DIR STEP: `latest` names step_STEP, a whole checkpoint (its manifest).
latest_is() {
  local want
  want=$(printf 'step_%08d' "$3")
  if [ "$(cat "$2/latest" 2>/dev/null)" != "$want" ] || [ ! -f "$2/$want/manifest.json" ]; then
    check "$1" "latest is '$(cat "$2/latest" 2>/dev/null)', expected $want with its manifest"
  else
    check "$1" ok
  fi
}

# resumes NAME CONFIG STEP: a run without the limit resumes from STEP and finishes.
resumes() {
  local out
  if ! out=$("$longnet" train "$2" 2>&1) || ! grep -q "resuming from .*(step $3)" <<<"$out"; then
    check "$1" "expected to resume from step $3 and finish: $out"
  else
    check "$1" ok
  fi
}

# 1. A full filesystem: out_dir on an 8 MB tmpfs holds one checkpoint and the temporary of the
# next does not fit.
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
  mnt="$work/tmpfs"
  mkdir -p "$mnt"
  config "$mnt/run" "$work/cache" "$work/tok.model" > "$work/full.yaml"
  # shellcheck disable=SC2016
  result=$(unshare -m bash -c '
    set -u
    mount --make-rprivate / && mount -t tmpfs -o size=8m tmpfs "$1" || { echo "no mount"; exit 0; }
    err=$("$2" train "$3" 2>&1 >/dev/null) && rc=0 || rc=$?
    echo "rc=$rc"
    echo "err=$err"
    echo "tmp=$(find "$1" -name ".tmp-*" | wc -l)"
    echo "latest=$(cat "$1/run/checkpoints/latest" 2>/dev/null)"
    ls "$1/run/checkpoints/$(cat "$1/run/checkpoints/latest" 2>/dev/null)/manifest.json" >/dev/null 2>&1 && echo "whole=yes"
    mount -o remount,size=64m "$1"
    out=$("$2" train "$3" 2>&1) && echo "resumed_rc=0" || echo "resumed_rc=$?"
    grep -o "resuming from [^ ]* (step [0-9]*)" <<<"$out"
  ' _ "$mnt" "$longnet" "$work/full.yaml")
  if grep -q "^no mount" <<<"$result"; then
    echo "skipped: no tmpfs could be mounted here"; skipped=$((skipped + 1))
  else
    grep -q "^rc=1$" <<<"$result" && [ "$(grep -c '^err=' <<<"$result")" -eq 1 ] &&
      [ "$(sed -n '/^err=/,/^tmp=/p' <<<"$result" | grep -vc '^tmp=')" -eq 1 ] &&
      grep -qE "^err=error: checkpoint of step [0-9]+ not written: .*/run/checkpoints/step_[0-9]+/[a-z.]+: write failed: No space left on device; the last whole checkpoint, .*step_00000002, is kept" <<<"$result" &&
      check full-disk-one-line ok || check full-disk-one-line "expected exit 1 and one line naming the file and ENOSPC: $result"
    grep -q "^tmp=0$" <<<"$result" && check full-disk-no-temporary ok || check full-disk-no-temporary "$result"
    grep -q "^latest=step_00000002$" <<<"$result" && grep -q "^whole=yes$" <<<"$result" &&
      check full-disk-latest-whole ok || check full-disk-latest-whole "$result"
    grep -q "^resumed_rc=0$" <<<"$result" && grep -q "(step 2)" <<<"$result" &&
      check full-disk-resumes ok || check full-disk-resumes "$result"
  fi
else
  echo "skipped: a tmpfs needs root and a mount namespace"; skipped=$((skipped + 1))
fi

# 2. A file-size limit (EFBIG) while a checkpoint is written: two steps without it, then a run
# to step 4 under `ulimit -f 1024` (1 MB, less than model.pt).
config "$work/efbig" "$work/cache" "$work/tok.model" > "$work/efbig.yaml"
"$longnet" train "$work/efbig.yaml" --set train.steps=2 > /dev/null 2>&1 || check efbig-setup "the first two steps failed"
expect_stop efbig-checkpoint \
  "^error: checkpoint of step 4 not written: .*/efbig/checkpoints/step_00000004/model\.pt: write failed: File too large; the last whole checkpoint, .*step_00000002, is kept" \
  "$work/efbig" -- bash -c 'ulimit -f 1024; exec "$@"' _ "$longnet" train "$work/efbig.yaml" --set train.steps=4
latest_is efbig-latest-whole "$work/efbig/checkpoints" 2
resumes efbig-resumes "$work/efbig.yaml" 2

# 3. The tokenizer and the token shards past the limit: named, nothing left under a real name
# or a temporary one, and a later run without the limit prepares them.
config "$work/prep" "$work/cache2" "$work/tok2/tok.model" > "$work/prep.yaml"
expect_stop tokenizer-efbig "^error: .*tok2/tok\.model: write failed: File too large$" "$work/tok2" -- \
  bash -c 'ulimit -f 0; exec "$@"' _ "$longnet" tokenizer "$work/prep.yaml"
[ ! -e "$work/tok2/tok.model" ] && check tokenizer-not-left ok || check tokenizer-not-left "a tokenizer file was left"
"$longnet" tokenizer "$work/prep.yaml" > /dev/null 2>&1 || check tokenizer-setup "the tokenizer could not be trained"
expect_stop shards-efbig "^error: .*cache2/[0-9a-f]+/(train|val)\.bin: write failed: File too large$" "$work/cache2" -- \
  bash -c 'ulimit -f 8; exec "$@"' _ "$longnet" prepare "$work/prep.yaml"
out=$("$longnet" prepare "$work/prep.yaml" 2>&1) && check shards-rebuilt ok || check shards-rebuilt "$out"

echo "$passed passed, $failures failed, $skipped skipped"
[ $failures -eq 0 ]
