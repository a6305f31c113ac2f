#!/usr/bin/env bash
# Sets up what the server needs on a Debian/Ubuntu machine with Rust, then runs it.
# Certificates are made once (certs/); later runs reuse them. Extra arguments go to the server,
# e.g.  scripts/start-server.sh --bind 0.0.0.0:12345
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the build needs: OpenSSL's headers for the openssl crate, pkg-config to find
# them, a C compiler and the openssl command for gen-certs.sh.
packages=(openssl libssl-dev pkg-config gcc libc6-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "+ apt-get install ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    elif command -v sudo >/dev/null; then
        echo "+ sudo apt-get install ${missing[*]}"
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        echo "Missing system packages; install them as root with:" >&2
        echo "  apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust from https://rustup.rs (or: apt-get install cargo)" >&2
    exit 1
fi

if [ ! -f certs/server-key.key ] || [ ! -f certs/server-cert.pem ]; then
    ./gen-certs.sh --batch
fi
echo "Clients trust certs/server-cert.pem; its fingerprint:"
openssl x509 -noout -fingerprint -sha256 -in certs/server-cert.pem
exec cargo run --release -p charla-server -- "$@"
