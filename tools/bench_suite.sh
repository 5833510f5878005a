#!/usr/bin/env bash
# The benchmark table (issue "GPU throughput"): end-to-end env steps per
# second of ppo, nested and blpo on CartPole, Acrobot and Pendulum at
# num_envs 1024, 4096, 16384 with one agent and at 16 agents x 256 envs; on
# the GPU the same CartPole 4096 row with graphs off / fused rollout off /
# fused minibatch update off / TF32 / programmatic dependent launch on
# (with the fused update and without) / the nested steps as one cooperative
# kernel (run.grid_sync, with run.pdl and without), so the table shows what
# each piece buys; the env kernels alone per task; and, on a GPU, the wall
# time of the paper's CartPole experiment (15 BLPO seeds x 5e5 steps, 4
# envs x 128 steps, one population).
#   tools/bench_suite.sh [cpu|cuda] [BUILD_DIR]       (markdown on stdout)
# Environment: ITERS (timed iterations per row, default 3), QUICK=1 (1024
# envs only, no paper run), TARGETS=1 (only what the issue's targets are
# stated on, first, for a short device lease: CartPole at 4096 envs with
# run.pdl off and on, with run.grid_sync, and with each fused-kernel variant
# found in BUILD_DIR-t<variant> (tools/gpu_bundle.sh), CartPole stepping
# alone at 65536 envs, and on a GPU the paper experiment with run.pdl off
# and on and with run.grid_sync), TINY=1 (CI: 64 envs x 8 steps, 4 x 16 for
# the population row, small env-rate runs: checks that every row runs,
# times nothing worth reading), BLPO_COMMIT (printed with the results).
set -uo pipefail
dev="${1:-cpu}"
build="${2:-build}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bench="$build/blpo-bench"
gpu="$build/blpo-gpu"
iters="${ITERS:-3}"
sizes=(1024 4096 16384)
pop=(--set env.num_envs=256 --set run.num_seeds=16)
pop_label="16 agents x 256 envs"
extra=()
rate_sizes=(1024 65536)
[ "${QUICK:-0}" = 1 ] && sizes=(1024)
if [ "${TINY:-0}" = 1 ]; then
  sizes=(64)
  pop=(--set env.num_envs=16 --set run.num_seeds=4)
  pop_label="4 agents x 16 envs"
  extra=(--set env.num_steps=8 --set algo.num_minibatches=2)
  rate_sizes=(256)
  iters=1
