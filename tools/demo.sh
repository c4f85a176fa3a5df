#!/bin/bash
# The main job on a fresh Debian 12 machine: install what is needed, build,
# and run the system as far as it exists. Today that is the protocol and
# port self-test: a host endpoint and a guest endpoint on a real UNIX socket
# port exchanging every kind of traffic (see docs/ARCHITECTURE.md).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup-debian.sh
[ -x configure ] || ./autogen.sh
mkdir -p build/demo
cd build/demo
[ -f Makefile ] || ../../configure -q
make -s -j"$(nproc)" vdp-selftest
./vdp-selftest "$@"
