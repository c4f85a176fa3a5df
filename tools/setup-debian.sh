#!/bin/bash
# Install what building and testing vdagent needs on Debian 12.
# Runs apt-get update first (a fresh machine has no package lists).
set -euo pipefail

PACKAGES=(
    # build
    autoconf automake make gcc pkg-config python3
    # libraries
    libglib2.0-dev libspice-protocol-dev libsystemd-dev libjson-c-dev
    libx11-dev libxfixes-dev libxrandr-dev libxtst-dev
    # tests
    libcmocka-dev
    # libFuzzer target
    clang libclang-rt-14-dev
    # integration tests: X server with RandR (dummy driver), X clients,
    # and Debian's spice-vdagent 0.22.1 as the reference peer
    xserver-xorg-core xserver-xorg-video-dummy xvfb x11-xserver-utils x11-apps x11-utils xcvt xclip xdotool strace
    spice-vdagent dbus-daemon
    # logind stand-in for the daemon's session tests (run with /usr/bin/python3)
    python3-dbusmock
    # interop tests (tests/interop): a SPICE server built on Debian's
    # spice-server, a spice-gtk client through GObject introspection
    # (both run with /usr/bin/python3)
    libspice-server-dev gir1.2-spiceclientglib-2.0 python3-gi
    # packaging checks (desktop-file-validate; systemd-analyze comes with systemd)
    desktop-file-utils
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
