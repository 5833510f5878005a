#!/usr/bin/env bash
# The README's main command: installs missing packages, builds, trains on the
# main job (configs/cartpole.yaml unless a config is given) and plots the
# learning curve into the run directory. Extra arguments go to blpo-gpu.
#   tools/setup_and_run.sh [--config FILE] [--set key=value]...
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/setup.sh"
build="${BLPO_BUILD_DIR:-$root/build}"
args=("$@")
case " ${args[*]-} " in
  *" --config "*|*" --config="*) ;;
  *) args=(--config cartpole.yaml "${args[@]}") ;;
esac
out="$root/runs/main-$(date +%Y%m%d-%H%M%S)"
"$build/blpo-gpu" "${args[@]}" --out "$out"
py="$("$root/tools/setup_plot.sh" | tail -n 1)"
"$py" "$root/tools/plot.py" "$out" -o "$out/curve.png"
echo "learning curve: $out/curve.png"
