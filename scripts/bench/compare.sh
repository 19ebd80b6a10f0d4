#!/usr/bin/env bash
# Side-by-side benchmark: repeng-bench against transformers and repeng on the same machine.
# Needs the reference venv (scripts/reference/README.md); pass its python as $PY.
#   PY=/path/to/venv/bin/python scripts/bench/compare.sh [THREADS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
threads="${1:-2}"
py="${PY:-python3}"
model=.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
out="$(mktemp -d)"
swift build -c release --product repeng-bench >/dev/null
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== repeng-bench (threads $threads)"
.build/release/repeng-bench "$model" --threads "$threads" | tee "$out/swift.txt"
.build/release/repeng-bench "$model" --threads "$threads" --json | tail -n 1 > "$out/swift.json"
echo "== transformers (threads $threads)"
"$py" scripts/bench/bench_transformers.py "$model" --threads "$threads" --swift-json "$out/swift.json" 2>/dev/null
echo "== training: repeng-bench --train (threads $threads)"
.build/release/repeng-bench "$model" --threads "$threads" --train --dump-dataset "$out/train.json"
.build/release/repeng-bench "$model" --threads "$threads" --train --json | tail -n 1 > "$out/train.json.out"
echo "== training: repeng (threads $threads)"
"$py" scripts/bench/bench_repeng.py "$model" --dataset "$out/train.json" --threads "$threads" --swift-json "$out/train.json.out" 2>/dev/null
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
