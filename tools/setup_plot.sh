#!/usr/bin/env bash
# Creates tools/.venv-plot with matplotlib for tools/plot.py (idempotent).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-plot"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -c "import matplotlib" 2>/dev/null || "$venv/bin/pip" install -q matplotlib
echo "$venv/bin/python"
