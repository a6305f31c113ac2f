# Sourced by the scripts that start charla-server in the background: they start it with
# '--ready-fd 3 3>"$file"', and wait_ready prints the address it listens on once it says so (the
# readiness line, docs/protocol.md), or fails with its reason if it cannot start or stops first.
wait_ready() { # file pid
    local file=$1 pid=$2 word rest
    for _ in $(seq 600); do
        # A whole line (the server writes it at once, then closes the descriptor).
        if [ -s "$file" ] && [ -z "$(tail -c1 "$file")" ]; then
            read -r word rest <"$file"
            case $word in
                listening) echo "$rest"; return 0 ;;
                error) echo "charla-server could not start: ${rest#* }" >&2; return 1 ;;
            esac
        fi
        kill -0 "$pid" 2>/dev/null || { echo "charla-server stopped" >&2; return 1; }
        sleep 0.05
    done
    echo "charla-server did not start in 30 s" >&2
    return 1
}

# An X server of our own for the scripts that drive a window (bench-client.sh,
# order-client-code.sh): starts Xvfb, sets xvfb_pid and exports DISPLAY once it is ready
# (-displayfd says which display it took then).
start_xvfb() { # dir
    Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$1/display" 2>/dev/null &
    xvfb_pid=$!
    for _ in $(seq 100); do [ -s "$1/display" ] && break; sleep 0.05; done
    [ -s "$1/display" ] || { echo "Xvfb did not start in 5 s" >&2; return 1; }
    export DISPLAY=":$(cat "$1/display")"
}
