#!/usr/bin/env bash
# gen-certs.sh - create a self-signed TLS key + certificate for the Charla server.
#
# Scripts the four openssl steps of the tutorial (tutorial-es.md):
#   1. openssl genpkey -algorithm RSA -out server-key.key -aes256
#   2. openssl req -new -key server-key.key -out server.csr
#   3. openssl x509 -req -days 365 -in server.csr -signkey server-key.key -out server-cert.pem
#   4. openssl rsa -in server-key.key -out server-key.key
# plus what modern TLS clients need: subjectAltName, CA:FALSE, serverAuth, SHA-256.
set -euo pipefail

prog=${0##*/}
default_san="DNS:localhost,IP:127.0.0.1,IP:::1"

usage() {
    cat <<EOF
Usage: $prog [options]

Creates in the output directory:
  server-key.key    private key (mode 600; passphrase removed unless --keep-passphrase)
  server.csr        certificate signing request
  server-cert.pem   self-signed certificate, valid for the names in its SAN list
The last line printed is the certificate's SHA-256 fingerprint, the same value
a client shows when it first connects (trust on first use).

By default the script is interactive, like the tutorial: openssl asks for the
key passphrase (several times) and for the subject fields (Country, ..., Common Name).

Options:
  --batch             Never prompt. The passphrase comes from \$CHARLA_KEY_PASS or,
                      if that is unset/empty, is a random throwaway one that lives only
                      in an environment variable of this script's openssl calls.
                      The subject is /CN=<cn>.
  --out DIR           Output directory (default: certs, relative to the current
                      directory; created if missing).
  --days N            Certificate validity in days, positive integer, max 999999 (default: 365).
  --key-type TYPE     rsa (RSA-2048, the tutorial's choice; the default) or ec (ECDSA
                      on curve P-256: the same security; the server signs each
                      handshake about 14 times faster, so its whole handshake costs
                      about half as much, see docs/benchmarks.md).
  --cn NAME           Common Name for the subject in --batch mode (default: localhost).
                      In interactive mode you type the Common Name at the prompt.
                      In both modes, if NAME is a host name or IP address it is also
                      added to the SAN list, since TLS clients ignore the CN.
  --san LIST          Comma-separated extra subjectAltName entries, ADDED to the
                      default $default_san
                      e.g. --san DNS:chat.example.org,IP:192.0.2.7
                      An entry without a prefix is taken as IP: if it is an IP
                      address, otherwise as DNS:. Only DNS: and IP: are supported.
  --keep-passphrase   Skip step 4: the key stays encrypted. The server then needs the
                      passphrase via CHARLA_KEY_PASS or --key-pass-file. With --batch
                      this requires CHARLA_KEY_PASS to be set (a random passphrase
                      would be lost).
  --force             Replace an existing server-key.key / server-cert.pem in DIR.
                      (Files are only replaced once every step has succeeded.)
  -h, --help          Show this help.

Examples:
  $prog                                   # interactive, like the tutorial
  $prog --batch --san DNS:chat.example.org --days 90
  $prog --batch --key-type ec             # ECDSA P-256 key: cheaper handshakes
  CHARLA_KEY_PASS=secret $prog --batch --keep-passphrase --out /etc/charla
EOF
}

die() { printf '%s: error: %s\n' "$prog" "$1" >&2; exit "${2:-1}"; }
usage_error() {
    printf '%s: %s\nTry '\''%s --help'\'' for more information.\n' "$prog" "$1" "$prog" >&2
    exit 2
}

# Print a command the way a learner would type it (quoting only where needed).
# Secrets never appear here: openssl reads them via env:VAR.
show() {
    local line="" a
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then line+=" $a"; else line+=" $(printf '%q' "$a")"; fi
    done
    printf '+%s\n' "$line"
}

step() {  # step "<n>/4 <description>" cmd args...
    local label=$1; shift
    printf '\n# Step %s\n' "$label"
    show "$@"
    "$@" || die "step ${label%%:*} (${label#*: }) failed; existing files in $out_dir were left untouched"
}

is_ipv4() {
    local re='^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$' o
    local IFS=.
    [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || return 1
    for o in $1; do [[ $o =~ $re ]] || return 1; done
}
is_ipv6() { [[ $1 == *:* && $1 =~ ^[0-9A-Fa-f:.]+$ && $1 != *:::* ]]; }
is_ip() { is_ipv4 "$1" || is_ipv6 "$1"; }
is_dns() {
    local label='[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?'
    [[ ${#1} -le 253 && $1 =~ ^(\*\.)?$label(\.$label)*$ ]]
}

san_list=()
san_add() {  # append a normalised entry unless already present
    local e
    for e in "${san_list[@]}"; do
        if [[ $e == "$1" ]]; then return 0; fi
    done
    san_list+=("$1")
}
san_parse() {  # san_parse <entry> : validate one user entry and add it
    local entry=$1 type value
    case $entry in
        [Dd][Nn][Ss]:*) type=DNS value=${entry#*:} ;;
        [Ii][Pp]:*)     type=IP  value=${entry#*:} ;;
        *)
            if is_ip "$entry"; then type=IP value=$entry
            elif [[ $entry == *:* ]]; then
                usage_error "--san: unsupported entry '$entry' (only DNS:name and IP:address are supported)"
            else type=DNS value=$entry
            fi ;;
    esac
    if [[ $type == IP ]]; then
        is_ip "$value" || usage_error "--san: '$value' is not a valid IPv4/IPv6 address (in '$entry')"
    else
        is_dns "$value" || usage_error "--san: '$value' is not a valid DNS name (in '$entry')"
    fi
    san_add "$type:$value"
}

# ---------------------------------------------------------------- arguments
batch=0 keep_pass=0 force=0
out_dir=certs days=365 cn=localhost extra_san="" key_type=rsa

need_value() {  # an option's value must exist and must not look like another option
    [[ $# -ge 2 && -n $2 && $2 != --* ]] || usage_error "option '$1' requires a value"
}
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --batch) batch=1 ;;
        --keep-passphrase) keep_pass=1 ;;
        --force) force=1 ;;
        --out|--days|--cn|--san|--key-type)
            need_value "$@"
            case $1 in
                --out) out_dir=$2 ;; --days) days=$2 ;; --cn) cn=$2 ;; --san) extra_san=$2 ;;
                --key-type) key_type=$2 ;;
            esac
            shift ;;
        --out=*|--days=*|--cn=*|--san=*|--key-type=*)
            opt=${1%%=*} val=${1#*=}
            [[ -n $val ]] || usage_error "option '$opt' requires a value"
            case $opt in
                --out) out_dir=$val ;; --days) days=$val ;; --cn) cn=$val ;; --san) extra_san=$val ;;
                --key-type) key_type=$val ;;
            esac ;;
        *) usage_error "unknown option '$1'" ;;
    esac
    shift
