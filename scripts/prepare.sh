#!/usr/bin/env bash
# What start.sh and start-server.sh both need first: system packages, cargo, a certificate.
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
