#!/usr/bin/env bash
# Remakes client/link-order.txt: the functions of the window's release build that run while it
# starts, connects, joins, sits idle, sends a line and takes in 200 (those that run without a
# session bus first, then those a desktop's bus adds; each part by name). The release build's
# linker puts them first, together (client/build.rs), so that the code the window keeps running
# fills a few contiguous megabytes instead of pages spread over the whole binary
# (docs/benchmarks.md, "The code the window runs, together"). Run it again after a Rust or
# dependency update (names change: build.rs also matches them without their hash, which keeps
# most of the gain) or a large change to the window. Takes about 3 minutes (two release links
# and two runs under valgrind).
#   scripts/order-client-code.sh
# Needs valgrind (callgrind), Xvfb and xdotool, and dbus-daemon for the desktop's share
# (apt-get install valgrind xvfb xdotool dbus-daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ready.sh
for tool in valgrind callgrind_control Xvfb xdotool nm python3 paste timeout; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is needed" >&2; exit 1; }
done

# Built as the release is built, but with its code in the usual order: valgrind names only the
# functions it finds in the `.text` section (client/build.rs puts the listed ones before it).
CHARLA_UNORDERED=1 cargo build --release -p charla-server -p charla
bin=$PWD/target/release/charla
dir=$(mktemp -d)
trap 'kill "${client_pid:-}" "${server_pid:-}" "${xvfb_pid:-}" "${bus_pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
./gen-certs.sh --batch --out "$dir/certs" >/dev/null 2>&1

start_xvfb "$dir"
target/release/charla-server --bind 127.0.0.1:0 --cert "$dir/certs/server-cert.pem" \
    --key "$dir/certs/server-key.key" --history 0 --ready-fd 3 3>"$dir/ready" 2>/dev/null &
server_pid=$!
port=$(wait_ready "$dir/ready" "$server_pid")
port=${port##*:}
common=(--host 127.0.0.1 --port "$port" --ca "$dir/certs/server-cert.pem" --lang en)
"$bin" --show-identity --config-dir "$dir/window" >/dev/null

unset DBUS_SESSION_BUS_ADDRESS # run 1 is without a bus, even when run from a desktop
# The window under callgrind, which records every function that runs (dumped once joined and
# idle, and at the end); first without a session bus (as the benchmarks run it), then with one
# as on a desktop, so that its desktop-settings and accessibility code runs too. That code comes
# after the rest: without a bus, its pages are not touched.
for run in 1 2; do
    if [ "$run" = 2 ]; then
        command -v dbus-daemon >/dev/null || break
        read -r DBUS_SESSION_BUS_ADDRESS bus_pid < <(dbus-daemon --session --fork \
            --print-address=1 --print-pid=1 | paste -s -d ' ')
        export DBUS_SESSION_BUS_ADDRESS
    fi
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$dir/calls.$run" \
        "$bin" --connect --nick "order$run" --config-dir "$dir/window" "${common[@]}" \
        2>"$dir/valgrind.log" &
    client_pid=$!
    window=
    for _ in $(seq 600); do
        window=$(xdotool search --name "Charla: order$run" 2>/dev/null | head -1) && [ -n "$window" ] && break
        kill -0 "$client_pid" 2>/dev/null || { cat "$dir/valgrind.log" >&2; exit 1; }
        sleep 0.2
    done
    [ -n "$window" ] || { echo "$0: the window did not join in 120 s" >&2; exit 1; }
    sleep 3 # idle: its timers run
    timeout 60 callgrind_control -d "$client_pid" >/dev/null
    timeout 30 xdotool windowfocus --sync "$window"
    xdotool type --delay 100 "hello there"
    xdotool key Return
    for n in $(seq 200); do echo "line $n of a burst, for the code that takes lines in"; done |
        "$bin" --headless --nick "burst$run" --config-dir "$dir/burst" "${common[@]}" >/dev/null
    sleep 5 # the window takes the lines in (slowly, under valgrind)
    kill "$client_pid"
    wait "$client_pid" 2>/dev/null || true
    client_pid=
done

# Every function of the charla binary that callgrind saw run and that the binary's symbol table
# has (callgrind marks recursion levels with 'N).
shopt -s nullglob
nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u >"$dir/symbols"
python3 - "$dir/symbols" "$dir"/calls.1* -- "$dir"/calls.2* >"$dir/list" <<'PY'
import re, sys
# Functions the optimiser made local carry a number (".8668") that changes from one build to
# the next: listed without it (client/build.rs matches any).
def base(name):
    return re.sub(r"\.\d+$", "", name)
symbols = {base(name) for name in open(sys.argv[1]).read().split()}
runs, ran = [], set()
for path in sys.argv[2:] + ["--"]:
    if path == "--":
        runs.append(ran)
        ran = set()
        continue
    names, objects, fn, ob, after_call = {}, {}, None, None, False
    for line in open(path, errors="replace"):
        m = re.match(r"(c?)(fn|ob)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            table = names if m.group(2) == "fn" else objects
            if m.group(4) is not None:
                table[m.group(3)] = m.group(4)
            if not m.group(1):
                if m.group(2) == "fn":
                    fn = names[m.group(3)]
                else:
                    ob = objects[m.group(3)]
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if after_call:  # the cost of a call: the callee's, not this function's
                after_call = False
            elif ob and ob.endswith("/charla") and fn:
                ran.add(base(re.sub(r"'\d+$", "", fn)))
listed = set()
for ran in runs:
    for name in sorted((ran & symbols) - listed):
        print(name)
    listed |= ran
PY
listed=$(wc -l <"$dir/list")
if [ "$listed" -lt 1000 ]; then
    echo "$0: only $listed functions seen running (is $bin stripped?); the window's valgrind log:" >&2
    tail -n 20 "$dir/valgrind.log" >&2
    exit 1
fi
{
    echo "# The functions the window ran (scripts/order-client-code.sh, $(rustc -V))."
    cat "$dir/list"
} >client/link-order.txt
echo "client/link-order.txt: $listed functions; build the release again to use them"
echo "(cargo build --release -p charla-server -p charla)."
