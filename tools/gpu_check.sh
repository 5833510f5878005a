#!/usr/bin/env bash
# Runs on a GPU machine from the repository root, with .gpucarry/bundle.tar.xz
# made by tools/gpu_bundle.sh: the gpu-labelled tests, the same tests under
# compute-sanitizer memcheck, the main job on the GPU and the benchmark.
# Logs go to $OUT (or ./gpu-out). usage: tools/gpu_check.sh [STAGE...]
# stages: tests memcheck train bench resume check peers racecheck targets
# (default: the first four). On a short lease: `tests targets` first.
set -uo pipefail
root="$(pwd)"
out="${OUT:-$root/gpu-out}"
mkdir -p "$out"
tar -xJf .gpucarry/bundle.tar.xz
export LD_LIBRARY_PATH="$root/libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# CTest files hold the absolute paths of the machine that built them.
if [ "$root" != /work/main ] && [ ! -e /work/main ]; then
  mkdir -p /work && ln -s "$root" /work/main
fi
commit="${BLPO_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
export BLPO_COMMIT="$commit"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(tests memcheck train bench)
{
  date -u +"date %Y-%m-%dT%H:%M:%SZ"
  echo "commit $commit"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nproc
} | tee "$out/device.txt"
rc=0
for s in "${stages[@]}"; do
  case "$s" in
  tests)
    cp build-gpu/kernel_resources.md "$out/" 2>/dev/null || true
    ctest --test-dir build-gpu -L gpu --timeout 300 --output-on-failure 2>&1 | tee "$out/gpu_tests.log" || rc=1
    ;;
  memcheck)
    # the GPU tests, and the fused ops' tests on the device (--cuda)
    for t in build-gpu/tests/test_gpu_* "build-gpu/tests/test_ppo_minibatch --cuda" \
      "build-gpu/tests/test_critic_step --cuda" "build-gpu/tests/test_nystrom_blocks --cuda" \
      "build-gpu/tests/test_hvp_rows_blocks --cuda" "build-gpu/tests/test_tangent_blocks --cuda" \
      "build-gpu/tests/test_hypergrad_blocks --cuda" "build-gpu/tests/test_actor_blocks --cuda" \
      "build-gpu/tests/test_rollout_blocks --cuda"; do
      echo "== compute-sanitizer --tool memcheck $t"
      # $t unquoted: a binary and its arguments
      # shellcheck disable=SC2086
      compute-sanitizer --tool memcheck --error-exitcode 99 --leak-check full $t 2>&1 | tail -n 25
      r=${PIPESTATUS[0]}
      echo "== exit $r"
      [ $r -eq 0 ] || rc=1
    done >"$out/memcheck.log" 2>&1
    grep -E "^== |ERROR SUMMARY" "$out/memcheck.log"
    ;;
  racecheck)
    # shared-memory hazards of the fused kernels (block programs whose phases
    # the CPU tests can only run one thread after another)
    for t in "build-gpu/tests/test_ppo_minibatch --cuda" "build-gpu/tests/test_critic_step --cuda" \
      "build-gpu/tests/test_nystrom_blocks --cuda" "build-gpu/tests/test_hvp_rows_blocks --cuda" \
      "build-gpu/tests/test_tangent_blocks --cuda" "build-gpu/tests/test_hypergrad_blocks --cuda" \
      "build-gpu/tests/test_actor_blocks --cuda" "build-gpu/tests/test_rollout_blocks --cuda"; do
      echo "== compute-sanitizer --tool racecheck $t"
      # shellcheck disable=SC2086
      compute-sanitizer --tool racecheck --error-exitcode 99 $t 2>&1 | tail -n 25
      r=${PIPESTATUS[0]}
      echo "== exit $r"
      [ $r -eq 0 ] || rc=1
    done >"$out/racecheck.log" 2>&1
    grep -E "^== |ERROR SUMMARY|RACECHECK SUMMARY" "$out/racecheck.log"
    ;;
  train)
    t0=$SECONDS
    run="$(mktemp -d)/cartpole"
    build-gpu/blpo-gpu --config cartpole.yaml --device cuda --out "$run" --force \
      >"$out/train_cartpole.log" 2>&1 || rc=1
    echo "wall $((SECONDS - t0)) s" >>"$out/train_cartpole.log"
    cp "$run/summary.json" "$out/train_cartpole_summary.json" 2>/dev/null
    cp "$run/metrics.csv" "$out/train_cartpole_metrics.csv" 2>/dev/null
    tail -4 "$out/train_cartpole.log"
    ;;
  targets)
    # what the targets are stated on, first (a short lease):
    # CartPole 4096 envs and the paper experiment with run.pdl off and on
    # and with run.grid_sync,
    # CartPole stepping alone at 65536 envs, and each fused-kernel variant
    # (gpu_bundle.sh) whose own op tests pass on this device: a failing one
    # is not timed
    for vb in build-gpu-t*; do
      [ -x "$vb/blpo-bench" ] || continue
      vrc=0
      # the op tests gpu_bundle.sh packed with it: test_gpu_* on the device
      # as they are, the block-program tests with --cuda
      for t in "$vb"/tests/test_*; do
        case "$t" in
        */test_gpu_*) "$t" || vrc=1 ;;
        *) "$t" --cuda || vrc=1 ;;
        esac
      done
      echo "== exit $vrc"
      if [ $vrc -ne 0 ]; then
        echo "gpu_check: the ${vb##*-t} variant fails its op tests; not timed"
        mv "$vb/blpo-bench" "$vb/blpo-bench.failed"
        rc=1
      fi
    done >"$out/variant_tests.log" 2>&1
    grep -E "^== exit|gpu_check:" "$out/variant_tests.log"
    ITERS="${BENCH_ITERS:-3}" TARGETS=1 bash tools/bench_suite.sh cuda build-gpu 2>&1 |
      tee "$out/bench_targets.md" || rc=1
    ;;
  bench)
    # the whole table: throughput rows, graphs / fused rollout / TF32 side by
    # side, env kernels alone, the paper's 15-seed CartPole experiment
    ITERS="${BENCH_ITERS:-3}" bash tools/bench_suite.sh cuda build-gpu 2>&1 |
      tee "$out/bench_suite.md" || rc=1
    ;;
  peers)
    # rejax's PPO on this GPU beside blpo-gpu's (wheels carried in .gpucarry/wheels,
    # made here with tools/peers/setup.sh --download .gpucarry/wheels)
    bash tools/peers/setup.sh --wheels .gpucarry/wheels >/dev/null &&
      SIZES="1024 4096" bash tools/peers/compare.sh cuda build-gpu 2>&1 |
      tee "$out/peers_rejax_cuda.md" || rc=1
    ;;
  resume)
    # exact resume, interruption, bad checkpoints and the NaN stop, on the GPU
    for a in ppo blpo; do
      BLPO_RESUME_DEVICE=cuda bash tests/resume.sh build-gpu/blpo-gpu \
        build-gpu/tests/test_ckpt_compare "$a" 2 || rc=1
    done 2>&1 | tee "$out/resume_gpu.log"
    ;;
  check)
    # the Nystrom sketch against the exact solve on every minibatch
    # (ihvp_relerr column), paper CartPole settings, first CHECK_ITERS iterations
    run="$(mktemp -d)/check"
    build-gpu/blpo-gpu --config configs/paper/cartpole.yaml --device cuda --set run.num_seeds=1 \
      --set algo.hypergrad.check=true --set run.total_steps=$((512 * ${CHECK_ITERS:-100})) \
      --out "$run" --force --quiet || rc=1
    cp "$run/metrics.csv" "$out/check_cartpole_metrics.csv"
    ;;
  *) echo "unknown stage $s"; rc=2 ;;
  esac
done
exit $rc
