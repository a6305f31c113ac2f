#!/usr/bin/env bash
# Builds the Debian packages: charla-server (the server, charla-gen-certs, the systemd unit, a
# commented /etc/charla/server.conf, man pages) and charla (the desktop client, its .desktop file
# and icon). Needs only dpkg-deb, which every Debian and Ubuntu machine has.
#   scripts/build-debs.sh                      release build of both, packages in target/debian/
#   scripts/build-debs.sh --server-only        just charla-server
#   scripts/build-debs.sh --target aarch64-unknown-linux-gnu --server-only
#                                              charla-server for arm64 (a Raspberry Pi 4/5):
#                                              run scripts/cross-build-arm64.sh once first
# For the tests: --server-bin PATH / --client-bin PATH package binaries already built (nothing is
# compiled), --out DIR puts the packages elsewhere, --compression none skips xz.
set -euo pipefail
# dpkg-deb wants the package's directories 0755, whatever the caller's umask.
umask 022
script=$(realpath "${BASH_SOURCE[0]}")
usage() { sed -n '2,11p' "$script" | sed 's/^# \{0,1\}//'; }
out=target/debian
target=
server_bin=
client_bin=
server_only=
compression=xz
# Paths given are the caller's: made absolute before moving to the repository.
while [ $# -gt 0 ]; do
    case $1 in
        --out) out=$(realpath -m "$2"); shift 2 ;;
        --target) target=$2; shift 2 ;;
        --server-bin) server_bin=$(realpath -m "$2"); shift 2 ;;
        --client-bin) client_bin=$(realpath -m "$2"); shift 2 ;;
        --server-only) server_only=1; shift ;;
        --compression) compression=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$0: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
cd "$(dirname "$script")/.."

case $target in
    "") arch=$(dpkg --print-architecture); strip=strip; target_dir=target/release ;;
    aarch64-unknown-linux-gnu) arch=arm64; strip=aarch64-linux-gnu-strip
        target_dir=target/$target/release ;;
    *) echo "$0: no Debian architecture known for --target $target" >&2; exit 2 ;;
esac
if [ -n "$target" ] && [ -z "$server_only" ]; then
    echo "$0: --target builds the server only: add --server-only" >&2
    exit 2
fi

# The binaries: a release build (stripped, see Cargo.toml) unless given.
if [ -z "$server_bin" ] || { [ -z "$server_only" ] && [ -z "$client_bin" ]; }; then
    packages=(-p charla-server)
    [ -n "$server_only" ] || packages+=(-p charla)
    if [ -n "$target" ]; then
        # shellcheck source=scripts/cross-env-arm64.sh
        . scripts/cross-env-arm64.sh
        cargo build --release --target "$target" "${packages[@]}"
    else
        cargo build --release "${packages[@]}"
    fi
    server_bin=${server_bin:-$target_dir/charla-server}
    client_bin=${client_bin:-$target_dir/charla}
fi

# The version of the workspace's packages (the server's and the client's are the same).
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
date=$(git log -1 --format=%cs 2>/dev/null || date -u +%Y-%m-%d)
maintainer="Charla developers <charla@localhost>"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# A man page that is the program's --help, as written (no reflowing: it is laid out already).
man_page() { # name, section title, one-line summary, help text
    local name=$1 upper
    upper=$(tr '[:lower:]' '[:upper:]' <<<"$name")
    printf '.TH %s 1 "%s" "%s %s" "%s"\n' "$upper" "$date" "$name" "$version" "$2"
    printf '.SH NAME\n%s \\- %s\n.SH DESCRIPTION\n.nf\n' "$name" "$3"
    # Backslashes escaped; a line starting with . or ' must not be read as a request.
    sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/" <<<"$4"
    printf '.fi\n'
}

install_file() { # mode, source, destination
    install -D -m "$1" "$2" "$3"
}

# The binary, without symbols or debug info whatever profile built it.
install_binary() { # source, destination
    install -D -m 0755 "$1" "$2"
    "$strip" --strip-unneeded "$2"
}

copyright() { # destination
    mkdir -p "$(dirname "$1")"
    cat > "$1" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: charla
Source: the Charla repository

Files: *
Copyright: the Charla developers
License: MIT or Apache-2.0
 Either license, at your choice.
EOF
}

finish() { # package directory, package name
    local dir=$1 name=$2
    # Installed-Size, in KiB, of what the package puts on the disk.
    local size
    size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
    sed -i "s/^Installed-Size: .*/Installed-Size: $size/" "$dir/DEBIAN/control"
    dpkg-deb --root-owner-group -Z"$compression" --build "$dir" \
        "$out/${name}_${version}_${arch}.deb" >/dev/null
    echo "$out/${name}_${version}_${arch}.deb"
}

