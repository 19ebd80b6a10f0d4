#!/usr/bin/env bash
# Regenerates the committed Swift code in Sources/RepengProtocol/Generated from proto/.
# Run by hand after editing a .proto file; builds never run it and CI never builds the plugins.
#
# Needs protoc (Debian: apt-get install protobuf-compiler) and the two Swift protoc plugins,
# protoc-gen-swift (apple/swift-protobuf 1.39.0) and protoc-gen-grpc-swift-2
# (grpc/grpc-swift-protobuf 2.4.1). Build them once, outside this package, e.g.:
#
#   mkdir -p /tmp/protoc-plugins && cd /tmp/protoc-plugins
#   # a Package.swift depending on both packages, then:
#   swift build -c release --product protoc-gen-swift
#   swift build -c release --product protoc-gen-grpc-swift-2
#
# and point PLUGIN_DIR at the folder holding both executables (.build/release of that package).
#   PLUGIN_DIR=/tmp/protoc-plugins/.build/release scripts/generate-proto.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

plugin_dir="${PLUGIN_DIR:-}"
find_plugin() {
    if [ -n "$plugin_dir" ] && [ -x "$plugin_dir/$1" ]; then echo "$plugin_dir/$1"; return; fi
    command -v "$1" || { echo "generate-proto: $1 not found; set PLUGIN_DIR (see the comment at the top)" >&2; exit 1; }
}
swift_plugin="$(find_plugin protoc-gen-swift)"
grpc_plugin="$(find_plugin protoc-gen-grpc-swift-2)"
command -v protoc >/dev/null || { echo "generate-proto: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

out=Sources/RepengProtocol/Generated
rm -rf "$out"
mkdir -p "$out"
protos=(repeng/v1/repeng.proto grpc/health/v1/health.proto)
protoc -I proto \
    --plugin=protoc-gen-swift="$swift_plugin" \
    --swift_out="$out" --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
    --plugin=protoc-gen-grpc-swift-2="$grpc_plugin" \
    --grpc-swift-2_out="$out" --grpc-swift-2_opt=Visibility=Public,FileNaming=PathToUnderscores \
    "${protos[@]}"
echo "generate-proto: wrote $(ls "$out" | tr '\n' ' ')"
