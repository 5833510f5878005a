#!/usr/bin/env bash
# A checkpoint read back without blpo-gpu: tools/read_checkpoint.py (NumPy +
# the safetensors package) evaluates each agent's actor on fixed inputs and
# must match `blpo-gpu eval --actor-output` (the backend's own forward pass)
# to float rounding, for a discrete (CartPole) and a Gaussian (Pendulum) head.
# usage: checkpoint_python.sh BLPO_GPU_BINARY
set -euo pipefail
bin="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
py="$(bash "$root/tools/setup_ckpt.sh")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail=0
run_case() { # config steps obs...
  local cfg="$1" steps="$2"
  shift 2
  "$bin" --config "$cfg" --set run.num_seeds=2 --set env.num_envs=64 --set env.num_steps=16 \
    --set algo.num_minibatches=4 --set run.total_steps="$steps" --out "$tmp/$cfg" --quiet >/dev/null
  for obs in "$@"; do
    for agent in 0 1; do
      local a b
      a="$("$bin" eval "$tmp/$cfg" --actor-output "$obs" --agent $agent)"
      b="$("$py" "$root/tools/read_checkpoint.py" "$tmp/$cfg" --obs="$obs" --agent $agent)"
      if "$py" - "$a" "$b" <<'PY'; then
import sys
a = [float(v) for v in sys.argv[1].split(",")]
b = [float(v) for v in sys.argv[2].split(",")]
ok = len(a) == len(b) and all(abs(x - y) <= 1e-5 * max(1.0, abs(y)) for x, y in zip(a, b))
sys.exit(0 if ok else 1)
PY
        echo "ok   $cfg agent $agent obs [$obs]: blpo-gpu $a, numpy $b"
      else
        echo "FAIL $cfg agent $agent obs [$obs]: blpo-gpu $a, numpy $b"
        fail=1
      fi
    done
  done
}
run_case cartpole.yaml 4096 "0.01,-0.2,0.03,0.1" "1.5,2.25,-0.125,-3"
run_case pendulum.yaml 4096 "0.1,-0.5,0.25" "-1,0.3,7.5"
exit $fail
