#!/usr/bin/env bash
# Installs what longnet needs from Debian (bookworm) and builds it in Release under build/.
# Used by the README's two commands and by CI. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ pkg-config
          libtorch-dev libgloo-dev libyaml-cpp-dev libspdlog-dev libsentencepiece-dev
          libgtest-dev nlohmann-json3-dev
          libopenblas0-openmp   # LibTorch's BLAS: ~45x faster than the reference BLAS
          python3.11-doc)       # the default corpus: the Python 3.11 documentation sources

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

# Make sure the BLAS that LibTorch loads is OpenBLAS, not the reference implementation.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || true)
case "$blas" in
  *openblas*) ;;
  *) echo "warning: libblas.so.3 is $blas, not OpenBLAS: training will be very slow" >&2 ;;
esac

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build "$@"
