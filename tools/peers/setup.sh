#!/usr/bin/env bash
# Creates tools/.venv-peers with the peer trainers (idempotent) and prints its
# python. Versions are pinned so that a table's peer column can be re-run:
# rejax 0.1.3 unpacks gymnax's step as 5 values, which gymnax 1.x changed, so
# gymnax stays at 0.0.9.
#   tools/peers/setup.sh              JAX for the CPU, from the package index
#   tools/peers/setup.sh --download D also saves wheels of rejax, gymnax and
#                                     their dependencies in D, for a machine
#                                     without network (carry D there)
#   tools/peers/setup.sh --wheels D   on that machine: a venv over the system
#                                     site-packages (the GPU image's own JAX
#                                     with its CUDA plugin) plus rejax and
#                                     gymnax from D only
# Peer code lives only in the venv; nothing of it is committed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="$here/.venv-peers"
pins=(rejax==0.1.3 gymnax==0.0.9 jax==0.10.2 flax==0.12.8 optax==0.2.8)
mode="${1:-}" dir="${2:-}"
case "$mode" in
  "" | --download | --wheels) ;;
  *) echo "usage: tools/peers/setup.sh [--download DIR | --wheels DIR]" >&2; exit 2 ;;
esac
if [ -n "$mode" ] && [ -z "$dir" ]; then
  echo "tools/peers/setup.sh: $mode needs a directory" >&2
  exit 2
fi
if [ "$mode" = --wheels ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv --system-site-packages "$venv" >&2
  "$venv/bin/pip" install -q --no-index --find-links "$dir" rejax==0.1.3 gymnax==0.0.9 >&2
else
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
  "$venv/bin/python" -c "import rejax, gymnax" 2>/dev/null || "$venv/bin/pip" install -q "${pins[@]}" >&2
  if [ "$mode" = --download ]; then
    mkdir -p "$dir"
    "$venv/bin/pip" download -q -d "$dir" rejax==0.1.3 gymnax==0.0.9 >&2
  fi
fi
echo "$venv/bin/python"
