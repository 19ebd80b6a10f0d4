#!/usr/bin/env bash
# Checks systemd/ offline (no running systemd needed): systemd-analyze verify on the units,
# systemd-analyze security --offline=true exposure (fails above MAX_EXPOSURE, default 2.0),
# the sysusers and tmpfiles snippets applied to a scratch root, the TOML config, and that the
# files agree with each other (socket path, user and group names).
#
#   scripts/check-units.sh [EXECUTABLE]
#
# EXECUTABLE stands in for /usr/local/bin/repengd in ExecStart= (systemd-analyze verify
# rejects a unit whose binary is missing); default: .build/release/repengd if built, else
# true(1). Prints one line per check and the measured exposure; exits 1 on any failure,
# 2 when a required tool is missing.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
units="$here/systemd"
max="${MAX_EXPOSURE:-2.0}"

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles awk sed; do
    command -v "$tool" >/dev/null || { echo "check-units: $tool not found (install systemd)" >&2; exit 2; }
done
[[ "$max" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "check-units: MAX_EXPOSURE must be a number, got '$max'" >&2; exit 2; }

exe="${1:-}"
if [ -z "$exe" ]; then
    if [ -x "$here/.build/release/repengd" ]; then exe="$here/.build/release/repengd"; else exe="$(type -P true)"; fi
fi
case "$exe" in /*) ;; *) exe="$PWD/$exe" ;; esac
[ -f "$exe" ] && [ -x "$exe" ] || { echo "check-units: $exe is not an executable file" >&2; exit 2; }
case "$exe" in *[[:space:]\|\&\\]*) echo "check-units: the executable's path may not contain spaces, '|', '&' or '\\'" >&2; exit 2 ;; esac

failures=0
pass() { echo "ok    $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
note() { echo "skip  $*"; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"

for f in repengd.service repengd.socket repengd.sysusers repengd.tmpfiles repengd.toml; do
    [ -f "$units/$f" ] || { fail "systemd/$f is missing"; }
done
[ "$failures" -eq 0 ] || { echo "check-units: $failures problem(s)"; exit 1; }

# The value of the last `Key=` line in a unit or snippet (empty when absent).
unit_value() { awk -F= -v k="$2" '$1 == k { sub(/^[^=]*=/, ""); v = $0 } END { print v }' "$1"; }

# --- systemd-analyze verify ----------------------------------------------------------
sed "s|^ExecStart=/usr/local/bin/repengd|ExecStart=$exe|" "$units/repengd.service" > "$tmp/repengd.service"
cp "$units/repengd.socket" "$tmp/repengd.socket"
if grep -q "^ExecStart=$exe " "$tmp/repengd.service"; then
    out="$(systemd-analyze verify --man=no --generators=no --recursive-errors=no \
        "$tmp/repengd.socket" "$tmp/repengd.service" 2>&1)"
    rc=$?
    # Anything said about our two units is a problem (unknown keys, bad values, missing paths).
    ours="$(printf '%s\n' "$out" | grep -E "repengd\.(service|socket)" || true)"
    if [ "$rc" -eq 0 ] && [ -z "$ours" ]; then
        pass "systemd-analyze verify repengd.socket repengd.service"
    else
        fail "systemd-analyze verify (exit $rc):"
        printf '%s\n' "$out" | sed "s|$tmp/||g; s/^/      /"
    fi
else
    fail "repengd.service: ExecStart= does not start with /usr/local/bin/repengd"
fi

# --- systemd-analyze security ------------------------------------------------------------
out="$(systemd-analyze security --offline=true --no-pager "$tmp/repengd.service" 2>&1)"
score="$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for repengd\.service: \([0-9][0-9]*\.[0-9]\).*/\1/p' | tail -n 1)"
if [ -z "$score" ]; then
    fail "systemd-analyze security --offline=true printed no overall exposure level:"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/      /'
elif awk -v s="$score" -v m="$max" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
    pass "systemd-analyze security --offline=true repengd.service: exposure $score (limit $max)"
else
    fail "systemd-analyze security --offline=true repengd.service: exposure $score is above $max; weak points:"
    printf '%s\n' "$out" | grep '✗' | sed 's/^/      /'
fi
echo "exposure: $score"

# --- sysusers snippet, applied to a scratch root -----------------------------------------
root="$tmp/root"
mkdir -p "$root/etc"
cp "$units/repengd.sysusers" "$tmp/repengd-sysusers.conf"
out="$(systemd-sysusers --root="$root" "$tmp/repengd-sysusers.conf" 2>&1)"
rc=$?
user_line="$(grep '^repengd:' "$root/etc/passwd" 2>/dev/null || true)"
uid="$(printf '%s' "$user_line" | cut -d: -f3)"
daemon_gid="$(grep '^repengd:' "$root/etc/group" 2>/dev/null | cut -d: -f3)"
client_gid="$(grep '^repeng:' "$root/etc/group" 2>/dev/null | cut -d: -f3)"
if [ "$rc" -ne 0 ] || printf '%s\n' "$out" | grep -qiE "fail|invalid|ignoring|syntax"; then
    fail "systemd-sysusers (exit $rc):"; printf '%s\n' "$out" | sed 's/^/      /'
elif [ -z "$uid" ] || [ -z "$daemon_gid" ] || [ -z "$client_gid" ]; then
    fail "systemd-sysusers did not create user repengd and groups repengd, repeng"
elif [ "$uid" -ge 1000 ] || [ "$uid" -eq 0 ] || [ "$(printf '%s' "$user_line" | cut -d: -f4)" != "$daemon_gid" ]; then
    fail "user repengd should be a system user (uid 1-999) in group repengd: $user_line"
elif ! printf '%s' "$user_line" | grep -qE ':/var/lib/repengd:(/usr)?/s?bin/nologin$'; then
    fail "user repengd should have home /var/lib/repengd and no login shell: $user_line"
else
    pass "systemd-sysusers: user repengd ($uid), groups repengd ($daemon_gid) and repeng ($client_gid)"
fi

# --- tmpfiles snippet, applied to the same root -------------------------------------------
cp "$units/repengd.tmpfiles" "$tmp/repengd-tmpfiles.conf"
if [ -z "$uid" ] || [ -z "$client_gid" ]; then
    note "systemd-tmpfiles (needs the users from the sysusers check)"
else
    out="$(systemd-tmpfiles --create --root="$root" "$tmp/repengd-tmpfiles.conf" 2>&1)"
    rc=$?
    if [ "$(id -u)" -ne 0 ]; then
        # Without root every chown fails (and tmpfiles then skips the mode); still catch
        # syntax errors and check that the directories were made.
        bad="$(printf '%s\n' "$out" | grep -E "repengd-tmpfiles\.conf:[0-9]+" || true)"
        if [ -n "$bad" ]; then
            fail "systemd-tmpfiles:"; printf '%s\n' "$bad" | sed 's/^/      /'
        elif [ -d "$root/run/repengd" ] && [ -d "$root/var/lib/repengd/vectors" ]; then
            pass "systemd-tmpfiles: creates /run/repengd, /var/lib/repengd/vectors (modes and owners checked only as root)"
        else
            fail "systemd-tmpfiles did not create /run/repengd and /var/lib/repengd/vectors"
        fi
    elif [ "$rc" -ne 0 ] || [ -n "$out" ]; then
        fail "systemd-tmpfiles --create (exit $rc):"; printf '%s\n' "$out" | sed 's/^/      /'
    else
        ok=1
        check_dir() { # path mode uid gid
            local got
            got="$(stat -c '%a %u %g' "$root$1" 2>/dev/null || echo missing)"
            [ "$got" = "$2 $3 $4" ] || { fail "systemd-tmpfiles: $1 is '$got', expected '$2 $3 $4' (mode uid gid)"; ok=0; }
        }
        check_dir /run/repengd 2750 "$uid" "$client_gid"
        check_dir /var/lib/repengd 750 "$uid" "$daemon_gid"
        check_dir /var/lib/repengd/vectors 750 "$uid" "$daemon_gid"
        [ "$ok" = 1 ] && pass "systemd-tmpfiles: /run/repengd 2750 repengd:repeng, /var/lib/repengd{,/vectors} 0750 repengd:repengd"
    fi
fi

# --- config file ------------------------------------------------------------------------
if command -v python3 >/dev/null && python3 -c 'import tomllib' 2>/dev/null; then
    # The file as shipped, and with every commented-out setting switched on, must be TOML
    # using only the expected tables; print the active socket path for the next check.
    out="$(python3 - "$units/repengd.toml" 2>&1 <<'PY'
import re, sys, tomllib
text = open(sys.argv[1], encoding="utf-8").read()
try:
    live = tomllib.loads(text)
except tomllib.TOMLDecodeError as e:
    sys.exit(f"as shipped: {e}")
try:
    every = tomllib.loads(re.sub(r"(?m)^#(?=[A-Za-z_\[])", "", text))
except tomllib.TOMLDecodeError as e:
    sys.exit(f"with every setting uncommented: {e}")
top = {"socket", "vectors", "saes", "precision", "state", "threads", "socket_group", "allowed_uids", "model", "limits",
       "http_socket", "http_listen", "http_allow_remote", "http_token_file"}
for name, cfg in (("as shipped", live), ("uncommented", every)):
    extra = set(cfg) - top
    if extra:
        sys.exit(f"{name}: unexpected top-level keys {sorted(extra)}")
    for i, m in enumerate(cfg.get("model", [])):
        if set(m) != {"name", "path"}:
            sys.exit(f"{name}: [[model]] #{i + 1} needs exactly name and path, has {sorted(m)}")
for key in ("socket", "vectors", "state"):
    if not isinstance(live.get(key), str):
        sys.exit(f"as shipped: '{key}' must be set")
if not live.get("model"):
    sys.exit("as shipped: needs a [[model]]")
print(live["socket"])
PY
)"
    if [ $? -eq 0 ]; then
        pass "repengd.toml is valid TOML, as shipped and with every setting uncommented"
        toml_socket="$out"
    else
        fail "repengd.toml: $out"
        toml_socket=""
    fi
