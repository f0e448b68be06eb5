#!/usr/bin/env bash
# The tests: set up, build everything, run the whole GoogleTest suite (and the CLI checks)
# through ctest. Extra arguments go to ctest (e.g. -LE slow for the quick loop).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
ctest --test-dir build --output-on-failure -j2 "$@"
