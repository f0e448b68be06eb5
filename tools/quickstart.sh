#!/usr/bin/env bash
# The main job: set up, build, train configs/quickstart.yaml on the default corpus (the Python
# 3.11 documentation), then evaluate it. Extra arguments go to `longnet train` (e.g. --set ...).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --target longnet
build/tools/longnet train configs/quickstart.yaml "$@"
build/tools/longnet eval configs/quickstart.yaml "$@"
