#!/usr/bin/env bash
# A run's results depend on its seed, never on run.threads: the same short
# run on 1, 2 and 3 CPU threads must give bit-identical metrics (timing
# columns excepted) and checkpoints, for every algorithm and hypergradient
# method. (OpenBLAS's LAPACK once made BLPO's Nystrom core thread-dependent.)
# Three threads on this 2-core machine share out 8 row chunks unevenly and
# take each other's (the CPU backend's chunk queue); ppo_8chunks has
# minibatches of 1024 rows, 8 chunks; the *_paper_agents variants have one
# chunk per minibatch, so their agents run side by side. Last, the fused PPO
# minibatch update against the separate ops.
#   threads.sh PATH/TO/blpo-gpu PATH/TO/test_ckpt_compare
set -u
bin="$1" cmp="$2"
# shellcheck source=tests/check_lib.sh
. "$(dirname "$0")/check_lib.sh"
learning_cols() { cut -d, -f1-31 "$1"; } # all but sps and wall_time_s

base=(--config cartpole.yaml --device cpu --quiet --set env.num_envs=32 --set env.num_steps=32
      --set algo.num_minibatches=4 --set run.total_steps=$((32 * 32 * 8)) --set run.num_seeds=2
      --set run.seed=3)
variant() {
  local name="$1"
  shift
  for t in 1 2 3; do
    "$bin" "${base[@]}" "$@" --set run.threads=$t --out "$tmp/$name.$t" >/dev/null 2>"$tmp/$name.$t.err"
    check "$name on $t thread(s) completes" "[ $? -eq 0 ]"
  done
  for t in 2 3; do
    check "$name: metrics identical on 1 and $t threads" \
      "cmp -s <(learning_cols '$tmp/$name.1/metrics.csv') <(learning_cols '$tmp/$name.$t/metrics.csv')"
    "$cmp" "$tmp/$name.1/checkpoint.safetensors" "$tmp/$name.$t/checkpoint.safetensors" >"$tmp/$name.cmp"
    local rc=$? # taken at once: the $(cat) below would reset $?
    check "$name: checkpoints bit-identical on 1 and $t threads ($(cat "$tmp/$name.cmp"))" "[ $rc -eq 0 ]"
  done
}
variant ppo --set algo.name=ppo
variant ppo_8chunks --set algo.name=ppo --set env.num_envs=64 --set algo.num_minibatches=2
variant nested --set algo.name=nested
variant blpo_nystrom --set algo.name=blpo --set algo.hypergrad.method=nystrom
variant blpo_nystrom_k40 --set algo.name=blpo --set algo.hypergrad.method=nystrom --set algo.hypergrad.rank=40
variant blpo_cg --set algo.name=blpo --set algo.hypergrad.method=cg
# the paper's shape: 4 envs, one row chunk per minibatch, three agents, which
# the CPU backend runs side by side on 2 and 3 threads and one by one on 1
paper=(--set env.num_envs=4 --set algo.num_minibatches=2 --set run.num_seeds=3
       --set run.total_steps=$((4 * 32 * 6)))
variant ppo_paper_agents --set algo.name=ppo "${paper[@]}"
variant blpo_paper_agents --set algo.name=blpo "${paper[@]}"

# The fused PPO minibatch update (the CPU default) against the separate ops
# the CUDA backend runs, over a whole run: the same bits.
"$bin" "${base[@]}" --set algo.name=ppo --set env.num_envs=64 --set algo.num_minibatches=2 \
  --set run.fused_update=false --out "$tmp/ppo_ops" >/dev/null 2>"$tmp/ppo_ops.err"
check "ppo_8chunks with run.fused_update=false completes" "[ $? -eq 0 ]"
check "ppo_8chunks: metrics identical with the fused update and with the separate ops" \
  "cmp -s <(learning_cols '$tmp/ppo_8chunks.2/metrics.csv') <(learning_cols '$tmp/ppo_ops/metrics.csv')"
"$cmp" "$tmp/ppo_8chunks.2/checkpoint.safetensors" "$tmp/ppo_ops/checkpoint.safetensors" >"$tmp/ppo_ops.cmp"
rc=$?
check "ppo_8chunks: checkpoints bit-identical with the fused update and the separate ops ($(cat "$tmp/ppo_ops.cmp"))" "[ $rc -eq 0 ]"
check_summary
