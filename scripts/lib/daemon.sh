# Sourced by scripts/demo.sh and scripts/bench/daemon.sh, with $bin set to the folder holding
# repengd and repengctl. start_daemon starts repengd on the bundled SmolLM2 (the default model;
# more --model flags may follow in its arguments) with a temporary
# socket and directories ($work, $sock; log in $work/repengd.log), removes them on exit, and
# waits until the daemon answers; its arguments go to repengd. ctl runs repengctl on $sock.

ctl() { "$bin/repengctl" --socket "$sock" "$@"; }

start_daemon() {
    work="$(mktemp -d)"
    sock="$work/repengd.sock"
    "$bin/repengd" --socket "$sock" --vectors "$work/vectors" --state "$work/state" \
        --model smollm2=.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf "$@" 2> "$work/repengd.log" &
    daemon=$!
    trap 'kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
    for _ in $(seq 1 300); do ctl status >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "repengd did not answer on $sock within 60 s; its log:" >&2
    cat "$work/repengd.log" >&2
    return 1
}
