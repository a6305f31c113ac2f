#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Charla needs, if missing: through apt-get as root, with sudo
# otherwise; without either it prints the exact command and fails.
#   scripts/install-packages.sh            build and run the server and the client
#   scripts/install-packages.sh --tests    also what the tests and CI use (Xvfb, xdotool,
#                                          ImageMagick, sslscan, g++, systemd-analyze,
#                                          binutils, dbus-daemon, dbus-monitor)
set -euo pipefail

case "${1:-}" in
    -h|--help)
        sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
        exit 0 ;;
    ""|--tests) ;;
    *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
esac

packages=(
    # the server and gen-certs.sh: OpenSSL's headers for the openssl crate, pkg-config to find
    # them, a C compiler, the openssl command
    openssl libssl-dev pkg-config gcc libc6-dev
    # the client (Slint): fontconfig to build; fonts and the X11 libraries winit loads at run time.
    # Slint's renderer draws outline glyphs only: Symbola has the emoji as outlines (Noto Color
    # Emoji's bitmaps stay invisible), Unifont a glyph for nearly every other character.
    libfontconfig-dev libfontconfig1 fonts-dejavu-core fonts-symbola fonts-unifont
    libx11-6 libx11-xcb1 libxcb1 libxcursor1 libxi6 libxkbcommon0 libxkbcommon-x11-0
)
if [ "${1:-}" = "--tests" ]; then
    # a real window in the tests (a virtual X server, a keyboard robot, screenshots), an
    # independent TLS scanner, C++ for libFuzzer when CI lints the fuzz crate, systemd-analyze
    # to check the service file (no running systemd needed), readelf and strip for the packages
    # and a private session bus to see the client's desktop notifications
    packages+=(xvfb xdotool imagemagick sslscan g++ systemd binutils dbus-daemon dbus-bin)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0

if [ "$(id -u)" = 0 ]; then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    echo "Missing system packages; install them as root with:" >&2
    echo "  apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "+ apt-get install ${missing[*]}"
# A fresh desktop often runs unattended upgrades first: wait for apt's lock (up to 10 minutes)
# instead of giving up, and say so.
lock=(-o DPkg::Lock::Timeout=600)
if ! "${sudo[@]}" flock -n /var/lib/dpkg/lock-frontend true 2>/dev/null; then
    echo "apt is busy (another installation, perhaps automatic updates): waiting for it..."
fi
"${sudo[@]}" apt-get "${lock[@]}" update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq "${missing[@]}"
