#!/usr/bin/env bash
# The whole chat on this machine: installs what is missing, makes a certificate on the first run,
# builds, starts the server in the background and opens the desktop client connected to it.
# Closing the window stops the server. Others join with the client (see the README).
# Extra arguments go to the server, e.g.  scripts/start.sh --bind 0.0.0.0:12345
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    -h|--help)
        sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
        echo "The first run builds the server first (under a minute) and starts it, then builds the"
        echo "window (about 6 minutes on 2 cores); meanwhile you can chat in the terminal."
        echo "The server's options: target/release/charla-server --help (once built)."
        exit 0 ;;
esac

scripts/prepare.sh
bin=${CARGO_TARGET_DIR:-target}/release
# The first build of the window takes minutes; the server's, seconds. A first run starts the server
# as soon as it is built and offers a chat in this terminal while the window builds.
first_run=; [ -x "$bin/charla" ] || first_run=1
if [ -n "$first_run" ]; then
    cargo build --release -p charla-server
else
    cargo build --release -p charla-server -p charla
fi

# Whoever hosts the chat is its operator: on the first run (no operator listed yet) this
# machine's identity goes into state/operators (which the server reads again on SIGHUP).
make_operator() {
    grep -q '^[^#[:space:]]' state/operators && return 0
    local fingerprint
    fingerprint=$("$bin/charla" --show-identity | sed -n 1p)
    [ -n "$fingerprint" ] || { echo "charla --show-identity printed no identity" >&2; return 1; }
    printf '%s  # %s, added by scripts/start.sh\n' "$fingerprint" "${USER:-the host}" >>state/operators
    echo "You are this server's operator (your identity $fingerprint is in state/operators)."
}
[ -n "$first_run" ] || make_operator

. scripts/ready.sh
ready=$(mktemp)
"$bin/charla-server" --state-dir state --operators state/operators "$@" --ready-fd 3 3>"$ready" &
server=$!
builder=
chat=
stop() {
    # The window's build and the window run in a process group of their own (setsid): all of it.
    [ -z "$builder" ] || kill -TERM -- "-$builder" 2>/dev/null || true
    [ -z "$chat" ] || kill "$chat" 2>/dev/null || true
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -f "$ready"
}
trap stop EXIT
addr=$(wait_ready "$ready" "$server") || exit 1
echo "The server listens on $addr (its log is in this terminal)."
port=${addr##*:}
echo "Clients trust certs/server-cert.pem; its fingerprint:"
openssl x509 -noout -fingerprint -sha256 -in certs/server-cert.pem

display=${DISPLAY:-}${WAYLAND_DISPLAY:-}
if [ -z "$first_run" ]; then
    if [ -z "$display" ]; then
        echo "No display: chatting in this terminal (charla --headless). Type /quit to leave."
        "$bin/charla" --headless --host localhost --port "$port" --ca certs/server-cert.pem --nick "${USER:-guest}"
    else
        "$bin/charla" --host localhost --port "$port" --ca certs/server-cert.pem
    fi
    exit 0
fi

# First run: the window builds in the background (its own process group, so that stopping this
# script stops the build), then opens; this terminal chats meanwhile, speaking the protocol by
# hand (docs/protocol.md) through openssl.
log=${CARGO_TARGET_DIR:-target}/start-build.log
build_and_open() {
    if ! cargo build --release -p charla >"$log" 2>&1; then
        echo "Building the window failed; the end of $log:" >&2
        tail -n 20 "$log" >&2
        return 1
    fi
    make_operator && kill -HUP "$server"
    if [ -n "$display" ]; then
        echo "The window is built: opening it."
        "$bin/charla" --host localhost --port "$port" --ca certs/server-cert.pem
    else
        echo "The client is built: the next scripts/start.sh chats with it in the terminal."
    fi
}
export -f build_and_open make_operator
export server port display bin log
setsid bash -c build_and_open &
builder=$!
cat <<END

Building the window now: about 6 minutes on 2 cores, only this first time (progress: $log).
Meanwhile you can chat in this terminal. Type a nickname and Enter; then every line you type is
said to everyone. /users lists who is here, /msg nick text writes privately, /quit leaves.
What others do shows as JOIN nick, MSG nick text, LEAVE nick (docs/protocol.md says it all).
END
[ -z "$display" ] || echo "The window opens by itself when it is built; closing it stops the server."
echo
# Its connection lines (the certificate checked: "verify return:1") go to a file, not here.
openssl s_client -quiet -connect "$addr" -CAfile certs/server-cert.pem -verify_return_error \
    <&0 2>"${CARGO_TARGET_DIR:-target}/start-chat.log" &
chat=$!
# With a window, closing it ends everything (the chat here too); without one, the chat here does.
wait "$builder" || true
[ -n "$display" ] || wait "$chat" || true