fi
status=0
run() { "$@" || { echo "blpo-bench failed: $*" >&2; status=1; }; }
# a benchmark's table (its first 9 lines); the status is the benchmark's
# (pipefail), so that `run table ...` records a failure, which a pipeline
# after `run` would lose in its subshell
table() { "$@" | sed -n '1,9p'; }
export BLPO_COMMIT="${BLPO_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
echo "# blpo-bench suite: device $dev, date $(date -u +%Y-%m-%d), commit $BLPO_COMMIT"
echo
# the paper's CartPole experiment (15 BLPO seeds x 5e5 steps, one
# population), timed as a process; extra --set arguments after the label
paper_run() {
  local label="$1" out t0 t1
  shift
  echo
  echo "## The paper's CartPole experiment: 15 BLPO seeds x 5e5 steps as one population${label:+, $label}"
  echo
  out="$(mktemp -d)/paper15"
  t0=$(date +%s%N)
  run "$gpu" --config "$root/configs/paper/cartpole.yaml" --device "$dev" --set run.num_seeds=15 \
    "$@" --out "$out" --quiet
  t1=$(date +%s%N)
  echo "wall time $(((t1 - t0) / 1000000)) ms (process, including start-up)"
  grep -E '"final_return_mean_last100"|over_agents' "$out/summary.json"
}
env_rate_header() {
  echo
  echo "## Env kernels alone (random actions)"
  echo
  echo "| backend | config | task | agents x envs | steps | s | env steps/s |"
  echo "|---|---|---|---|---:|---:|---:|"
}
if [ "${TARGETS:-0}" = 1 ]; then
  n=4096 steps=1000 rate=65536
  [ "${TINY:-0}" = 1 ] && n=64 steps=20 rate=256
  echo "## The targets' rows (CartPole, 1 agent x $n envs)"
  for v in "run.pdl=false" "run.pdl=true"; do
    echo
    run table "$bench" --device "$dev" --config cartpole.yaml --iters "$iters" --warmup 1 \
      --set env.num_envs="$n" --set run.num_seeds=1 "${extra[@]}" --set "$v" --label "$v"
  done
  # the nested critic's steps as one cooperative kernel (opt-in)
  echo
  run table "$bench" --device "$dev" --config cartpole.yaml --iters "$iters" --warmup 1 \
    --set env.num_envs="$n" --set run.num_seeds=1 "${extra[@]}" --set run.pdl=false \
    --set run.grid_sync=true --label "run.grid_sync=true, run.pdl=false"
  # the fused kernels' TF32 tiles (opt-in; include/blpo/tc_tile.h)
  echo
  run table "$bench" --device "$dev" --config cartpole.yaml --iters "$iters" --warmup 1 \
    --set env.num_envs="$n" --set run.num_seeds=1 "${extra[@]}" --set run.pdl=false \
    --set run.precision=tf32 --label "run.precision=tf32, run.pdl=false"
  # variants of the fused kernels, tile and loads (tools/gpu_bundle.sh builds
  # them beside the default one in BUILD_DIR-t<variant>)
  for vb in "$build"-t*; do
    [ -x "$vb/blpo-bench" ] || continue
    echo
    run table "$vb/blpo-bench" --device "$dev" --config cartpole.yaml --iters "$iters" --warmup 1 \
      --set env.num_envs="$n" --set run.num_seeds=1 "${extra[@]}" \
      --set run.pdl=false --label "fused-kernel variant ${vb##*-t} (BLPO_MBF_TILE), run.pdl=false"
  done
  env_rate_header
  run "$bench" --env-rate --device "$dev" --config cartpole.yaml --set env.num_envs="$rate" \
    --set run.num_seeds=1 --iters "$steps"
  if [ "$dev" = cuda ] && [ "${TINY:-0}" != 1 ]; then
    paper_run "run.pdl=false" --set run.pdl=false
    paper_run "run.pdl=true" --set run.pdl=true
    paper_run "run.grid_sync=true" --set run.pdl=false --set run.grid_sync=true
    # last: its learning result with TF32 tiles (the 15 seeds' returns)
    paper_run "run.precision=tf32" --set run.pdl=false --set run.precision=tf32
  fi
  exit $status
fi
echo "## Training throughput (env steps/s, end to end)"
for cfg in cartpole.yaml acrobot.yaml pendulum.yaml; do
  for n in "${sizes[@]}"; do
    echo
    run table "$bench" --device "$dev" --config "$cfg" --iters "$iters" --warmup 1 \
      --set env.num_envs="$n" --set run.num_seeds=1 "${extra[@]}" --label "$cfg, 1 agent x $n envs"
  done
  echo
  run table "$bench" --device "$dev" --config "$cfg" --iters "$iters" --warmup 1 "${pop[@]}" "${extra[@]}" \
    --label "$cfg, $pop_label"
done
if [ "$dev" = cuda ]; then
  n=4096
  [ "${TINY:-0}" = 1 ] && n=64
  echo
  echo "## What each piece buys (CartPole, 1 agent x $n envs)"
  for v in "run.cuda_graph=false run.fused_rollout=false run.fused_update=false" \
    "run.cuda_graph=false" "run.fused_rollout=false" "run.fused_update=false" \
    "run.precision=tf32" "run.pdl=true" "run.pdl=true run.fused_update=false" \
    "run.grid_sync=true" "run.grid_sync=true run.pdl=true"; do
    args=()
    for kv in $v; do args+=(--set "$kv"); done
    echo
    run table "$bench" --device "$dev" --config cartpole.yaml --iters "$iters" --warmup 1 \
      --set env.num_envs="$n" --set run.num_seeds=1 "${extra[@]}" "${args[@]}" --label "$v"
  done
fi
env_rate_header
for cfg in cartpole.yaml acrobot.yaml mountaincar.yaml pendulum.yaml mountaincar_continuous.yaml; do
  for n in "${rate_sizes[@]}"; do
    if [ "${TINY:-0}" = 1 ]; then
      steps=20
    elif [ "$dev" = cpu ] && [ "$n" = 65536 ]; then
      steps=50
    else
      steps=1000
    fi
    run "$bench" --env-rate --device "$dev" --config "$cfg" --set env.num_envs="$n" \
      --set run.num_seeds=1 --iters "$steps"
  done
done
if [ "$dev" = cuda ] && [ "${QUICK:-0}" != 1 ] && [ "${TINY:-0}" != 1 ]; then
  paper_run ""
fi
exit $status
