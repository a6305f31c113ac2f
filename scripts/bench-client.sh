#!/usr/bin/env bash
# Measures the Charla window as a user meets it, under Xvfb against the real server (release
# builds), and HexChat the same way against ngIRCd: start to window mapped, idle memory, key
# press to letter painted (idle, and during a burst of 10,000 64-byte lines), the burst's CPU.
# Prints one JSON line per client and run, the two alternately; figures for docs/benchmarks.md
# come from here.
#   scripts/bench-client.sh          3 runs of each
#   RUNS=5 scripts/bench-client.sh
#   CLIENTS=charla scripts/bench-client.sh       Charla only (the default when HexChat or
#                                                ngIRCd is not installed)
#   CHARLA_BIN=/tmp/charla-old scripts/bench-client.sh   another build of the client
#   BURST_ROOM='#flood' scripts/bench-client.sh   the window in #flood too, showing #general:
#                                                the burst goes to the room not shown
# Needs Xvfb (scripts/install-packages.sh --tests) and python3; python-xlib (for XTEST and
# GetImage) is installed from PyPI into target/bench-venv on the first run. For HexChat:
# apt-get install hexchat ngircd (then keep ngIRCd's service stopped); run as root, HexChat is
# run as "nobody" (it stops at a warning dialog as root).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ready.sh

cargo build --release -p charla-server -p charla
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import Xlib' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q python-xlib
fi
dir=$(mktemp -d)
trap 'kill "${server_pid:-}" "${ngircd_pid:-}" "${xvfb_pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
./gen-certs.sh --batch --out "$dir/certs" >/dev/null 2>&1

start_xvfb "$dir"

clients=${CLIENTS:-charla}
if [ -z "${CLIENTS:-}" ] && command -v hexchat >/dev/null && command -v ngircd >/dev/null; then
    clients="charla hexchat"
fi
case " $clients " in
    *" hexchat "*)
        # ngIRCd as scripts/bench-reference.sh runs it (TLS only; #charla is made at start).
        irc_port=24100
        openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out "$dir/dh.pem" 2>/dev/null
        mkdir -p "$dir/ngircd.conf.d"
        sed -e "s|@PORT@|$irc_port|g; s|@CERT@|$dir/certs/server-cert.pem|g" \
            -e "s|@KEY@|$dir/certs/server-key.key|g; s|@DH@|$dir/dh.pem|g; s|@DIR@|$dir|g" \
            bench/reference/ngircd.conf.in >"$dir/ngircd.conf"
        ngircd -n -f "$dir/ngircd.conf" >"$dir/ngircd.log" 2>&1 &
        ngircd_pid=$!
        for _ in $(seq 200); do
            grep -q "Now listening on \[127.0.0.1\]:$irc_port" "$dir/ngircd.log" && break
            kill -0 "$ngircd_pid" 2>/dev/null || { cat "$dir/ngircd.log" >&2; exit 1; }
            sleep 0.05
        done
        ;;
esac

for run in $(seq "${RUNS:-3}"); do
    port=$((24000 + run))
    target/release/charla-server --bind "127.0.0.1:$port" --cert "$dir/certs/server-cert.pem" \
        --key "$dir/certs/server-key.key" --flood-rate 0 --history 0 \
        --ready-fd 3 3>"$dir/ready" 2>"$dir/server.log" &
    server_pid=$!
    wait_ready "$dir/ready" "$server_pid" >/dev/null
    for client in $clients; do
        case $client in
            charla) "$venv/bin/python" scripts/bench-client.py --charla "${CHARLA_BIN:-target/release/charla}" \
                --port "$port" --ca "$dir/certs/server-cert.pem" ${BURST_ROOM:+--burst-room "$BURST_ROOM"} ;;
            hexchat) "$venv/bin/python" scripts/bench-client.py --client hexchat --port "$irc_port" ;;
            *) echo "$0: unknown client $client (CLIENTS: charla, hexchat)" >&2; exit 2 ;;
        esac
    done
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
done
