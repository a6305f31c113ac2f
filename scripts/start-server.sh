#!/usr/bin/env bash
# Sets up what the server needs on a Debian/Ubuntu machine with Rust, then runs it.
# Certificates are made once (certs/); later runs reuse them. Registered nicknames and bans are
# kept in state/, operators listed in state/operators. Extra arguments go to the server,
# e.g.  scripts/start-server.sh --bind 0.0.0.0:12345
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prepare.sh
echo "Clients trust certs/server-cert.pem; its fingerprint:"
openssl x509 -noout -fingerprint -sha256 -in certs/server-cert.pem
exec cargo run --release -p charla-server -- --state-dir state --operators state/operators "$@"
