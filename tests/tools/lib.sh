# Sourced by the CLI test scripts that train a tiny model: $longnet (the binary, their first
# argument), $root (the checkout), $python (.venv's), and $work, a temporary folder removed at
# exit that holds corpus.txt, a few kilobytes of one repeated line.
set -euo pipefail
longnet=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=$root/.venv/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'To be, or not to be, that is the question.\n%.0s' $(seq 200) > "$work/corpus.txt"
