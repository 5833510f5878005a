#!/usr/bin/env bash
# The benchmark table (issue "GPU throughput"): end-to-end env steps per
# second of ppo, nested and blpo on CartPole, Acrobot and Pendulum at
# num_envs 1024, 4096, 16384 with one agent and at 16 agents x 256 envs; the
# env kernels alone per task; and, on a GPU, the wall time of the paper's
# CartPole experiment (15 BLPO seeds x 5e5 steps, 4 envs x 128 steps).
#   tools/bench_suite.sh [cpu|cuda] [BUILD_DIR]       (markdown on stdout)
# Environment: ITERS (timed iterations per row, default 3), QUICK=1 (1024 envs
# only, no paper run), BLPO_COMMIT (printed with the results).
set -uo pipefail
dev="${1:-cpu}"
build="${2:-build}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bench="$build/blpo-bench"
gpu="$build/blpo-gpu"
iters="${ITERS:-3}"
sizes=(1024 4096 16384)
[ "${QUICK:-0}" = 1 ] && sizes=(1024)
export BLPO_COMMIT="${BLPO_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
echo "# blpo-bench suite: device $dev, date $(date -u +%Y-%m-%d), commit $BLPO_COMMIT"
echo
echo "## Training throughput (env steps/s, end to end)"
for cfg in cartpole.yaml acrobot.yaml pendulum.yaml; do
  for n in "${sizes[@]}"; do
    echo
    "$bench" --device "$dev" --config "$cfg" --iters "$iters" --warmup 1 \
      --set env.num_envs="$n" --set run.num_seeds=1 --label "$cfg, 1 agent x $n envs" |
      sed -n '1,9p'
  done
  echo
  "$bench" --device "$dev" --config "$cfg" --iters "$iters" --warmup 1 \
    --set env.num_envs=256 --set run.num_seeds=16 --label "$cfg, 16 agents x 256 envs" |
    sed -n '1,9p'
done
echo
echo "## Env kernels alone (random actions)"
echo
echo "| backend | config | task | agents x envs | steps | s | env steps/s |"
echo "|---|---|---|---|---:|---:|---:|"
for cfg in cartpole.yaml acrobot.yaml mountaincar.yaml pendulum.yaml mountaincar_continuous.yaml; do
  for n in 1024 65536; do
    [ "$dev" = cpu ] && [ "$n" = 65536 ] && steps=50 || steps=1000
    "$bench" --env-rate --device "$dev" --config "$cfg" --set env.num_envs="$n" \
      --set run.num_seeds=1 --iters "$steps"
  done
done
if [ "$dev" = cuda ] && [ "${QUICK:-0}" != 1 ]; then
  echo
  echo "## The paper's CartPole experiment: 15 BLPO seeds x 5e5 steps as one population"
  echo
  out="$(mktemp -d)/paper15"
  t0=$(date +%s%N)
  "$gpu" --config "$root/configs/paper/cartpole.yaml" --device cuda --set run.num_seeds=15 \
    --out "$out" --quiet
  t1=$(date +%s%N)
  echo "wall time $(((t1 - t0) / 1000000)) ms (process, including start-up)"
  grep -E '"final_return_mean_last100"|over_agents' "$out/summary.json"
fi
