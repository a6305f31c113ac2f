#!/usr/bin/env bash
# Measures charla-server with charla-bench: release build, server pinned to core 0 with flood
# control and the per-address limits off (all the load comes from one address), the load
# generator on core 1, each scenario against a fresh server. Prints the JSON of every run, then a
# table. Figures for docs/benchmarks.md come from here.
#   scripts/bench.sh            all scenarios
#   QUICK=1 scripts/bench.sh    smaller runs, for a first look
#   SCENARIOS='^fanout' scripts/bench.sh   only the scenarios whose label matches
#   SERVER_BIN=path scripts/bench.sh   measure another build of the server (an older commit's,
#                                      for a before/after comparison) with the same load generator
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ready.sh

cargo build --release -p charla-server -p charla-bench
server_bin=${SERVER_BIN:-target/release/charla-server}
dir=$(mktemp -d)
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
./gen-certs.sh --batch --out "$dir/certs" >/dev/null 2>&1
./gen-certs.sh --batch --key-type ec --out "$dir/certs-ec" >/dev/null 2>&1
certs=$dir/certs
port=${PORT:-23456}
ready_flag=(--ready-fd 3)
"$server_bin" --help | grep -q -- --ready-fd || ready_flag=()
results=()
server_args=()

start_server() {
    taskset -c 0 "$server_bin" --bind "127.0.0.1:$port" \
        --cert "$certs/server-cert.pem" --key "$certs/server-key.key" \
        --flood-rate 0 --max-clients 20000 --max-joining-per-ip 20000 --max-connects-per-ip 0 \
        "$@" "${ready_flag[@]}" 3>"$dir/ready" 2>"$dir/server.log" &
    server_pid=$!
    if [ ${#ready_flag[@]} = 0 ]; then
        # A build from before --ready-fd (SERVER_BIN of an older commit): its log says it.
        for _ in $(seq 100); do
            grep -q "listening on" "$dir/server.log" 2>/dev/null && return
            sleep 0.05
        done
    fi
    wait_ready "$dir/ready" "$server_pid" >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
}

stop_server() {
    kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=
}

run() { # label, bench args...
    local label=$1; shift
    # SCENARIOS='regex': only the scenarios whose label matches.
    if [ -n "${SCENARIOS:-}" ] && ! grep -Eq -- "$SCENARIOS" <<<"$label"; then return; fi
    start_server "${server_args[@]}"
    local json
    json=$(taskset -c 1 target/release/charla-bench "$@" --server "127.0.0.1:$port" \
        --ca "$certs/server-cert.pem" --server-pid "$server_pid" --timeout 600) || true
    stop_server
    echo "$label: $json"
    results+=("$label|$json")
}

# A field of a JSON line, or nothing (a failed run has only ok, error and bench_cpu_s).
field() { { grep -o "\"$2\":[^,}]*" <<<"$1" || true; } | head -1 | cut -d: -f2 | tr -d '"'; }

if [ -n "${QUICK:-}" ]; then big=2000; msgs=500; else big=10000; msgs=2000; fi
run "idle 1000" idle --clients 1000
run "idle $big" idle --clients "$big"
run "fanout C=100 10x$msgs" fanout --clients 100 --senders 10 --messages "$msgs"
run "fanout C=1000 2x500" fanout --clients 1000 --senders 2 --messages 500
run "fanout C=100 10x100/s" fanout --clients 100 --senders 10 --messages 500 --rate 100
server_args=(--batch-delay 5)
run "same, --batch-delay 5" fanout --clients 100 --senders 10 --messages 500 --rate 100
server_args=()
run "handshake 5 s" handshake --seconds 5 --concurrency 32
certs=$dir/certs-ec
run "handshake 5 s, ECDSA" handshake --seconds 5 --concurrency 32
# Every client presenting an identity (a client certificate), as Charla's client does.
run "handshake 5 s, ECDSA, identity" handshake --seconds 5 --concurrency 32 --identity
certs=$dir/certs
run "idle $big, identity" idle --clients "$big" --identity
# Rooms (issue 22), for a build that has them: made by the clients' one identity.
if "$server_bin" --help | grep -q -- --max-rooms; then
    server_args=(--max-rooms 10000 --max-rooms-per-identity 100000 --max-rooms-per-user 100)
    run "idle $big in 1000 rooms, identity" idle --clients "$big" --rooms 1000 --identity
    # Each client in 50 rooms (the default --max-rooms-per-user) besides #general, against the
    # same clients in #general only.
    run "idle 1000 in #general, identity" idle --clients 1000 --identity
    run "idle 1000 each in 50 rooms, identity" idle --clients 1000 --rooms 50 --rooms-each 50 --identity
    run "idle join storm 2000 into 100 rooms" idle --clients 2000 --rooms 100 --identity --hold 0.5
    run "fanout C=100 in #r0 10x$msgs" fanout --clients 100 --senders 10 --messages "$msgs" --rooms 1 --identity
    run "fanout C=1000 in #r0 2x500" fanout --clients 1000 --senders 2 --messages 500 --rooms 1 --identity
    run "fanout C=50 each in 50 rooms 10x500" fanout --clients 50 --senders 10 --messages 500 --rooms 50 --rooms-each 50 --identity
    server_args=()
fi

echo
printf '%-24s %-6s %s\n' scenario ok figures
for r in "${results[@]}"; do
    label=${r%%|*}; json=${r#*|}
    case $label in
        idle*) figs="KiB/client=$(field "$json" kib_per_client) rss_kib=$(field "$json" server_rss_kib) connect_s=$(field "$json" connect_all_s) join_s=$(field "$json" join_all_s) join_ms/client=$(field "$json" join_server_cpu_ms_per_client) hwm_kib=$(field "$json" server_hwm_kib) hwm_after_leaving_kib=$(field "$json" server_hwm_after_leaving_kib) leave_s=$(field "$json" leave_all_s)" ;;
        fanout*|same*) figs="us/delivery=$(field "$json" server_cpu_us_per_delivery) deliveries/s=$(field "$json" deliveries_per_s) lost=$(field "$json" lost) p50_ms=$(field "$json" latency_p50_ms) p99_ms=$(field "$json" latency_p99_ms) max_ms=$(field "$json" latency_max_ms) bench_cpu_s=$(field "$json" bench_cpu_s)" ;;
        handshake*) figs="ms/session=$(field "$json" server_cpu_ms_per_session) sessions/s=$(field "$json" sessions_per_s)" ;;
    esac
    printf '%-24s %-6s %s\n' "$label" "$(field "$json" ok)" "$figs"
done
