#!/usr/bin/env bash
# Soak run (not part of CI): churn against a release server for a long time and check that its
# memory and descriptors stay flat and it never panics. Results go in docs/security.md.
#   scripts/soak.sh            30 minutes
#   SECONDS_TO_RUN=120 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${SECONDS_TO_RUN:-1800}

cargo build --release -p charla-server -p charla-bench
dir=$(mktemp -d)
log_copy=${SOAK_LOG:-/tmp/charla-soak-server.log}
trap 'kill "${server_pid:-}" 2>/dev/null || true; cp "$dir/server.log" "$log_copy" 2>/dev/null; rm -rf "$dir"' EXIT
./gen-certs.sh --batch --out "$dir/certs" >/dev/null 2>&1
port=${PORT:-23457}
target/release/charla-server --bind "127.0.0.1:$port" --cert "$dir/certs/server-cert.pem" \
    --key "$dir/certs/server-key.key" --max-queue 256K --max-connects-per-ip 0 \
    --max-joining-per-ip 1000 --ready-fd 3 3>"$dir/ready" 2>"$dir/server.log" &
server_pid=$!
. scripts/ready.sh
wait_ready "$dir/ready" "$server_pid" >/dev/null

json=$(target/release/charla-bench soak --seconds "$duration" --clients 50 --concurrency 8 --size 1000 \
    --server "127.0.0.1:$port" --ca "$dir/certs/server-cert.pem" --server-pid "$server_pid" \
    --timeout $((duration + 300)))
echo "$json"
kill -TERM "$server_pid"; wait "$server_pid"; status=$?; server_pid=
echo "server exit status: $status"
field() { grep -o "\"$1\":[^,}]*" <<<"$json" | cut -d: -f2; }
panics=$(grep -c "panicked" "$dir/server.log" || true)
echo "log lines: $(wc -l <"$dir/server.log"), panics: $panics (log kept in $log_copy)"
echo "dropped as too slow (server log): $(grep -c 'too slow' "$dir/server.log" || true)"
echo "RSS KiB first/last/max: $(field rss_first_kib)/$(field rss_last_kib)/$(field rss_max_kib)"
echo "descriptors first/last/max: $(field fds_first)/$(field fds_last)/$(field fds_max)"
[ "$status" = 0 ] && [ "$panics" = 0 ] && grep -q '"ok":true' <<<"$json"
