#!/usr/bin/env bash
# Builds charla-server for arm64 (aarch64-unknown-linux-gnu: a Raspberry Pi 4 or 5 with a 64-bit
# system, an arm64 VPS) on an x86-64 Debian or Ubuntu machine:
#   scripts/cross-build-arm64.sh      → target/aarch64-unknown-linux-gnu/release/charla-server
# then 'scripts/build-debs.sh --target aarch64-unknown-linux-gnu --server-only' packages it.
# Installs what is missing: Debian's cross compiler and arm64 OpenSSL (adding the arm64
# architecture to dpkg; on Ubuntu arm64 packages come from ports.ubuntu.com, which apt must be
# told about) and Rust's standard library for the target (rustup, from static.rust-lang.org).
# With --check it also runs the binary under qemu-user (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
    echo "+ dpkg --add-architecture arm64"
    "${sudo[@]}" dpkg --add-architecture arm64
    "${sudo[@]}" apt-get update -qq
fi
check=; [ "${1:-}" = --check ] && check=1
wanted=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross libssl-dev:arm64)
[ -z "$check" ] || wanted+=(qemu-user)
missing=()
for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
    echo "+ apt-get install ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# shellcheck source=scripts/cross-env-arm64.sh
. scripts/cross-env-arm64.sh
cargo build --release --target "$target" -p charla-server
bin=target/$target/release/charla-server
file "$bin" 2>/dev/null || ls -l "$bin"
if [ -n "$check" ]; then
    scripts/run-arm64.sh --version
fi
