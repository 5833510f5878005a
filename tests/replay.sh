#!/usr/bin/env bash
# A replayed iteration computes what a direct one does. On the CPU (default)
# every iteration after the first runs with the trainer's host state frozen
# as it was at the first replayable one (run.debug_emulate_replay), which is
# all a CUDA graph replay keeps of the host; with BLPO_REPLAY_DEVICE=cuda the
# same runs go through real CUDA graphs (run.cuda_graph true against false),
# and with BLPO_REPLAY_PDL=1 as well the graphs' kernels with programmatic
# dependent launch (run.pdl; skipped where the device cannot), so that a
# kernel reading its predecessor's output before that one has finished
# shows as a difference.
# Metrics (timing columns excepted) and checkpoints must be bit-identical,
# for every algorithm and hypergradient method, a continuous task with both
# normalisations, truncation bootstrapping, and the fused rollout step. Anything the iteration takes
# from host state that changes between iterations (a counter kept on the
# host, a learning rate computed there) makes this fail.
#   replay.sh PATH/TO/blpo-gpu PATH/TO/test_ckpt_compare
set -u
bin="$1" cmp="$2"
dev="${BLPO_REPLAY_DEVICE:-cpu}"
# shellcheck source=tests/check_lib.sh
. "$(dirname "$0")/check_lib.sh"
learning_cols() { cut -d, -f1-31 "$1"; } # all but sps and wall_time_s

base=(--device "$dev" --set env.num_envs=32 --set env.num_steps=16 --set algo.num_minibatches=4
      --set run.total_steps=$((32 * 16 * 6)) --set run.num_seeds=2 --set run.seed=5)
if [ "$dev" = cuda ]; then
  probe="$("$bin" --config cartpole.yaml --device cuda --quiet --set env.num_envs=4 \
    --set env.num_steps=8 --set algo.num_minibatches=1 --set run.total_steps=32 \
    --out "$tmp/probe" 2>&1 >/dev/null)"
  if echo "$probe" | grep -q 'no usable CUDA device\|no CUDA support'; then
    echo "SKIP: $probe"
    exit 77
  fi
  direct=(--set run.cuda_graph=false)
  replayed=(--set run.cuda_graph=true)
  if [ "${BLPO_REPLAY_PDL:-0}" = 1 ]; then
    probe="$("$bin" --config cartpole.yaml --device cuda --quiet --set env.num_envs=4 \
      --set env.num_steps=8 --set algo.num_minibatches=1 --set run.total_steps=32 \
      --set run.pdl=true --out "$tmp/probe_pdl" 2>&1 >/dev/null)"
    if echo "$probe" | grep -q 'cannot launch with programmatic dependent launch'; then
      echo "SKIP: $probe"
      exit 77
    fi
    replayed+=(--set run.pdl=true)
  fi
else
  direct=()
  replayed=(--set run.debug_emulate_replay=true)
fi
variant() {
  local name="$1"
  shift
  "$bin" "${base[@]}" "$@" "${direct[@]}" --out "$tmp/$name.direct" >"$tmp/$name.direct.log" 2>&1
  check "$name directly completes" "[ $? -eq 0 ]"
  "$bin" "${base[@]}" "$@" "${replayed[@]}" --out "$tmp/$name.replay" >"$tmp/$name.replay.log" 2>&1
  check "$name replayed completes" "[ $? -eq 0 ]"
  if [ "$dev" = cuda ]; then
    check "$name: the iteration was captured as a graph" \
      "grep -q 'CUDA graph: iteration captured' '$tmp/$name.replay.log'"
  fi
  check "$name: no fused-step disagreement" \
    "! grep -q 'disagrees' '$tmp/$name.direct.log' '$tmp/$name.replay.log'"
  check "$name: metrics identical direct and replayed" \
    "cmp -s <(learning_cols '$tmp/$name.direct/metrics.csv') <(learning_cols '$tmp/$name.replay/metrics.csv')"
  "$cmp" "$tmp/$name.direct/checkpoint.safetensors" "$tmp/$name.replay/checkpoint.safetensors" \
    >"$tmp/$name.cmp"
  local rc=$? # taken at once: the $(cat) below would reset $?
  check "$name: checkpoints bit-identical ($(cat "$tmp/$name.cmp"))" "[ $rc -eq 0 ]"
}
variant ppo --config cartpole.yaml --set algo.name=ppo
variant nested --config cartpole.yaml --set algo.name=nested
variant blpo_nystrom --config cartpole.yaml --set algo.name=blpo
if [ "$dev" = cuda ]; then
  # the fused update as cooperative kernels (run.grid_sync): captured in the
  # graph too, and the same bits as the separate kernels' runs above
  for g in ppo blpo_nystrom; do
    algo="${g%_nystrom}"
    variant "${g}_grid_sync" --config cartpole.yaml --set algo.name="$algo" --set run.grid_sync=true
    check "$g: run.grid_sync's metrics identical to the separate kernels'" \
      "cmp -s <(learning_cols '$tmp/$g.direct/metrics.csv') <(learning_cols '$tmp/${g}_grid_sync.direct/metrics.csv')"
    "$cmp" "$tmp/$g.direct/checkpoint.safetensors" \
      "$tmp/${g}_grid_sync.direct/checkpoint.safetensors" >"$tmp/${g}_grid.cmp"
    rc=$?
    check "$g: run.grid_sync's checkpoint bit-identical ($(cat "$tmp/${g}_grid.cmp"))" "[ $rc -eq 0 ]"
  done
fi
variant blpo_nystrom_fixed --config cartpole.yaml --set algo.name=blpo \
  --set algo.hypergrad.fixed_indices=true
variant blpo_nystrom_k40 --config cartpole.yaml --set algo.name=blpo --set algo.hypergrad.rank=40
variant blpo_cg --config cartpole.yaml --set algo.name=blpo --set algo.hypergrad.method=cg
variant blpo_exact_small --config cartpole.yaml --set algo.name=blpo \
  --set algo.hypergrad.method=exact --set 'net.critic_hidden=[8]'
variant ppo_pendulum_bootstrap --config pendulum.yaml --set algo.name=ppo \
  --set env.bootstrap_truncated=true
variant blpo_pendulum --config pendulum.yaml --set algo.name=blpo
# the fused rollout step: all T steps in one call (CartPole), one per step
# between the normalisations (Pendulum)
variant ppo_fused --config cartpole.yaml --set algo.name=ppo --set run.fused_rollout=true
variant blpo_pendulum_fused --config pendulum.yaml --set algo.name=blpo --set run.fused_rollout=true
check_summary
