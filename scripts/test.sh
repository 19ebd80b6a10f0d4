#!/usr/bin/env bash
# Runs the test suite (release build: the numerical tests compare full forward passes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf ] || scripts/bootstrap.sh
exec swift test -c release -Xswiftc -enable-testing "$@"
