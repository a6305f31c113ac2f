#!/bin/sh
# Runs the arm64 build of charla-server (scripts/cross-build-arm64.sh) on this x86-64 machine
# under qemu-user, with Debian's arm64 libraries: 'scripts/run-arm64.sh --version'. CI points the
# integration tests at it (CHARLA_TEST_SERVER_BIN) to check the arm64 server end to end.
here=$(dirname "$0")
QEMU_LD_PREFIX=/usr/aarch64-linux-gnu LD_LIBRARY_PATH=/usr/lib/aarch64-linux-gnu \
    exec qemu-aarch64 "$here/../target/aarch64-unknown-linux-gnu/release/charla-server" "$@"
