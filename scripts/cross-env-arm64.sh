# Sourced by scripts/cross-build-arm64.sh and scripts/build-debs.sh: how cargo builds for arm64
# (aarch64-unknown-linux-gnu, a Raspberry Pi 4/5 with a 64-bit system) on an x86-64 Debian machine:
# Debian's cross linker, and the openssl crate finding Debian's arm64 OpenSSL through pkg-config.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=/
