#!/usr/bin/env bash
# The CUDA backend's checks on a GPU machine, in one command and one log (issue 18): the library, its CUDA
# plugin, the Python extension and the C++ tests built in build-gpu with every core; then
#   xgrad_tests --gtest_filter='*Cuda*:*Device*'
#   pytest tests/python/test_cuda.py test_cuda_optable.py test_cuda_kernels.py
#   bench/bench_cuda.py (matmul 4096 vs raw cuBLAS and PyTorch CUDA, the MLP step at batch 4096)
# No TSan, ASan, emulator, MPI, oneDNN or examples.
#
# The GPU machines this project borrows run their own image (CUDA 13, PyTorch, python3, cmake, g++) and reach
# no package registry, so the Debian packages the build needs travel with the repository in .gpu/ (git-ignored):
#   here, once:        tools/gpu-check.sh fetch           # apt-get download into .gpu/debs (about 18 MB)
#   on the GPU:        tools/gpu-check.sh run LOG          # the device tool: carry ".gpu", LOG under $OUT
# `run` unpacks them into a private root (never over /) and points CMake and the loader at it.
#
# Build time, measured 2026-12-07 with `run` on this project's 2-core VM (no GPU, so the GPU checks skip):
# configure + build 259 s, the whole run 268 s. The log's "build:" line gives it on each machine; 16 cores
# should take well under a minute, leaving the 10-minute call for the tests and the bench.
set -uo pipefail
cd "$(dirname "$0")/.."

PACKAGES="libxtensor-dev xtl-dev libxsimd-dev libopenblas-dev libopenblas0-pthread libopenblas-pthread-dev libopenblas0
  libgfortran5 libprotobuf-dev libprotobuf32 libprotoc32 protobuf-compiler libonnx-dev libonnx1 libonnxifi libgtest-dev"
BUILD=build-gpu
ROOT=${GPU_CHECK_ROOT:-/tmp/xgrad-gpu-root}
PY=${PYTHON:-python3}

fetch() {
  mkdir -p .gpu/debs
  (cd .gpu/debs && apt-get download $PACKAGES) || exit 1
  du -sh .gpu/debs
}

run() {
  local log=${1:-$BUILD/gpu-check.log}
  mkdir -p "$(dirname "$log")" "$BUILD"
  exec > >(tee "$log") 2>&1
  echo "== gpu-check $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(hostname), $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "no nvidia-smi"
  nvcc --version | tail -1; "$PY" --version; cmake --version | head -1; nproc
  ls .gpu/debs/*.deb >/dev/null 2>&1 || { echo "no .gpu/debs: run 'tools/gpu-check.sh fetch' here and carry .gpu"; exit 1; }
  for f in .gpu/debs/*.deb; do dpkg -x "$f" "$ROOT" || exit 1; done
  local lib=$ROOT/usr/lib/x86_64-linux-gnu blas=$ROOT/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so
  export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export PATH=$ROOT/usr/bin:$PATH
  local pybind11_dir
  pybind11_dir=$("$PY" -m pybind11 --cmakedir 2>/dev/null) || pybind11_dir=/usr/lib/cmake/pybind11
  local start=$SECONDS
  cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DXGRAD_CUDA=ON -DXGRAD_DNNL=OFF -DXGRAD_MPI=OFF \
    -DXGRAD_BUILD_EXAMPLES=OFF -DCMAKE_PREFIX_PATH="$ROOT/usr;$pybind11_dir" -DBLAS_LIBRARIES="$blas" \
    -DLAPACK_LIBRARIES="$blas" -DProtobuf_PROTOC_EXECUTABLE="$ROOT/usr/bin/protoc" -DPython_EXECUTABLE="$(command -v "$PY")" \
    -DXGRAD_PYTHON_OUTPUT_DIR="$PWD/$BUILD/python/xgrad" >$BUILD/configure.log 2>&1 \
    || { tail -40 $BUILD/configure.log; echo "configure FAILED"; exit 1; }
  grep -E "xgrad (CUDA|target|oneDNN)|Found (BLAS|Protobuf|Python|ONNX)" $BUILD/configure.log
  cmake --build $BUILD -j "$(nproc)" --target _xgrad xgrad_cuda xgrad_tests >$BUILD/build.log 2>&1 \
    || { grep -B2 -A12 "error" $BUILD/build.log | head -80; echo "build FAILED"; exit 1; }
  cp -r python/xgrad/*.py python/xgrad/sklearn $BUILD/python/xgrad/
  cp $BUILD/libxgrad_cuda.so $BUILD/python/xgrad/  # the extension opens its CUDA plugin from beside itself
  echo "build: $((SECONDS - start)) s on $(nproc) cores"

  local failed=0
  echo "== C++ device tests"
  $BUILD/xgrad_tests --gtest_filter='*Cuda*:*Device*' 2>&1 | grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) *\]|Failure|error" || failed=1
  echo "== Python CUDA tests"
  PYTHONPATH=$PWD/$BUILD/python "$PY" -c "import xgrad as xg; print('xgrad', xg.__file__, 'cuda available:', xg.cuda.is_available())"
  PYTHONPATH=$PWD/$BUILD/python "$PY" -m pytest -q -p no:cacheprovider -rfEs tests/python/test_cuda.py \
    tests/python/test_cuda_optable.py tests/python/test_cuda_kernels.py 2>&1 | tail -60 || failed=1
  echo "== bench/bench_cuda.py"
  PYTHONPATH=$PWD/$BUILD/python:$PWD/bench "$PY" bench/bench_cuda.py || failed=1
  echo "== gpu-check done in $SECONDS s, $([ $failed = 0 ] && echo "every step passed" || echo "a step FAILED")"
  return $failed
}

case "${1:-}" in
  fetch) fetch ;;
  run) shift; run "$@" ;;
  *) echo "usage: tools/gpu-check.sh fetch | run [LOG]"; exit 2 ;;
esac
