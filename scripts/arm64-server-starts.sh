#!/usr/bin/env bash
# Whether the arm64 server (scripts/cross-build-arm64.sh) starts under qemu-user on this machine:
# it must say "listening on", which its log thread writes. Exit status 0 if it does within 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
# SIGKILL: a server stuck in qemu never acts on SIGTERM, and would spin on a core for good.
trap 'kill -KILL "${server:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
./gen-certs.sh --batch --out "$dir/certs" >/dev/null 2>&1
scripts/run-arm64.sh --bind 127.0.0.1:0 --cert "$dir/certs/server-cert.pem" \
    --key "$dir/certs/server-key.key" 2>"$dir/log" &
server=$!
for _ in $(seq 300); do
    grep -q "listening on" "$dir/log" && exit 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
echo "the arm64 server did not start under qemu-user within 30 s; its log:" >&2
cat "$dir/log" >&2
exit 1
