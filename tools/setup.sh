#!/usr/bin/env bash
# Installs what blpo-gpu needs to build (Debian/Ubuntu), then configures and
# builds it in ./build. Idempotent: installed packages and a configured build
# directory are reused. Used by the README's two commands and by CI.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

pkgs=(build-essential cmake pkg-config libyaml-dev libopenblas-dev libopenblas-openmp-dev liblapack-dev python3 python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing packages; install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
# wanted by the tests (scripts_lint), never required: installed only where
# this script installs packages, and a failure to install it is no error
optional=(shellcheck)
opt_missing=()
for p in "${optional[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || opt_missing+=("$p")
done
if [ "${#opt_missing[@]}" -gt 0 ] && [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # the package lists may never have been fetched on this machine
  { apt-get install -y -qq "${opt_missing[@]}" || { apt-get update -qq &&
    apt-get install -y -qq "${opt_missing[@]}"; }; } >/dev/null 2>&1 ||
    echo "setup: could not install ${opt_missing[*]} (optional; the tests then skip that check)"
fi

build="${BLPO_BUILD_DIR:-$root/build}"
cuda="${BLPO_CUDA:-AUTO}"
# Configure every time (cheap): picks up libraries installed since the last run.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBLPO_CUDA="$cuda" >/dev/null
cmake --build "$build" -j "$(nproc)" 2>&1 | grep -Ev '^\[ *[0-9]+%\]|^-- ' || true
test -x "$build/blpo-gpu"
echo "setup: built $build/blpo-gpu"
