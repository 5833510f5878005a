#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz (clang, CUDA off, ASan+UBSan) and
# runs each for SECONDS (default 60) on a copy of its seed corpus in
# build-fuzz/corpus/NAME (new inputs found stay there; fuzz/corpus is never
# modified). Exits non-zero when a target crashes; the input that crashed is
# left as build-fuzz/artifacts/NAME/crash-*.
#   tools/fuzz.sh [SECONDS]      JOBS=N for the build (default 1)
set -euo pipefail
secs="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bd="$root/build-fuzz"
# clang with its libFuzzer/sanitizer runtime; installed here when missing (root)
if ! command -v clang >/dev/null || ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null |
  grep -q "install ok installed"; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "fuzz.sh: installing clang and libclang-rt-14-dev"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
  else
    echo "fuzz.sh: needs clang and its runtime: sudo apt-get install clang libclang-rt-14-dev" >&2
    exit 2
  fi
fi
CC=clang cmake -S "$root" -B "$bd" -DBLPO_FUZZ=ON -DBLPO_CUDA=OFF -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$bd" --target fuzz_safetensors fuzz_config -j"${JOBS:-1}"
status=0
for name in safetensors config; do
  corpus="$bd/corpus/$name"
  art="$bd/artifacts/$name"
  mkdir -p "$corpus" "$art"
  cp -n "$root/fuzz/corpus/$name/"* "$corpus/" 2>/dev/null || true
  echo "== fuzz_$name: ${secs}s, corpus $corpus"
  rc=0
  "$bd/fuzz/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 -max_len=16384 \
    -artifact_prefix="$art/" "$corpus" >"$bd/fuzz_$name.log" 2>&1 || rc=$?
  grep -E '^(#[0-9]+ +(INITED|DONE)|==[0-9]+==|SUMMARY|stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|Done )' \
    "$bd/fuzz_$name.log" || true
  if [ "$rc" -ne 0 ] || ls "$art"/crash-* "$art"/leak-* "$art"/timeout-* >/dev/null 2>&1; then
    echo "fuzz_$name: FAILED (see $bd/fuzz_$name.log and $art)" >&2
    status=1
  else
    echo "fuzz_$name: no crashes"
  fi
done
exit $status
