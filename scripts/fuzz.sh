#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (AddressSanitizer + LeakSanitizer) and runs them.
#   scripts/fuzz.sh TARGET|all SECONDS     e.g. scripts/fuzz.sh fuzz-gguf 60, scripts/fuzz.sh all 600
#   scripts/fuzz.sh --list                 the targets
# Environment:
#   FUZZ_ARGS="-max_len=65536 ..."   extra libFuzzer flags
#   FUZZ_FRESH=1                     start from the seeds only (drop the corpus grown by earlier runs)
#   FUZZ_BUILD=0                     run the targets as last built (skip the build step)
#   REPENG_CACHE=DIR                 where scripts/bootstrap.sh put the models (default .cache);
#                                    fuzz-request loads the tokenizers of DIR/models/*.gguf
#
# Everything runs under `nice -n 19`. Outputs, all under .build-fuzz/ (git-ignored):
#   corpus/TARGET/     the working corpus: the seeds of Fuzz/Corpus/TARGET plus what libFuzzer
#                      found (Fuzz/Corpus itself is only read)
#   artifacts/TARGET/  crash-*, leak-*, timeout-*, oom-* inputs, one folder per run
#   logs/              libFuzzer's output, one file per target and run
# Prints one line per target: target, seconds, executions, result. Exits non-zero if any target
# found a crash, leak, timeout or out-of-memory, or did not run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scratch="$root/.build-fuzz"
targets=()
for d in Fuzz/Sources/fuzz-*/; do targets+=("$(basename "$d")"); done

usage() { echo "usage: scripts/fuzz.sh TARGET|all SECONDS   (targets: ${targets[*]})" >&2; exit 64; }
if [ "${1:-}" = "--list" ]; then printf '%s\n' "${targets[@]}"; exit 0; fi
[ $# -eq 2 ] || usage
case "$2" in ''|*[!0-9]*) usage ;; esac
seconds="$2"
if [ "$1" = all ]; then
    selected=("${targets[@]}")
else
    [ -d "Fuzz/Sources/$1" ] && [[ "$1" == fuzz-* ]] || { echo "fuzz: unknown target '$1'" >&2; usage; }
    selected=("$1")
fi

# --- toolchain ---------------------------------------------------------------------------
# The Swift toolchain for Linux ships libFuzzer and the sanitizer runtimes (lib/swift/clang/lib/
# linux/libclang_rt.{fuzzer,asan}-*.a); no Debian package is needed beyond what the toolchain
# and scripts/bootstrap.sh already require.
swift_bin="$(command -v swift || true)"
[ -n "$swift_bin" ] || { echo "fuzz: swift not found in PATH" >&2; exit 1; }
toolchain="$(dirname "$(dirname "$(readlink -f "$swift_bin")")")"
if ! compgen -G "$toolchain/lib/swift/clang/lib/linux/libclang_rt.fuzzer-*.a" >/dev/null \
    && ! compgen -G "$toolchain/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a" >/dev/null; then
    echo "fuzz: the Swift toolchain at $toolchain has no libFuzzer runtime (libclang_rt.fuzzer); use a swift.org toolchain for Linux" >&2
    exit 1
fi
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x "$toolchain/bin/llvm-symbolizer" ]; then
    export ASAN_SYMBOLIZER_PATH="$toolchain/bin/llvm-symbolizer"
fi

# --- build -------------------------------------------------------------------------------
# `--sanitize=fuzzer --sanitize=address` instruments the C targets (the kernels' C support),
# links libFuzzer's main and stops SwiftPM from renaming the executables' `main` (with
# `-Xswiftc` alone the link fails: undefined `<target>_main`). SwiftPM hands swiftc the two as
# separate `-sanitize=` flags, of which swiftc keeps only the last (Swift code would
# get AddressSanitizer but no coverage), hence the combined `-Xswiftc -sanitize=fuzzer,address`.
# The fuzz package resolves its dependencies to the main package's pins, when there are any.
# (Copied only when different: a newer Package.resolved makes SwiftPM rebuild everything.)
if [ -f Package.resolved ] && ! cmp -s Package.resolved Fuzz/Package.resolved; then
    cp Package.resolved Fuzz/Package.resolved
fi
sanitize=(--sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address)
mkdir -p "$scratch/logs"
if [ "${FUZZ_BUILD:-1}" = 0 ]; then
    echo "fuzz: FUZZ_BUILD=0, running the targets as last built"
else
    echo "fuzz: building (debug, -sanitize=fuzzer,address) into .build-fuzz ..."
    if ! nice -n 19 swift build -c debug --package-path Fuzz --scratch-path "$scratch" \
            "${sanitize[@]}" > "$scratch/logs/build.log" 2>&1; then
        grep -v "Cannot export local symbol" "$scratch/logs/build.log" | tail -n 40 >&2
        echo "fuzz: build failed (full log: .build-fuzz/logs/build.log)" >&2
        exit 1
    fi
fi
bin="$(nice -n 19 swift build -c debug --package-path Fuzz --scratch-path "$scratch" \
        "${sanitize[@]}" --show-bin-path)"

# --- run ---------------------------------------------------------------------------------
# The Swift runtime's own crash handler would race libFuzzer's and can hang; ASan and libFuzzer
# print the stack traces. One BLAS thread: the fuzzers are single-threaded anyway.
export SWIFT_BACKTRACE=enable=no
export OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-symbolize=1:handle_abort=1}"
# Known leaks in dependencies (see the file); leaks anywhere else are findings.
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$root/Fuzz/lsan.supp:print_suppressions=0}"
models="${REPENG_CACHE:-$root/.cache}/models"
if [ -z "${REPENG_FUZZ_MODELS:-}" ] && [ -d "$models" ]; then export REPENG_FUZZ_MODELS="$models"; fi

stamp="$(date -u +%Y%m%d-%H%M%S)"
failed=0
summary=()
for t in "${selected[@]}"; do
    corpus="$scratch/corpus/$t"
    artifacts="$scratch/artifacts/$t/$stamp"
    log="$scratch/logs/$t-$stamp.log"
    [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$corpus"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "Fuzz/Corpus/$t" ]; then cp -n Fuzz/Corpus/"$t"/* "$corpus"/ 2>/dev/null || true; fi
    echo "fuzz: $t for ${seconds}s (log: ${log#"$root"/})"
    rc=0
    # shellcheck disable=SC2086
    nice -n 19 "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} "$corpus" > "$log" 2>&1 || rc=$?
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)"
    found="$(find "$artifacts" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)"
    if [ -z "$found" ] && [ "$rc" -eq 0 ]; then
        result="ok"
        rmdir "$artifacts" 2>/dev/null || true
    else
        failed=1
        if [ -n "$found" ]; then
            kinds="$(for f in $found; do basename "$f" | cut -d- -f1; done | sort -u | tr '\n' ',' | sed 's/,$//')"
            result="FOUND $kinds: ${artifacts#"$root"/}"
        else
            result="FAILED (exit $rc, no artifact; see ${log#"$root"/})"
        fi
        grep -m1 -E "^==[0-9]+==ERROR|^SUMMARY: |Fatal error|ERROR: libFuzzer" "$log" | sed 's/^/    /' >&2 || true
    fi
    summary+=("$(printf '%-20s %6ss %12s execs  %s' "$t" "$seconds" "${execs:-?}" "$result")")
done

echo
printf '%-20s %7s %18s  %s\n' target seconds executions result
printf '%s\n' "${summary[@]}"
exit "$failed"
