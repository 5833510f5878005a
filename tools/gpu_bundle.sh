#!/usr/bin/env bash
# Builds blpo-gpu with CUDA for one architecture in build-gpu/ and packs the
# binaries, the CTest files and the host libraries a bare GPU machine lacks
# (libyaml, OpenMP OpenBLAS and its Fortran runtime) into
# .gpucarry/bundle.tar.xz, for tools/gpu_check.sh to run on a machine where
# nothing can be installed. usage: tools/gpu_bundle.sh [CUDA_ARCH (default 90)]
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
rm -rf .gpucarry && mkdir -p .gpucarry/libs
for lib in libyaml-0.so.2 libgfortran.so.5 libquadmath.so.0 libgomp.so.1; do
  cp -L "/lib/x86_64-linux-gnu/$lib" .gpucarry/libs/
done
cp -L /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 .gpucarry/libs/
# binaries and CTest files only (no object files)
find build-gpu -type f \( -perm -u+x -o -name 'CTestTestfile.cmake' -o -name '*.tcl' \) \
  ! -path '*/CMakeFiles/*' >.gpucarry/files
[ -f build-gpu/kernel_resources.md ] && echo build-gpu/kernel_resources.md >>.gpucarry/files
tar -cJf .gpucarry/bundle.tar.xz -T .gpucarry/files -C .gpucarry libs
rm -rf .gpucarry/libs .gpucarry/files
excl="$(git rev-parse --git-dir)/info/exclude"
mkdir -p "$(dirname "$excl")"
grep -qx '/.gpucarry/' "$excl" 2>/dev/null || echo '/.gpucarry/' >>"$excl"
ls -la .gpucarry/bundle.tar.xz
