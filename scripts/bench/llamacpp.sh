#!/usr/bin/env bash
# repeng-bench beside llama.cpp's llama-bench on the same GGUF and thread count, alternating runs.
#   scripts/bench/llamacpp.sh LLAMA_BENCH MODEL.gguf [THREADS] [ROUNDS] [PRECISION]
# LLAMA_BENCH: a llama-bench built by hand (e.g. from the llama-cpp-python sdist's vendor/llama.cpp:
#   cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF && cmake --build build --target llama-bench).
# Prints, per round, prefill 512 and decode tokens/s and peak RSS of both (llama-bench: -p 512
# -n 128 -r 1; repeng-bench --skip-extraction: its prefill of 512 tokens and 128 greedy tokens), then the medians and
# the ratios. repeng-bench comes from .build-bench (built here when missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ $# -ge 2 ] || { sed -n 2,8p "$0" >&2; exit 64; }
llama="$1" model="$2" threads="${3:-1}" rounds="${4:-3}" precision="${5:-native}"
[ -x "$llama" ] || { echo "llamacpp: $llama is not an executable" >&2; exit 1; }
bench=.build-bench/release/repeng-bench
[ -x "$bench" ] || swift build -c release --scratch-path .build-bench --product repeng-bench >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
    /usr/bin/time -f "%M" -o "$tmp/llama.rss" "$llama" -m "$model" -t "$threads" -p 512 -n 128 -r 1 -o json > "$tmp/llama.json" 2>/dev/null
    /usr/bin/time -f "%M" -o "$tmp/ours.rss" "$bench" "$model" --threads "$threads" --precision "$precision" --skip-extraction --json 2>/dev/null | tail -n 1 > "$tmp/ours.json"
    python3 - "$tmp" "$r" <<'EOF'
import json, sys, os
tmp, r = sys.argv[1], sys.argv[2]
ll = json.load(open(os.path.join(tmp, "llama.json")))
pp = next(x["avg_ts"] for x in ll if x["n_prompt"] > 0)
tg = next(x["avg_ts"] for x in ll if x["n_gen"] > 0)
ours = json.load(open(os.path.join(tmp, "ours.json")))
rss_l = int(open(os.path.join(tmp, "llama.rss")).read().split()[-1]) / 1024
rss_o = int(open(os.path.join(tmp, "ours.rss")).read().split()[-1]) / 1024
row = dict(round=int(r), llama_prefill=pp, llama_decode=tg, llama_rss=rss_l,
           ours_prefill=ours["prefill_512_tok_per_s"], ours_decode=ours["decode_tok_per_s"], ours_rss=rss_o)
with open(os.path.join(tmp, "rows.jsonl"), "a") as f:
    f.write(json.dumps(row) + "\n")
print("round %(round)d  llama.cpp: prefill %(llama_prefill)7.1f  decode %(llama_decode)6.1f  peak %(llama_rss)6.0f MiB"
      "   repengd: prefill %(ours_prefill)7.1f  decode %(ours_decode)6.1f  peak %(ours_rss)6.0f MiB" % row, flush=True)
EOF
done
python3 - "$tmp" "$model" "$threads" "$precision" <<'EOF'
import json, sys, os, statistics
tmp, model, threads, precision = sys.argv[1:]
rows = [json.loads(l) for l in open(os.path.join(tmp, "rows.jsonl"))]
m = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "round"}
print("median (%s, %s threads, %s): prefill %.1f vs llama.cpp %.1f (%.2fx), decode %.1f vs %.1f (%.2fx), peak %.0f vs %.0f MiB (%.2fx)" % (
    os.path.basename(model), threads, precision, m["ours_prefill"], m["llama_prefill"], m["ours_prefill"] / m["llama_prefill"],
    m["ours_decode"], m["llama_decode"], m["ours_decode"] / m["llama_decode"], m["ours_rss"], m["llama_rss"], m["ours_rss"] / m["llama_rss"]))
EOF
