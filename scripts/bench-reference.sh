#!/usr/bin/env bash
# Measures a reference server with charla-bench under the conditions of scripts/bench.sh, so that
# docs/benchmarks.md can compare Charla with them on the same machine and day: the same
# scenarios and sizes, a fresh server per scenario pinned to core 0 (flood control off or as
# high as the server allows, no per-IP limit; see the configurations in bench/reference/),
# charla-bench on core 1. Prints the JSON of every run, then the same table as scripts/bench.sh.
#   scripts/bench-reference.sh ngircd     ngIRCd (Debian package ngircd), charla-bench --dialect irc
#   scripts/bench-reference.sh inspircd   InspIRCd 3 (Debian package inspircd), --dialect irc
#   scripts/bench-reference.sh asyncio    bench/reference/asyncio_server.py (protocol v1, python3)
#   QUICK=1 scripts/bench-reference.sh ... smaller runs, for a first look
# BIG, MSGS (see below), PORT (default 23456), TIMEOUT (seconds per scenario, default 600, as scripts/bench.sh; see
# bench/reference/README.md for the runs that need more), KEY_TYPE (gen-certs.sh --key-type,
# default rsa) can be set too, and
# CONCURRENCY: connections being set up at once while the idle and fanout scenarios fill the
# room (charla-bench's default, 64, as scripts/bench.sh; 10 for ngIRCd, which listens with a
# backlog of 10 and accepts one connection per pass of its main loop: with 64 the kernel drops
# connections and the runs fail with "TLS handshake: Connection reset by peer").
# It builds nothing: target/release/charla-bench must exist (scripts/bench.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: [QUICK=1] $0 ngircd|inspircd|asyncio" >&2; exit 2; }
[ $# -eq 1 ] || usage
kind=$1
case $kind in ngircd|inspircd|asyncio) ;; *) usage ;; esac

bench=target/release/charla-bench
if [ ! -x "$bench" ]; then
    echo "$0: $bench not found: run scripts/bench.sh, or cargo build --release -p charla-bench, first" >&2
    exit 1
fi
dialect=()
if [ "$kind" != asyncio ]; then
    if ! "$bench" --help | grep -q -- --dialect; then
        echo "$0: $bench has no --dialect option: rebuild it (cargo build --release -p charla-bench)" >&2
        exit 1
    fi
    dialect=(--dialect irc)
fi
need() { command -v "$1" >/dev/null || { echo "$0: $1 not found: $2" >&2; exit 1; }; }
case $kind in
    ngircd) need ngircd "apt-get install ngircd (then keep its service stopped)" ;;
    inspircd) need inspircd "apt-get install inspircd (then keep its service stopped)" ;;
    asyncio) need python3 "install Python 3.11 or later" ;;
esac
need taskset "apt-get install util-linux"

dir=$(mktemp -d)
trap 'if [ -n "${server_pid:-}" ]; then kill "$server_pid" 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
./gen-certs.sh --batch ${KEY_TYPE:+--key-type "$KEY_TYPE"} --out "$dir/certs" >/dev/null 2>&1
cert=$dir/certs/server-cert.pem key=$dir/certs/server-key.key
port=${PORT:-23456}
timeout=${TIMEOUT:-600}
results=()
connect_args=()
if [ -n "${CONCURRENCY:-}" ]; then
    connect_args=(--concurrency "$CONCURRENCY")
elif [ "$kind" = ngircd ]; then
    connect_args=(--concurrency 10)
fi

# Per server: the configuration, and how to start it in the foreground (so that $! is the
# server's own PID for --server-pid), where it logs, and the log line that says it listens.
case $kind in
    ngircd)
        # ffdhe2048 from RFC 7919 (named group: instant); see ngircd.conf.in.
        openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out "$dir/dh.pem" 2>/dev/null
        mkdir -p "$dir/ngircd.conf.d"
        sed -e "s|@PORT@|$port|g; s|@CERT@|$cert|g; s|@KEY@|$key|g; s|@DH@|$dir/dh.pem|g; s|@DIR@|$dir|g" \
            bench/reference/ngircd.conf.in >"$dir/ngircd.conf"
        server_cmd=(ngircd -n -f "$dir/ngircd.conf")
        log=$dir/ngircd.log ready="Now listening on \[127.0.0.1\]:$port" comm=ngircd
        ;;
    inspircd)
        # InspIRCd refuses to run as root (unless --runasroot): run it as "irc", as Debian does,
        # with copies of the certificate and key that this user can read.
        run_as=()
        idir=$dir/inspircd
        mkdir -p "$idir"
        cp "$cert" "$key" "$idir/"
        echo "charla-bench" >"$idir/motd.txt"
        if [ "$(id -u)" = 0 ]; then
            need setpriv "apt-get install util-linux"
            id irc >/dev/null 2>&1 || { echo "$0: no user 'irc' to run InspIRCd as" >&2; exit 1; }
            chmod 711 "$dir"
            chown -R irc:irc "$idir"
            run_as=(setpriv --reuid=irc --regid=irc --init-groups)
        fi
        sed -e "s|@PORT@|$port|g; s|@CERT@|$idir/server-cert.pem|g; s|@KEY@|$idir/server-key.key|g; s|@DIR@|$idir|g" \
            bench/reference/inspircd.conf.in >"$idir/inspircd.conf"
        server_cmd=("${run_as[@]}" taskset -c 0 inspircd --nofork --nopid --config "$idir/inspircd.conf")
        log=$idir/inspircd.out ready="is now running" comm=inspircd
        ;;
    asyncio)
        server_cmd=(python3 bench/reference/asyncio_server.py --bind "127.0.0.1:$port"
            --cert "$cert" --key "$key")
        log=$dir/asyncio.log ready="listening on 127.0.0.1:$port" comm=python3
        ;;