done

if ! [[ $days =~ ^[0-9]{1,6}$ ]] || (( 10#$days == 0 )); then
    usage_error "--days must be a positive integer (at most 999999), got '$days'"
fi
days=$((10#$days))   # drop leading zeros
case $key_type in
    rsa) genpkey_args=(-algorithm RSA) key_name="RSA" key_usage="digitalSignature, keyEncipherment" ;;
    ec) genpkey_args=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256) key_name="ECDSA P-256"
        key_usage="digitalSignature" ;;
    *) usage_error "--key-type must be rsa or ec, got '$key_type'" ;;
esac

# Build the SAN list: defaults, then the CN (clients match names only against
# the SAN, never the CN), then --san entries.
IFS=, read -r -a defaults <<<"$default_san"
for e in "${defaults[@]}"; do san_add "$e"; done
if is_ip "$cn"; then san_add "IP:$cn"; elif is_dns "$cn"; then san_add "DNS:$cn"; fi
if [[ -n $extra_san ]]; then
    IFS=, read -r -a extras <<<"$extra_san"
    for e in "${extras[@]}"; do
        e=${e//[[:space:]]/}
        if [[ -n $e ]]; then san_parse "$e"; fi
    done
fi
san=$(IFS=,; printf '%s' "${san_list[*]}")

# The passphrase is passed to openssl as env:VAR so it never shows up in argv
# (visible in ps) or in the echoed commands.
pass_var=""
if (( batch )); then
    if [[ -n ${CHARLA_KEY_PASS:-} ]]; then
        pass_var=CHARLA_KEY_PASS
        export CHARLA_KEY_PASS
    elif (( keep_pass )); then
        usage_error "--keep-passphrase with --batch needs CHARLA_KEY_PASS set; otherwise the random passphrase would be lost and the key unusable"
    fi
fi

command -v openssl >/dev/null 2>&1 \
    || die "openssl not found: install it with: sudo apt-get install openssl"

# ---------------------------------------------------------------- safety checks
[[ ! -e $out_dir || -d $out_dir ]] || die "'$out_dir' exists and is not a directory"
if (( ! force )); then
    for f in server-key.key server-cert.pem; do
        if [[ -e $out_dir/$f ]]; then
            die "$out_dir/$f already exists; refusing to overwrite it (use --force to replace it)"
        fi
    done
fi

mkdir -p -- "$out_dir" || die "cannot create directory '$out_dir'"
out_abs=$(cd -- "$out_dir" && pwd -P)

# Everything below is created private; the key must never be readable by others,
# not even for a moment.
umask 077

# Work in a staging dir inside the out dir (same filesystem, so the final mv is
# an atomic rename): a failed or interrupted run leaves existing files intact.
work=$(mktemp -d "$out_abs/.gen-certs.XXXXXX") || die "cannot write to '$out_dir'"
cleanup() { rm -rf -- "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cd -- "$work"   # so the echoed commands use the tutorial's plain file names

if (( batch )) && [[ -z $pass_var ]]; then
    pass_var=CHARLA_GENCERTS_THROWAWAY_PASS
    printf '# --batch without CHARLA_KEY_PASS: using a random throwaway passphrase\n'
    show openssl rand -hex 32
    CHARLA_GENCERTS_THROWAWAY_PASS=$(openssl rand -hex 32) || die "openssl rand failed"
    export CHARLA_GENCERTS_THROWAWAY_PASS
fi
if (( batch )); then
    pass_out=(-pass "env:$pass_var") pass_in=(-passin "env:$pass_var") subj=(-subj "/CN=$(
        # escape the characters -subj treats specially
        s=${cn//\\/\\\\}; s=${s//\//\\/}; s=${s//+/\\+}; printf '%s' "$s")")
else
    pass_out=() pass_in=() subj=()
    [[ -t 0 ]] || printf '%s: warning: stdin is not a terminal; use --batch for unattended runs\n' "$prog" >&2
fi

# OpenSSL 3.0's `x509 -req` has no -addext, so the extensions go in a config file.
cat >v3-server.cnf <<EOF
[charla_server]
basicConstraints     = critical, CA:FALSE
keyUsage             = critical, $key_usage
extendedKeyUsage     = serverAuth
subjectKeyIdentifier = hash
subjectAltName       = $san
EOF

# ---------------------------------------------------------------- the four steps
step "1/4: generate a passphrase-protected $key_name private key" \
    openssl genpkey "${genpkey_args[@]}" -out server-key.key -aes256 -quiet "${pass_out[@]}"

(( batch )) || printf '# openssl will ask for the subject; Common Name is the server host name (e.g. localhost), "." leaves a field empty.\n'
step "2/4: create the certificate signing request (CSR)" \
    openssl req -new -key server-key.key -out server.csr -sha256 "${pass_in[@]}" "${subj[@]}" \
    -addext "subjectAltName=$san"

printf '\n# Extensions for step 3 (file v3-server.cnf):\n'
sed 's/^/#   /' v3-server.cnf
step "3/4: self-sign the certificate" \
    openssl x509 -req -days "$days" -in server.csr -signkey server-key.key -out server-cert.pem \
    -sha256 -extfile v3-server.cnf -extensions charla_server "${pass_in[@]}"

if (( keep_pass )); then
    printf '\n# Step 4/4 skipped (--keep-passphrase): the key stays encrypted.\n'
else
    # Write to a new file (created 0600 under the umask) and rename it over the
    # original, so there is never a half-written or world-readable key.
    # The tutorial's `openssl rsa` reads only RSA keys; `openssl pkey` does the same for any.
    if [[ $key_type == rsa ]]; then strip=(openssl rsa); else strip=(openssl pkey); fi
    step "4/4: remove the passphrase from the key" \
        "${strip[@]}" -in server-key.key -out server-key.key.new "${pass_in[@]}"
    show mv server-key.key.new server-key.key
    mv -f server-key.key.new server-key.key
fi

chmod 600 server-key.key
chmod 644 server.csr server-cert.pem

# Everything succeeded: only now replace what was in the out dir.
for f in server-key.key server.csr server-cert.pem; do
    mv -f -- "$f" "$out_abs/$f" || die "could not move $f into $out_dir"
done
cd -- "$out_abs"
chmod 600 server-key.key   # belt and braces

# ---------------------------------------------------------------- summary
enddate=$(openssl x509 -noout -enddate -in server-cert.pem) || die "cannot read server-cert.pem"
key_state="passphrase removed"
if (( keep_pass )); then key_state="ENCRYPTED"; fi
printf '\nDone. Files written to %s:\n' "$out_dir"
printf '  server-key.key    %s private key, mode 600, %s - keep it secret\n' "$key_name" "$key_state"
printf '  server.csr        certificate signing request\n'
printf '  server-cert.pem   self-signed certificate\n'
printf 'Valid for %s days, until %s\n' "$days" "${enddate#notAfter=}"
printf 'Names (subjectAltName): %s\n' "${san//,/, }"
if (( keep_pass )); then
    printf 'Note: the key is still encrypted; the server needs the passphrase via\n'
    printf '      CHARLA_KEY_PASS or --key-pass-file.\n'
fi
printf 'Clients will show this fingerprint on first connection (trust on first use):\n'
show openssl x509 -noout -fingerprint -sha256 -in server-cert.pem
fp=$(openssl x509 -noout -fingerprint -sha256 -in server-cert.pem) || die "cannot compute the fingerprint"
printf '%s\n' "$fp"
