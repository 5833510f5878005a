#!/usr/bin/env bash
# blpo-gpu's PPO against rejax's PPO (tools/peers/rejax_ppo.py) on the same
# machine in the same run: CartPole-v1, the same num_envs, num_steps, epochs,
# minibatches, learning rate, clip and entropy settings and step budget. One
# difference: blpo-gpu anneals the learning rate linearly to 0 (cartpole.yaml's
# anneal_lr), rejax 0.1.3's PPO keeps it constant.
# Prints a markdown table: training env steps per second of each (blpo-gpu's
# whole process wall time; rejax's training with compilation excluded, which
# favours rejax; the faster of REPEATS runs each), their ratio, and each
# trained policy's mean return over 128 sampled-action episodes. The two run
# alternately, REPEATS rounds (rejax compiles anew each round; not timed).
#   tools/peers/compare.sh [cpu|cuda] [BUILD_DIR]
# Environment: SIZES (num_envs list, default "1024"), STEPS (env steps per
# run, default 1048576), REPEATS (default 2), BLPO_COMMIT.
set -euo pipefail
dev="${1:-cpu}"
build="${2:-build}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
gpu="$build/blpo-gpu"
steps="${STEPS:-1048576}"
repeats="${REPEATS:-2}"
read -r -a sizes <<<"${SIZES:-1024}"
commit="${BLPO_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
py="$("$root/tools/peers/setup.sh")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ "$dev" = cuda ]; then
  export JAX_PLATFORMS=cuda
  cpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
else
  export JAX_PLATFORMS=cpu
  cpu_name="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
fi
echo "# PPO against rejax: device $dev ($cpu_name), date $(date -u +%Y-%m-%d), commit $commit"
echo
echo "CartPole-v1, 64-64 tanh actor and critic, num_steps 32, 4 epochs, 32 minibatches,"
echo "lr 5e-4 (blpo-gpu annealed to 0, rejax constant), ent_coef 0, max_grad_norm 0.5,"
echo "$steps env steps per run, fastest of $repeats alternating rounds."
echo
echo "| num_envs | blpo-gpu ppo env steps/s | rejax ppo env steps/s | ratio | rejax compile s | blpo-gpu return | rejax return |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for n in "${sizes[@]}"; do
  # The two alternate, REPEATS rounds of one run each, so that a slow phase
  # of this shared machine falls on both sides; the fastest of each counts.
  best="" peer=""
  for r in $(seq 1 "$repeats"); do
    out="$tmp/blpo.$n.$r"
    t0=$(date +%s.%N)
    "$gpu" --config cartpole.yaml --device "$dev" --quiet --set algo.name=ppo --set env.num_envs="$n" \
      --set run.total_steps="$steps" --set run.num_seeds=1 --out "$out" >/dev/null
    t1=$(date +%s.%N)
    best=$(python3 -c "t=$t1-$t0; b='$best'; print(t if not b or t < float(b) else b)")
    run_dir="$out"
    one=$("$py" "$root/tools/peers/rejax_ppo.py" --num-envs "$n" --total-steps "$steps" --repeats 1)
    peer=$(python3 - "$peer" "$one" <<'PY'
import json, sys
best, one = sys.argv[1], json.loads(sys.argv[2])
print(json.dumps(one if not best or one["env_steps_per_s"] > json.loads(best)["env_steps_per_s"] else json.loads(best)))
PY
)
  done
  blpo_ret=$("$gpu" eval "$run_dir" --episodes 128 --device "$dev" | awk '$1 == "0" && NF >= 6 {print $3; exit}')
  it=$((n * 32))
  done_steps=$(((steps + it - 1) / it * it))
  python3 - "$n" "$done_steps" "$best" "$blpo_ret" "$peer" <<'PY'
import json, sys
n, steps, t, ret, peer = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
sps = steps / t
print(f"| {n} | {sps:,.0f} | {peer['env_steps_per_s']:,.0f} | {sps / peer['env_steps_per_s']:.2f}x "
      f"| {peer['compile_s']:.1f} | {ret} | {peer['final_return_mean']:.1f} |")
PY
done
echo
echo "rejax $("$py" -c 'import importlib.metadata as m; print(m.version("rejax"), "on jax", m.version("jax"))')"
