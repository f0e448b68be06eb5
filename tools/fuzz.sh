#!/usr/bin/env bash
# The libFuzzer harnesses of tests/fuzz/ (tests/fuzz/README.md): builds them with clang, ASan and
# UBSan under build/fuzz, then runs each for a time with a memory limit, and prints a table of
# executions, corpus size and findings. Exit 1 when any harness found something: the input is
# under build/fuzz/artifacts/.
#   tools/fuzz.sh                      every harness for 5 s (what CI runs)
#   tools/fuzz.sh --seconds 1800 shard one harness for 30 minutes
#   tools/fuzz.sh --jobs 2 --seconds 1800   two harnesses at a time
# The corpus each run grows is build/fuzz/corpus/<name>, seeded from tests/fuzz/corpus/<name>.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=5 jobs=1 names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "tools/fuzz.sh: unknown flag '$1' (expected --seconds N, --jobs N, or harness names)" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
all=(config shard checkpoint corpus safetensors)
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
for n in "${names[@]}"; do
  [[ " ${all[*]} " == *" $n "* ]] || { echo "tools/fuzz.sh: no harness '$n' (expected one of: ${all[*]})" >&2; exit 2; }
done

# clang's libFuzzer runtime, on top of what tools/setup.sh installs.
missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
tools/install-wheels.sh requirements-cpu.txt
torch_root=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGNET_FUZZ=ON \
  -DLONGNET_BUILD_TESTS=OFF -DLONGNET_TORCH_ROOT="$torch_root" >/dev/null
cmake --build build/fuzz --target fuzzers

# LibTorch is not instrumented: its containers cannot be checked for overflow from our side.
export ASAN_OPTIONS=detect_container_overflow=0:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp
run_one() {
  # Absolute paths: some harnesses change directory into their scratch folder.
  local n=$1 work=$PWD/build/fuzz/corpus/$1 log=$PWD/build/fuzz/logs/$1.log
  mkdir -p "$work" build/fuzz/logs build/fuzz/artifacts
  "build/fuzz/tests/fuzz/fuzz_$n" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=20 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$PWD/build/fuzz/artifacts/$n-" "$work" "$PWD/tests/fuzz/corpus/$n" \
    >"$log" 2>&1 && echo ok >"$log.result" || echo "found (see $log)" >"$log.result"
}
running=0
for n in "${names[@]}"; do
  run_one "$n" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

status=0
printf '| harness | seconds | executions | exec/s | corpus files | peak RSS MB | result |\n|---|---|---|---|---|---|---|\n'
for n in "${names[@]}"; do
  log=build/fuzz/logs/$n.log
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  result=$(cat "$log.result")
  [ "$result" = ok ] || status=1
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$seconds" "$(stat number_of_executed_units)" \
    "$(stat average_exec_per_sec)" "$(find "build/fuzz/corpus/$n" "tests/fuzz/corpus/$n" -type f | wc -l)" \
    "$(stat peak_rss_mb)" "$result"
done
exit $status
