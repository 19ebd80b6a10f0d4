#!/usr/bin/env bash
# Installs repengd and repengctl with their systemd units, sysusers/tmpfiles snippets, default
# config and bundled model (layout: docs/systemd.md). Idempotent; never replaces an existing
# config file.
#
#   scripts/install.sh                     build (swift build -c release) and install under /usr/local
#   scripts/install.sh --no-build          install the executables already in .build/release
#   scripts/install.sh --build-dir DIR     install the executables found in DIR (implies --no-build)
#   PREFIX=/usr scripts/install.sh         another prefix (also --prefix DIR)
#   DESTDIR=/tmp/stage scripts/install.sh  staged install: files only, touches nothing live
#
# Other locations (environment): SYSCONFDIR (/etc), UNITDIR (/usr/lib/systemd/system),
# SYSUSERSDIR (/usr/lib/sysusers.d), TMPFILESDIR (/usr/lib/tmpfiles.d), REPENG_CACHE (.cache:
# where the bundled model is looked for, in models/).
#
# After copying, on a live system (no DESTDIR) where systemd runs as PID 1 it creates the
# users and directories (systemd-sysusers, systemd-tmpfiles --create) and runs
# `systemctl daemon-reload`; it enables nothing (see docs/systemd.md).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
SYSCONFDIR="${SYSCONFDIR:-/etc}"
UNITDIR="${UNITDIR:-/usr/lib/systemd/system}"
SYSUSERSDIR="${SYSUSERSDIR:-/usr/lib/sysusers.d}"
TMPFILESDIR="${TMPFILESDIR:-/usr/lib/tmpfiles.d}"
cache="${REPENG_CACHE:-$here/.cache}"
build=1
builddir="$here/.build/release"

while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --build-dir) [ $# -ge 2 ] || die "--build-dir needs a directory"; builddir="$2"; build=0; shift ;;
        --build-dir=*) builddir="${1#*=}"; build=0 ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX="$2"; shift ;;
        --prefix=*) PREFIX="${1#*=}" ;;
        --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; DESTDIR="$2"; shift ;;
        --destdir=*) DESTDIR="${1#*=}" ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done

for v in PREFIX SYSCONFDIR UNITDIR SYSUSERSDIR TMPFILESDIR; do
    case "${!v}" in /*) ;; *) die "$v must be an absolute path, got '${!v}'" ;; esac
done
case "$PREFIX$SYSCONFDIR" in *[[:space:]\|\&\\]*) die "PREFIX and SYSCONFDIR may not contain spaces, '|', '&' or '\\'" ;; esac
PREFIX="${PREFIX%/}"   # "/" becomes "", so "$PREFIX/bin" is /bin
if [ -n "$DESTDIR" ]; then
    case "$DESTDIR" in /*) ;; *) DESTDIR="$PWD/$DESTDIR" ;; esac
    DESTDIR="${DESTDIR%/}"
fi

# --- executables -------------------------------------------------------------
if [ "$build" = 1 ]; then
    command -v swift >/dev/null || die "swift not found: install Swift 6, or build elsewhere and use --no-build / --build-dir"
    say "building (swift build -c release)"
    (cd "$here" && swift build -c release)
fi
for exe in repengd repengctl; do
    [ -x "$builddir/$exe" ] || die "$builddir/$exe not found or not executable (run 'swift build -c release' first, or pass --build-dir)"
done

bindir="$PREFIX/bin"
sharedir="$PREFIX/share/repengd"
docdir="$PREFIX/share/doc/repengd"
confdir="$SYSCONFDIR/repengd"

# Copies $2 to $DESTDIR$3 with mode $1, skipping identical files (keeps big models cheap).
put() {
    local mode="$1" src="$2" dst="$DESTDIR$3"
    if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
        chmod "$mode" "$dst"
        return
    fi
    install -D -m "$mode" "$src" "$dst"
    say "installed $dst"
}

# Rewrites the /usr/local and /etc paths the shipped files name to the chosen locations.
localize() {
    sed -e "s|/usr/local/bin/repengd|$bindir/repengd|g" \
        -e "s|/usr/local/share/repengd|$sharedir|g" \
        -e "s|/usr/local/share/doc/repengd|$docdir|g" \
        -e "s|/etc/repengd/repengd.toml|$confdir/repengd.toml|g" "$1"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

put 0755 "$builddir/repengd" "$bindir/repengd"
put 0755 "$builddir/repengctl" "$bindir/repengctl"

# --- bundled model -----------------------------------------------------------
model="SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$cache/models/$model" ]; then
    put 0644 "$cache/models/$model" "$sharedir/models/$model"
else
    say "note: $cache/models/$model not found (scripts/bootstrap.sh fetches it); the config's [[model]] must then point at another GGUF file"
fi

# --- systemd units and snippets ----------------------------------------------
localize "$here/systemd/repengd.service" > "$tmp/repengd.service"
localize "$here/systemd/repengd.socket" > "$tmp/repengd.socket"
localize "$here/systemd/repengd.toml" > "$tmp/repengd.toml"
put 0644 "$tmp/repengd.service" "$UNITDIR/repengd.service"
put 0644 "$tmp/repengd.socket" "$UNITDIR/repengd.socket"
put 0644 "$here/systemd/repengd.sysusers" "$SYSUSERSDIR/repengd.conf"
put 0644 "$here/systemd/repengd.tmpfiles" "$TMPFILESDIR/repengd.conf"
put 0644 "$here/docs/systemd.md" "$docdir/systemd.md"

# --- config: the example is always current, the live file is never replaced -------
put 0644 "$tmp/repengd.toml" "$sharedir/repengd.toml.example"
if [ -e "$DESTDIR$confdir/repengd.toml" ]; then
    if ! cmp -s "$tmp/repengd.toml" "$DESTDIR$confdir/repengd.toml"; then
        say "kept existing $DESTDIR$confdir/repengd.toml (the shipped default is $DESTDIR$sharedir/repengd.toml.example)"
    fi
else
    install -D -m 0644 "$tmp/repengd.toml" "$DESTDIR$confdir/repengd.toml"
    say "installed $DESTDIR$confdir/repengd.toml"
fi

# --- activate on a live systemd host -------------------------------------------
if [ -n "$DESTDIR" ]; then
    say "staged into $DESTDIR; on the target run: systemd-sysusers $SYSUSERSDIR/repengd.conf; systemd-tmpfiles --create $TMPFILESDIR/repengd.conf; systemctl daemon-reload"
elif [ ! -d /run/systemd/system ]; then
    say "systemd is not running as PID 1 here: skipped systemd-sysusers, systemd-tmpfiles --create and systemctl daemon-reload"
else
    systemd-sysusers "$SYSUSERSDIR/repengd.conf"
    systemd-tmpfiles --create "$TMPFILESDIR/repengd.conf"
    systemctl daemon-reload
    say "done; start with: systemctl enable --now repengd.socket (and add clients to group repeng: usermod -aG repeng USER)"
fi
