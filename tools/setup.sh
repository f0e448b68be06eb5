#!/usr/bin/env bash
# Installs what longnet needs and builds it in Release under build/. Used by the README's two
# commands and by CI. Safe to run again: it only adds what is missing.
#   - Debian (bookworm) packages: the compiler, CMake, yaml-cpp, spdlog, SentencePiece, ...
#   - LibTorch 2 from PyPI's torch wheel, pinned in tools/requirements-cpu.txt, into .venv;
#     and the readers the tests check longnet's files with (tools/requirements-check.txt).
#     Wheels are downloaded once per machine into $LONGNET_WHEEL_CACHE (default
#     ~/.cache/longnet/wheels), so a second clone installs without downloading again.
# Extra arguments go to `cmake --build` (e.g. --target longnet).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ pkg-config python3 python3-venv
          libyaml-cpp-dev libspdlog-dev libsentencepiece-dev libgtest-dev nlohmann-json3-dev libcli11-dev libxxhash-dev libisal-dev
          python3.11-doc)     # the default corpus: the Python 3.11 documentation sources

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The pinned wheels into the project-local virtual environment .venv.
tools/install-wheels.sh requirements-cpu.txt
tools/install-wheels.sh requirements-check.txt
torch_root=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGNET_TORCH_ROOT="$torch_root" >/dev/null
cmake --build build "$@"
