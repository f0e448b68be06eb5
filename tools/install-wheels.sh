#!/usr/bin/env bash
# tools/install-wheels.sh REQUIREMENTS: installs a pinned requirements file of tools/ into the
# project's virtual environment .venv (made if missing), with pip --no-deps. The wheels are
# downloaded once per machine into $LONGNET_WHEEL_CACHE (default ~/.cache/longnet/wheels) and
# installed from there, so a second clone (CI's, for one) downloads nothing. A stamp in .venv
# keeps each file's installed copy: nothing happens until the file changes.
set -euo pipefail
cd "$(dirname "$0")"
requirements=$(basename "$1")
stamp=../.venv/.longnet-$requirements
cmp -s "$requirements" "$stamp" 2>/dev/null && exit 0
cache=${LONGNET_WHEEL_CACHE:-$HOME/.cache/longnet/wheels}
mkdir -p "$cache"
[ -x ../.venv/bin/python ] || python3 -m venv ../.venv
echo "installing tools/$requirements into .venv (wheels cached in $cache)"
../.venv/bin/pip download -q --no-deps -d "$cache" -r "$requirements"
../.venv/bin/pip install -q --no-deps --no-index --find-links "$cache" -r "$requirements"
cp "$requirements" "$stamp"
