#!/bin/bash
# The main job on a fresh Debian 12 machine: install what is needed, build,
# and run the whole system in a sandbox (tools/sandbox-tour.sh): Xorg with
# the dummy driver, spice-vdagentd on a UNIX socket port, spice-vdagent, and
# vdagentctl as the host driving them through monitors, clipboard, a file
# and the mouse, ending with a screenshot of the guest screen
# (build/demo/guest-screen.png).
#
#   tools/demo.sh                  the tour with our binaries
#   tools/demo.sh --flavour debian the same tour with Debian's spice-vdagent 0.22.1
#   tools/demo.sh --selftest       the protocol/port self-test instead (no X)
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup-debian.sh
[ -x configure ] || ./autogen.sh
mkdir -p build/demo
cd build/demo
[ -f Makefile ] || ../../configure -q
make -s -j"$(nproc)"
if [ "${1:-}" = "--selftest" ]; then
    shift
    exec ./vdp-selftest "$@"
fi
top_srcdir=$(cd ../.. && pwd) top_builddir=. exec ../../tools/sandbox-tour.sh "$@"
