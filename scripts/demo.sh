#!/usr/bin/env bash
# Set-up and the main job: installs what is needed, builds in release mode, starts repengd on
# the bundled SmolLM2, trains a happy/sad control vector through repengctl, and generates with
# and without it. Everything lives in a temporary folder removed at the end.
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
start_daemon
ctl status

echo
echo "demo: training 'happy' from scripts/demo/happy-sad.json (200 pairs, every layer but block 0)"
ctl train happy --dataset scripts/demo/happy-sad.json --method pca_center
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
echo
echo "demo: the same from the library alone: swift run -c release repeng-demo"
