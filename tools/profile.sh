#!/usr/bin/env bash
# Profiles a short GPU run of blpo-gpu.
#   tools/profile.sh [CONFIG (default cartpole.yaml)] [OUT_DIR (default profile-out)]
# 1. Nsight Systems: a timeline with CUDA, cuBLAS and the NVTX phase ranges
#    (rollout, targets, ppo_update, gather, nested_critic, actor_loss,
#    hvp_rows, core_solve, mixed_term, actor_step, metrics), and a summary of
#    time per NVTX range and per kernel (OUT_DIR/nsys_summary.txt). Open
#    OUT_DIR/timeline.nsys-rep in the Nsight Systems GUI.
# 2. Nsight Compute: the kernels of one phase (PHASE, default hvp_rows; the
#    NVTX range filters them) with the basic metric set, OUT_DIR/kernels.ncu-rep
#    and a text summary OUT_DIR/ncu_summary.txt.
# Environment: BLPO_BIN (default build/blpo-gpu), STEPS (default 4 iterations'
# worth), PHASE, NCU_KERNELS (kernels to profile, default 30), GRAPH (1: keep
# CUDA graph replay on).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${BLPO_BIN:-$root/build/blpo-gpu}"
cfg="${1:-cartpole.yaml}"
out="${2:-profile-out}"
phase="${PHASE:-hvp_rows}"
mkdir -p "$out"
[ -x "$bin" ] || { echo "profile.sh: no binary at $bin (build first, or set BLPO_BIN)" >&2; exit 2; }
# a short run: 4 iterations of the config's own size unless STEPS is given
steps="${STEPS:-$("$bin" --config "$cfg" --print-config 2>/dev/null |
  awk '/num_envs:/{n=$2} /num_steps:/{t=$2} END{print 4*n*t}')}"
# GRAPH=1 profiles the run as it trains (graph replays: the NVTX ranges then
# cover only the captured iteration, and ncu's range filter finds no replayed
# kernel); by default every iteration is launched kernel by kernel.
graph=false
[ "${GRAPH:-0}" = 1 ] && graph=true
args=(--config "$cfg" --device cuda --set run.total_steps="$steps" --set run.cuda_graph="$graph"
      --quiet --force)

find_tool() { # name: on PATH, else the newest under /opt/nvidia or the CUDA toolkit
  command -v "$1" 2>/dev/null && return
  ls -d /opt/nvidia/nsight-*/*/{bin,target-linux-x64,host/target-linux-x64}/"$1" \
    /usr/local/cuda/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}
rc=0
nsys="$(find_tool nsys)"
if [ -n "$nsys" ]; then
  echo "== Nsight Systems ($nsys)"
  "$nsys" profile --trace=cuda,nvtx,cublas --force-overwrite true -o "$out/timeline" \
    "$bin" "${args[@]}" --out "$(mktemp -d)/run" >"$out/nsys.log" 2>&1 || rc=1
  if [ -f "$out/timeline.nsys-rep" ]; then
    "$nsys" stats --report nvtx_sum,cuda_gpu_kern_sum --format column "$out/timeline.nsys-rep" \
      >"$out/nsys_summary.txt" 2>>"$out/nsys.log" || rc=1
    head -n 40 "$out/nsys_summary.txt"
  else
    # seen with the nsys bundled in some Nsight Compute installs: it records a
    # .qdstrm but lacks the importer that turns it into a report
    found=""
    for f in "$out"/timeline.*; do [ -e "$f" ] && found="$found ${f##*/}"; done
    echo "nsys wrote no report (only${found:- nothing});" \
      "import the .qdstrm with a full Nsight Systems install (QdstrmImporter)"
    rc=1
  fi
else
  echo "== Nsight Systems: nsys not found (install Nsight Systems); skipped"
fi
ncu="$(find_tool ncu)"
if [ -n "$ncu" ]; then
  echo "== Nsight Compute ($ncu): kernels in NVTX range '$phase'"
  "$ncu" --nvtx --nvtx-include "$phase/" --launch-count "${NCU_KERNELS:-30}" --set basic \
    --force-overwrite -o "$out/kernels" "$bin" "${args[@]}" --out "$(mktemp -d)/run" \
    >"$out/ncu.log" 2>&1 || rc=1
  "$ncu" --import "$out/kernels.ncu-rep" --print-summary per-kernel >"$out/ncu_summary.txt" 2>&1 || rc=1
  grep -E "^  [A-Za-z_].*\(|Duration|Compute \(SM\) Throughput|Memory Throughput" \
    "$out/ncu_summary.txt" | head -n 60
else
  echo "== Nsight Compute: ncu not found; skipped"
fi
exit $rc
