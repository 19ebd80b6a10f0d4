#!/usr/bin/env bash
# Checks that built binaries run on any x86-64 CPU: no function uses an AVX (VEX/EVEX-encoded)
# instruction except the kernels dispatch.c compiles for AVX2 and AVX-512, which run only after
# the CPU was asked whether it has them, and BoringSSL's (linked in through the gRPC transport),
# which picks its assembly from the CPU's capability bits the same way. Prints the offending
# functions and fails if any.
#   scripts/check-portable.sh BINARY [BINARY …]
set -euo pipefail
[ "$(uname -m)" = x86_64 ] || { echo "check-portable: not an x86-64 machine; nothing to check"; exit 0; }
command -v objdump >/dev/null || { echo "check-portable: objdump not found (apt-get install binutils)" >&2; exit 1; }
[ $# -gt 0 ] || { echo "usage: scripts/check-portable.sh BINARY [BINARY …]" >&2; exit 2; }

status=0
for bin in "$@"; do
    # Function headers look like "0000000000401000 <name>:"; instructions "  401000:\t<bytes>\t<mnemonic> …".
    bad="$(objdump -d --no-show-raw-insn "$bin" | awk '
        /^[0-9a-f]+ <.*>:$/ { fn = $2; next }
        /^ *[0-9a-f]+:\t/ {
            split($0, parts, "\t"); insn = parts[2]
            if (insn ~ /^v[a-z]/ || insn ~ /%[yz]mm/) {
                if (fn !~ /_avx2|_avx512|hsum256|BoringSSL|<_?aesni_|<GFMUL>|keccak_f_x4/) used[fn] = insn
            }
        }
        END { for (f in used) print f " (" used[f] ")" }')"
    if [ -n "$bad" ]; then
        echo "check-portable: $bin has AVX instructions outside the dispatched kernels:"
        echo "$bad" | head -20
        status=1
    else
        echo "check-portable: $bin ok (AVX only in code chosen at run time)"
    fi
done
exit $status
