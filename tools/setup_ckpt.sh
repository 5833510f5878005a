#!/usr/bin/env bash
# Creates tools/.venv-ckpt with numpy and safetensors for tools/read_checkpoint.py
# (idempotent); prints the venv's python.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-ckpt"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
"$venv/bin/python" -c "import numpy, safetensors" 2>/dev/null ||
  "$venv/bin/pip" install -q numpy safetensors >&2
echo "$venv/bin/python"
