#!/usr/bin/env bash
# Daemon benchmarks and the load test, against a repengd started here on the bundled SmolLM2
# (temporary socket and directories, a happy/sad vector trained first):
#   scripts/bench/daemon.sh bench    aggregate decode tok/s with 1, 4, 8 clients; set-control → effect latency
#   scripts/bench/daemon.sh load     32 clients mixing generate, set-control, vector file churn and
#                                    cancellations for $DURATION s (default 180); memory sampled
# THREADS=N sets repengd's BLAS threads (default: one per core). REPENG_BIN=DIR uses binaries
# already built there instead of building (release) first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mode="${1:-bench}"
case "$mode" in bench|load) ;; *) echo "usage: $0 bench|load" >&2; exit 64 ;; esac

if [ -n "${REPENG_BIN:-}" ]; then
    bin="$REPENG_BIN"
else
    for p in repengd repengctl repeng-load; do swift build -c release --product "$p" >/dev/null; done
    bin="$(swift build -c release --show-bin-path)"
fi
threads=(); [ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
source scripts/lib/daemon.sh
start_daemon "${threads[@]}"
ctl train happy --dataset scripts/demo/happy-sad.json --method pca_center >/dev/null 2>&1
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$mode" = bench ]; then
    "$bin/repeng-load" decode --socket "$sock" --clients 1,4,8 --tokens "${TOKENS:-64}" --repeats 2
    "$bin/repeng-load" latency --socket "$sock" --vector happy --samples 30
else
    "$bin/repeng-load" mixed --socket "$sock" --vector happy --clients "${CLIENTS:-32}" --duration "${DURATION:-180}"
    echo "daemon log: $(grep -c ' rpc ' "$work/repengd.log") request lines, $(grep -ci 'error\|critical' "$work/repengd.log") error lines"
    kill -0 "$daemon" && echo "repengd still running (pid $daemon)"
fi