esac
if [ "$kind" != inspircd ]; then server_cmd=(taskset -c 0 "${server_cmd[@]}"); fi

start_server() {
    "${server_cmd[@]}" >"$log" 2>&1 &
    server_pid=$!
    local deadline=$((SECONDS + 20))
    while [ $SECONDS -lt $deadline ]; do
        if grep -q "$ready" "$log" 2>/dev/null; then
            # setpriv and taskset exec the server: the PID is the server's own.
            case $(cat "/proc/$server_pid/comm" 2>/dev/null) in
                "$comm"*) ;;
                *) echo "$kind: PID $server_pid is not $comm" >&2; exit 1 ;;
            esac
            return
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
        sleep 0.05
    done
    echo "$kind did not start:" >&2; cat "$log" >&2; exit 1
}

stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    local status=0
    # (bash's own "Segmentation fault" notice goes to stderr while it waits: see below)
    exec 3>&2 2>/dev/null
    wait "$server_pid" || status=$?
    exec 2>&3 3>&-
    # InspIRCd 3.15 (Debian 12) crashes with SIGSEGV at the very end of every shutdown, after it
    # has unloaded its modules, even without clients: harmless here. Anything else is reported.
    if [ "$status" -ne 0 ] && ! [ "$kind:$status" = inspircd:139 ]; then
        echo "$kind exited with status $status after SIGTERM; its log:" >&2
        tail -5 "$log" >&2
    fi
    server_pid=
}

run() { # label, bench args...
    local label=$1; shift
    start_server
    local json
    json=$(taskset -c 1 "$bench" "$@" "${dialect[@]}" --server "127.0.0.1:$port" \
        --ca "$cert" --server-pid "$server_pid" --timeout "$timeout") || true
    stop_server
    echo "$label: $json"
    results+=("$label|$json")
}

# A field of a JSON line, or nothing (a failed run has only ok, error and bench_cpu_s).
field() { { grep -o "\"$2\":[^,}]*" <<<"$1" || true; } | head -1 | cut -d: -f2 | tr -d '"'; }

case $kind in
    ngircd) version=$(ngircd --version | head -1) ;;
    inspircd) version=$(inspircd --version) ;;
    asyncio) version=$(python3 -c 'import ssl, sys; print("Python", sys.version.split()[0], "with", ssl.OPENSSL_VERSION)') ;;
esac
echo "# $kind: $version${connect_args[*]:+ (room filled with ${connect_args[*]})}"

if [ -n "${QUICK:-}" ]; then big=2000; msgs=500; else big=10000; msgs=2000; fi
# BIG and MSGS override the size of the second idle run and the messages per sender of the
# flat-out fan-out: ngIRCd and the asyncio server do not fill a room of 10,000 in reasonable time.
big=${BIG:-$big} msgs=${MSGS:-$msgs}
c=("${connect_args[@]}")
run "idle 1000" idle --clients 1000 "${c[@]}"
run "idle $big" idle --clients "$big" "${c[@]}"
run "fanout C=100 10x$msgs" fanout --clients 100 --senders 10 --messages "$msgs" "${c[@]}"
run "fanout C=1000 2x500" fanout --clients 1000 --senders 2 --messages 500 "${c[@]}"
run "fanout C=100 10x100/s" fanout --clients 100 --senders 10 --messages 500 --rate 100 "${c[@]}"
run "handshake 5 s" handshake --seconds 5 --concurrency 32

echo
printf '%-24s %-6s %s\n' "scenario ($kind)" ok figures
for r in "${results[@]}"; do
    label=${r%%|*}; json=${r#*|}
    case $label in
        idle*) figs="KiB/client=$(field "$json" kib_per_client) rss_kib=$(field "$json" server_rss_kib) connect_s=$(field "$json" connect_all_s)" ;;
        fanout*) figs="us/delivery=$(field "$json" server_cpu_us_per_delivery) deliveries/s=$(field "$json" deliveries_per_s) lost=$(field "$json" lost) p50_ms=$(field "$json" latency_p50_ms) p99_ms=$(field "$json" latency_p99_ms) max_ms=$(field "$json" latency_max_ms) bench_cpu_s=$(field "$json" bench_cpu_s)" ;;
        handshake*) figs="ms/session=$(field "$json" server_cpu_ms_per_session) sessions/s=$(field "$json" sessions_per_s)" ;;
    esac
    error=$(grep -o '"error":"[^"]*"' <<<"$json" | cut -d'"' -f4 || true)
    printf '%-24s %-6s %s\n' "$label" "$(field "$json" ok)" "$figs${error:+ error: $error}"
done
