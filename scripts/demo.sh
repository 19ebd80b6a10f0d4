#!/usr/bin/env bash
# Set-up and the main job: installs what is needed, builds in release mode, and runs the demo
# (train a happy/sad control vector on the bundled SmolLM2, generate with and without it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
swift build -c release --product repeng-demo
.build/release/repeng-demo "$@"
