#!/usr/bin/env bash
# Runs the test suite (release build: the numerical tests compare full forward passes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf ] || scripts/bootstrap.sh
# OpenBLAS 0.3.21 falls back to slow generic kernels on CPUs newer than it knows; pick the
# kernel set the CPU supports (the executables do the same for themselves).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    flags="$(grep -m1 '^flags' /proc/cpuinfo || true)"
    has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
    if has avx512f avx512bw avx512dq avx512vl; then export OPENBLAS_CORETYPE=SkylakeX
    elif has avx2 fma; then export OPENBLAS_CORETYPE=Haswell; fi
fi
build=(-c release -Xswiftc -enable-testing)
swift build "${build[@]}" --build-tests
# The binaries must run on any x86-64 CPU (AVX only in the kernels chosen at run time).
bin="$(swift build "${build[@]}" --show-bin-path)"
scripts/check-portable.sh "$bin/repengdPackageTests.xctest" "$bin/repengd" "$bin/repengctl" "$bin/repeng-bench"
exec swift test "${build[@]}" --skip-build "$@"
