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
        echo "The server's options: target/release/charla-server --help (once built)."
        exit 0 ;;
esac

scripts/prepare.sh
cargo build --release -p charla-server -p charla
bin=${CARGO_TARGET_DIR:-target}/release

# Whoever hosts the chat is its operator: on the first run (no operator listed yet) this
# machine's identity goes into state/operators.
if ! grep -q '^[^#[:space:]]' state/operators; then
    fingerprint=$("$bin/charla" --show-identity | sed -n 1p)
    [ -n "$fingerprint" ] || { echo "charla --show-identity printed no identity" >&2; exit 1; }
    printf '%s  # %s, added by scripts/start.sh\n' "$fingerprint" "${USER:-the host}" >>state/operators
    echo "You are this server's operator (your identity $fingerprint is in state/operators)."
fi

. scripts/ready.sh
ready=$(mktemp)
"$bin/charla-server" --state-dir state --operators state/operators "$@" --ready-fd 3 3>"$ready" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$ready"' EXIT
addr=$(wait_ready "$ready" "$server") || exit 1
echo "The server listens on $addr (its log is in this terminal)."
port=${addr##*:}
echo "Clients trust certs/server-cert.pem; its fingerprint:"
openssl x509 -noout -fingerprint -sha256 -in certs/server-cert.pem

if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    echo "No display: chatting in this terminal (charla --headless). Type /quit to leave."
    "$bin/charla" --headless --host localhost --port "$port" --ca certs/server-cert.pem --nick "${USER:-guest}"
else
    "$bin/charla" --host localhost --port "$port" --ca certs/server-cert.pem
fi
