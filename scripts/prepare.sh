#!/usr/bin/env bash
# What start.sh and start-server.sh both need first: system packages, cargo, a certificate, and
# state/ for the server's registered nicknames, bans and operators file.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-packages.sh
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust from https://rustup.rs (or: apt-get install cargo)" >&2
    exit 1
fi
if [ ! -f certs/server-key.key ] || [ ! -f certs/server-cert.pem ]; then
    ./gen-certs.sh --batch
fi
# Registered nicknames and bans survive restarts there (--state-dir); operators are listed in
# state/operators (--operators), one identity fingerprint per line.
mkdir -p state
chmod 700 state
if [ ! -f state/operators ]; then
    cat >state/operators <<'END'
# The operators of this server: one identity fingerprint per line ('charla --show-identity'
# prints yours). After editing, send the server SIGHUP (kill -HUP <pid>) or restart it.
END
fi
