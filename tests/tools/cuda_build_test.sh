#!/usr/bin/env bash
# The CUDA build on a machine without a GPU: it loads, says what it was built with, and a run
# with train.device: cuda stops at once with one line saying that no CUDA device is present.
# Usage: cuda_build_test.sh PATH/TO/build/cuda/tools/longnet
set -u
longnet=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0 passed=0
check() {  # NAME CONDITION-MESSAGE: counts a result
  if [ "$2" = ok ]; then passed=$((passed + 1)); else echo "FAIL $1: $2"; failures=$((failures + 1)); fi
}

out=$("$longnet" --version 2>&1)
grep -q "CUDA: compiled in" <<<"$out" && grep -q "NCCL: compiled in" <<<"$out" && check version ok ||
  check version "expected CUDA and NCCL compiled in: $out"

printf 'To be, or not to be, that is the question.\n%.0s' $(seq 50) > "$work/corpus.txt"
cat > "$work/ok.yaml" <<YAML
data: {path: $work/corpus.txt, seq_len: 16, batch_size: 2, cache_dir: $work/cache}
tokenizer: {path: $work/tok.model, type: char}
model: {n_layers: 1, d_model: 16, n_heads: 2}
train: {steps: 2, out_dir: $work/run, threads: 1, device: cuda}
YAML
if "$longnet" --version | grep -q "CUDA devices visible: 0"; then
  err=$("$longnet" train "$work/ok.yaml" 2>&1 >/dev/null) && rc=0 || rc=$?
  if [ $rc -ne 1 ] || [ "$(grep -c . <<<"$err")" -ne 1 ] || ! grep -q "no CUDA device is present" <<<"$err"; then
    check no-device "expected exit 1 and one line naming the missing device, got exit $rc: $err"
  else
    check no-device ok
  fi
  [ ! -e "$work/run" ] && [ ! -e "$work/tok.model" ] && check no-device-no-work ok ||
    check no-device-no-work "the run did work before naming the missing device"
else
  echo "a CUDA device is visible: the no-device check does not apply"
fi
echo "$passed passed, $failures failed"
[ $failures -eq 0 ]
