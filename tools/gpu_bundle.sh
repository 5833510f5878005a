#!/usr/bin/env bash
# Builds blpo-gpu with CUDA for one architecture in build-gpu/ and packs the
# binaries, the CTest files and the host libraries a bare GPU machine lacks
# (libyaml, OpenMP OpenBLAS and its Fortran runtime) into
# .gpucarry/bundle.tar.xz, for tools/gpu_check.sh to run on a machine where
# nothing can be installed. Also builds blpo-bench and the CUDA plugin with
# each register tile in $TILES (default "4x4"; "" for none) in
# build-gpu-t<tile>/, which the suite's TARGETS mode times beside the
# default (CMake BLPO_MBF_TILE). usage: tools/gpu_bundle.sh [CUDA_ARCH (default 90)]
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
tiles="${TILES-4x4}"
for tile in $tiles; do
  b="build-gpu-t$tile"
  cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release -DBLPO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DBLPO_MBF_TILE="$tile" >/dev/null
  cmake --build "$b" -j "$(nproc)" --target blpo-bench blpo_cuda_plugin 2>&1 |
    grep -E 'warning|error' || true
  test -x "$b/blpo-bench"
  # a variant that spills or outgrows a launch is packed anyway (it is only
  # timed), with its table saying so
  ctest --test-dir "$b" -R '^kernel_resources$' --output-on-failure ||
    echo "gpu_bundle: the $tile variant fails kernel_resources (see $b/kernel_resources.md)"
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
for tile in $tiles; do
  for f in blpo-bench libblpo-cuda.so kernel_resources.md; do
    [ -f "build-gpu-t$tile/$f" ] && echo "build-gpu-t$tile/$f" >>.gpucarry/files
  done
done
tar -cJf .gpucarry/bundle.tar.xz -T .gpucarry/files -C .gpucarry libs
rm -rf .gpucarry/libs .gpucarry/files
excl="$(git rev-parse --git-dir)/info/exclude"
mkdir -p "$(dirname "$excl")"
grep -qx '/.gpucarry/' "$excl" 2>/dev/null || echo '/.gpucarry/' >>"$excl"
ls -la .gpucarry/bundle.tar.xz