# ---- charla-server
srv=$work/charla-server
install_binary "$server_bin" "$srv/usr/bin/charla-server"
install_file 0755 gen-certs.sh "$srv/usr/bin/charla-gen-certs"
install_file 0644 packaging/charla-server.service "$srv/usr/lib/systemd/system/charla-server.service"
install_file 0644 packaging/server.conf "$srv/etc/charla/server.conf"
install_file 0644 packaging/operators "$srv/etc/charla/operators"
install_file 0644 docs/protocol.md "$srv/usr/share/doc/charla-server/protocol.md"
install_file 0644 docs/security.md "$srv/usr/share/doc/charla-server/security.md"
copyright "$srv/usr/share/doc/charla-server/copyright"
mkdir -p "$srv/usr/share/man/man1"
# The help of the binary being packaged when it runs here (not when cross-built): the same text.
# (a cross-built one runs under qemu-user when it is installed; else the same text from a build
# for this machine).
if [ -z "$target" ]; then
    server_help=$("$server_bin" --help)
elif command -v qemu-aarch64 >/dev/null; then
    server_help=$(scripts/run-arm64.sh --help)
else
    server_help=$(cargo run -q --release -p charla-server -- --help)
fi
man_page charla-server "Charla" "a one-thread TLS chat server" "$server_help" |
    gzip -9n > "$srv/usr/share/man/man1/charla-server.1.gz"
man_page charla-gen-certs "Charla" "make a self-signed TLS certificate for charla-server" \
    "$(./gen-certs.sh --help | sed 's/gen-certs\.sh/charla-gen-certs/g')" |
    gzip -9n > "$srv/usr/share/man/man1/charla-gen-certs.1.gz"
mkdir -p "$srv/DEBIAN"
cat > "$srv/DEBIAN/control" <<EOF
Package: charla-server
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: 0
Depends: libc6, libssl3 | libssl3t64, openssl
Section: net
Priority: optional
Description: secure multi-user chat server (TLS, one thread)
 Charla's server: one thread and one event loop over every TLS connection, a
 bounded queue per client, flood control, registered nicknames tied to the
 client's key, operators who can kick, ban and mute. Runs as a sandboxed
 systemd service with its settings in /etc/charla/server.conf.
EOF
printf '/etc/charla/server.conf\n/etc/charla/operators\n' > "$srv/DEBIAN/conffiles"
cat > "$srv/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        # An upgrade: the running server (if any) becomes the new one; clients resume.
        if [ -n "$2" ]; then
            systemctl try-restart charla-server.service || true
        fi
    fi
    if [ ! -e /etc/charla/server-cert.pem ]; then
        echo "charla-server: no certificate yet. Make one, then start the service:"
        echo "  sudo charla-gen-certs --batch --out /etc/charla --cn chat.example.org --san DNS:chat.example.org"
        echo "  sudo systemctl enable --now charla-server"
    fi
fi
EOF
cat > "$srv/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now charla-server.service || true
fi
EOF
cat > "$srv/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
# Purging removes the server's state (registered nicknames, bans, history); the certificate and
# key in /etc/charla were made by the administrator and stay.
if [ "$1" = purge ]; then
    rm -rf /var/lib/private/charla /var/lib/charla
fi
EOF
chmod 0755 "$srv/DEBIAN/postinst" "$srv/DEBIAN/prerm" "$srv/DEBIAN/postrm"
finish "$srv" charla-server

[ -z "$server_only" ] || exit 0

# ---- charla
cli=$work/charla
install_binary "$client_bin" "$cli/usr/bin/charla"
install_file 0644 packaging/charla.desktop "$cli/usr/share/applications/charla.desktop"
install_file 0644 packaging/charla.svg "$cli/usr/share/icons/hicolor/scalable/apps/charla.svg"
copyright "$cli/usr/share/doc/charla/copyright"
mkdir -p "$cli/usr/share/man/man1"
man_page charla "Charla" "the Charla chat client (a window, or the terminal with --headless)" \
    "$("$client_bin" --help)" | gzip -9n > "$cli/usr/share/man/man1/charla.1.gz"
mkdir -p "$cli/DEBIAN"
# The libraries winit loads at run time (X11, keyboard) are not seen by the linker: named here, as
# scripts/install-packages.sh does. Slint draws outline glyphs only: Symbola has the emoji, Unifont
# nearly every other character.
cat > "$cli/DEBIAN/control" <<EOF
Package: charla
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: 0
Depends: libc6, libgcc-s1, libssl3 | libssl3t64, libfontconfig1, libfreetype6, libx11-6, libx11-xcb1, libxcb1, libxcursor1, libxi6, libxkbcommon0, libxkbcommon-x11-0, fonts-dejavu-core
Recommends: fonts-symbola, fonts-unifont, charla-server
Section: net
Priority: optional
Description: secure multi-user chat client
 The Charla desktop client: checks the server's certificate (or asks once, as
 SSH does), keeps your identity in a key of its own, reconnects and resumes
 on its own, and never blocks while the network is slow. Also a terminal
 client (charla --headless).
EOF
finish "$cli" charla
