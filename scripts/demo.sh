#!/usr/bin/env bash
# Set-up and the main job: installs what is needed, builds in release mode, starts repengd on
# the two bundled models (SmolLM2, the default, and Gemma-3), trains a happy/sad control vector
# on each through repengctl, and generates with and without it. Everything lives in a temporary
# folder removed at the end.
#   scripts/demo.sh            (REPENG_SCRATCH=DIR to use another build folder)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh

scratch=(); [ -n "${REPENG_SCRATCH:-}" ] && scratch=(--scratch-path "$REPENG_SCRATCH")
echo "demo: building (release; the first build takes several minutes)"
swift build -c release "${scratch[@]}" --product repengd >/dev/null
swift build -c release "${scratch[@]}" --product repengctl >/dev/null
bin="$(swift build -c release "${scratch[@]}" --show-bin-path)"

source scripts/lib/daemon.sh
start_daemon --model gemma3=.cache/models/gemma-3-270m-q4_k_m.gguf
ctl status
ctl models

echo
echo "demo: training 'happy' from scripts/demo/happy-sad-chat.json (200 pairs laid out by SmolLM2's chat template, every layer but block 0)"
ctl train happy --chat --dataset scripts/demo/happy-sad-chat.json --method pca_center
ls -l "$work/vectors"

band="-20..-5"
for q in "What are you doing this weekend?" "Tell me about your morning."; do
    echo
    echo "### $q"
    ctl reset >/dev/null
    printf '[no control]   '; ctl generate --chat --max-tokens 40 "$q" | tr '\n' ' '; echo
    ctl set-control happy 8 --layers "$band" >/dev/null
    printf '[happy × +8]   '; ctl generate --chat --max-tokens 40 "$q" | tr '\n' ' '; echo
    ctl set-control happy -8 --layers "$band" >/dev/null
    printf '[happy × -8]   '; ctl generate --chat --max-tokens 40 "$q" | tr '\n' ' '; echo
done
ctl reset >/dev/null

# The same steering through the OpenAI-compatible HTTP API on the daemon's Unix socket
# (docs/http.md): the control is a field of the request, not the model's state.
http_sock="$(ctl http-url --socket-path)"
echo
echo "demo: POST /v1/chat/completions on $http_sock with \"control\": [{\"vector\": \"happy\", \"coeff\": 8}]"
curl -s --unix-socket "$http_sock" http://localhost/v1/chat/completions -H 'Content-Type: application/json' -d '{
  "messages": [{"role": "user", "content": "What are you doing this weekend?"}], "temperature": 0, "max_tokens": 40,
  "control": [{"vector": "happy", "coeff": 8}], "layers": "'"$band"'"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"])'

# Gemma-3-270M is a base model (no chat template): plain-text pairs and prompts. Its residual
# stream is large (hidden-state norms in the thousands), so the coefficients are in the hundreds.
echo
echo "demo: training 'gemma-happy' on gemma3 from scripts/demo/happy-sad-plain.json (64 pairs)"
ctl --model gemma3 train gemma-happy --dataset scripts/demo/happy-sad-plain.json --method pca_center
for q in "Today I feel" "Describe your life in a few sentences. My life is"; do
    echo
    echo "### gemma3: $q"
    ctl --model gemma3 reset >/dev/null
    printf '[no control]     '; ctl --model gemma3 generate --max-tokens 30 "$q" | tr '\n' ' '; echo
    ctl --model gemma3 set-control gemma-happy 400 --layers 10..15 >/dev/null
    printf '[happy × +400]   '; ctl --model gemma3 generate --max-tokens 30 "$q" | tr '\n' ' '; echo
    ctl --model gemma3 set-control gemma-happy -400 --layers 10..15 >/dev/null
    printf '[happy × -400]   '; ctl --model gemma3 generate --max-tokens 30 "$q" | tr '\n' ' '; echo
done
ctl --model gemma3 reset >/dev/null
echo
echo "demo: the same from the library alone: swift run -c release repeng-demo"
