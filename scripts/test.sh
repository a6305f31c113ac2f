#!/usr/bin/env bash
# Every test, on a fresh Debian/Ubuntu machine too: installs what the tests need besides Rust
# (scripts/install-packages.sh --tests: through apt-get as root, with sudo otherwise, printing the
# command when neither can), then runs every test target of the workspace — all of them, even
# after one fails, and says at the end which failed. The tests' temporary files go to a
# directory of this run's own, removed when it ends.
#   scripts/test.sh                  everything
#   scripts/test.sh -p charla-server  extra arguments go to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

scripts/install-packages.sh --tests
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust from https://rustup.rs (or: apt-get install cargo)" >&2
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/charla-tests.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
TMPDIR=$tmp cargo test --workspace --no-fail-fast "$@"