else
    note "repengd.toml TOML syntax (needs python3 >= 3.11 for tomllib)"
    toml_socket="$(sed -n 's/^socket *= *"\(.*\)".*/\1/p' "$units/repengd.toml" | tail -n 1)"
fi

# --- the files agree -------------------------------------------------------------------------
listen="$(unit_value "$units/repengd.socket" ListenStream)"
problems=()
if [ -n "$toml_socket" ]; then
    [ "$listen" = "$toml_socket" ] || problems+=("ListenStream=$listen but repengd.toml socket = \"$toml_socket\"")
fi
grep -qE "^d +$(dirname "$listen") " "$units/repengd.tmpfiles" || problems+=("repengd.tmpfiles does not create $(dirname "$listen")")
[ "$(unit_value "$units/repengd.socket" SocketUser)" = "$(unit_value "$units/repengd.service" User)" ] \
    || problems+=("SocketUser= differs from the service's User=")
for u in "$(unit_value "$units/repengd.service" User)"; do
    grep -qE "^u +$u " "$units/repengd.sysusers" || problems+=("User=$u is not created by repengd.sysusers")
done
for g in "$(unit_value "$units/repengd.service" Group)" "$(unit_value "$units/repengd.socket" SocketGroup)"; do
    grep -qE "^[ug] +$g " "$units/repengd.sysusers" || problems+=("group $g is not created by repengd.sysusers")
done
grep -qE "^ExecStart=/usr/local/bin/repengd .*--config /etc/repengd/repengd\.toml" "$units/repengd.service" \
    || problems+=("ExecStart= should pass --config /etc/repengd/repengd.toml")
if [ ${#problems[@]} -eq 0 ]; then
    pass "units, snippets and config agree (socket $listen)"
else
    for p in "${problems[@]}"; do fail "$p"; done
fi

if [ "$failures" -eq 0 ]; then
    echo "check-units: all checks passed (exposure $score)"
    exit 0
fi
echo "check-units: $failures problem(s)"
exit 1
