#!/usr/bin/env bash
# blpo-gpu --device cpu never loads the CUDA plugin (it would map the CUDA
# libraries for nothing), and --device auto does ask it: BLPO_CUDA_PLUGIN
# points at a plugin that leaves a trace file when it is loaded and is then
# refused as stale, so auto falls back to the CPU with that reason.
#   tests/cuda_plugin_cli.sh BLPO_GPU TRACING_PLUGIN
set -euo pipefail
bin="$1" plugin="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export BLPO_CUDA_PLUGIN="$plugin" BLPO_TEST_PLUGIN_TRACE="$tmp/trace"
run() {
  "$bin" --config cartpole.yaml --device "$1" --set algo.name=ppo --set env.num_envs=8 \
    --set env.num_steps=16 --set algo.num_minibatches=2 --set run.total_steps=128 \
    --out "$tmp/run-$1" --force >"$tmp/out-$1" 2>&1
}
run cpu
if [ -e "$tmp/trace" ]; then
  echo "FAIL: --device cpu loaded the CUDA plugin"
  exit 1
fi
run auto
if [ ! -e "$tmp/trace" ]; then
  echo "FAIL: --device auto did not ask the CUDA plugin (the trace check is broken)"
  exit 1
fi
if ! grep -q 'running on the CPU (.*comes from another build' "$tmp/out-auto"; then
  echo "FAIL: --device auto did not say why it runs on the CPU:"
  cat "$tmp/out-auto"
  exit 1
fi
echo "cuda_plugin_cli: --device cpu loads no plugin; auto asks it and falls back with the reason"
