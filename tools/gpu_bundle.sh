#!/usr/bin/env bash
# Builds blpo-gpu with CUDA for one architecture in build-gpu/ and packs the
# binaries, the CTest files and the host libraries a bare GPU machine lacks
# (libyaml, OpenMP OpenBLAS and its Fortran runtime) into
# .gpucarry/bundle.tar.xz, for tools/gpu_check.sh to run on a machine where
# nothing can be installed. Also builds blpo-bench and the CUDA plugin with
# each variant in $TILES (default "4x4 4x2s": a 4 x 4 register tile, and the
# default 4 x 2 tile with scalar loads and the odd pitches they had before
# the float4 loads, with today's launch bounds; "" for none) in build-gpu-t<variant>/, which the suite's TARGETS mode
# times beside the default (CMake BLPO_MBF_TILE, include/blpo/mbf_tile.h).
# usage: tools/gpu_bundle.sh [CUDA_ARCH (default 90)]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
arch="${1:-90}"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DBLPO_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null
cmake --build build-gpu -j "$(nproc)" 2>&1 | grep -E 'warning|error' || true
test -x build-gpu/blpo-gpu
# the kernels' registers, spills and shared memory for this architecture,
# for the results (gpu_check.sh copies the table into its output)
ctest --test-dir build-gpu -R '^kernel_resources$' --output-on-failure
# the variants: blpo-bench, the plugin and the op tests whose kernels use the
# tile (gpu_check.sh runs those against the CPU on the device before timing)
variant_targets=(blpo-bench blpo_cuda_plugin test_ppo_minibatch test_critic_step
  test_hvp_rows_blocks test_tangent_blocks test_gpu_ops)
variant_files=(blpo-bench libblpo-cuda.so kernel_resources.md tests/test_ppo_minibatch
  tests/test_critic_step tests/test_hvp_rows_blocks tests/test_tangent_blocks tests/test_gpu_ops)
tiles="${TILES-4x4 4x2s}"
built=()
for tile in $tiles; do
  b="build-gpu-t$tile"
  cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release -DBLPO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DBLPO_MBF_TILE="$tile" >/dev/null
  for f in "${variant_files[@]}"; do rm -f "$b/$f"; done # nothing stale gets packed
  if ! cmake --build "$b" -j "$(nproc)" --target "${variant_targets[@]}" >"$b/build.log" 2>&1; then
    grep -E 'error' "$b/build.log" | head -20 || true
    echo "gpu_bundle: the $tile variant does not build (see $b/build.log); not packed"
    continue
  fi
  grep -E 'warning' "$b/build.log" || true
  # a variant that spills or outgrows a launch is packed anyway (it is only
  # timed, after its op tests), with its table saying so
  ctest --test-dir "$b" -R '^kernel_resources$' --output-on-failure ||
    echo "gpu_bundle: the $tile variant fails kernel_resources (see $b/kernel_resources.md)"
  missing=""
  for f in "${variant_files[@]}"; do
    [ "$f" = kernel_resources.md ] || [ -x "$b/$f" ] || missing="$missing $f"
  done
  if [ -n "$missing" ]; then
    echo "gpu_bundle: the $tile variant lacks$missing; not packed"
    continue
  fi
  built+=("$tile")
done
rm -rf .gpucarry && mkdir -p .gpucarry/libs
for lib in libyaml-0.so.2 libgfortran.so.5 libquadmath.so.0 libgomp.so.1; do
  cp -L "/lib/x86_64-linux-gnu/$lib" .gpucarry/libs/
done
cp -L /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 .gpucarry/libs/
# binaries and CTest files only (no object files)
find build-gpu -type f \( -perm -u+x -o -name 'CTestTestfile.cmake' -o -name '*.tcl' \) \
  ! -path '*/CMakeFiles/*' >.gpucarry/files
[ -f build-gpu/kernel_resources.md ] && echo build-gpu/kernel_resources.md >>.gpucarry/files
for tile in "${built[@]}"; do
  for f in "${variant_files[@]}"; do
    if [ -f "build-gpu-t$tile/$f" ]; then echo "build-gpu-t$tile/$f" >>.gpucarry/files; fi
  done
done
tar -cJf .gpucarry/bundle.tar.xz -T .gpucarry/files -C .gpucarry libs
rm -rf .gpucarry/libs .gpucarry/files
excl="$(git rev-parse --git-dir)/info/exclude"
mkdir -p "$(dirname "$excl")"
grep -qx '/.gpucarry/' "$excl" 2>/dev/null || echo '/.gpucarry/' >>"$excl"
ls -la .gpucarry/bundle.tar.xz
