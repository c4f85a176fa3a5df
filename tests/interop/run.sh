#!/bin/bash
# run.sh FLAVOUR [RESULTS] - the interop scenarios for one guest flavour.
#
#   FLAVOUR   ours (build dir's spice-vdagentd + spice-vdagent) or debian
#             (Debian's spice-vdagent 0.22.1 from /usr)
#   RESULTS   where the client's JSON lines go (default: FLAVOUR.jsonl in
#             the current directory)
#
# Starts Xorg with the dummy driver, spice-host (Debian's libspice-server
# on 127.0.0.1, the vdagent char device bridged to a UNIX socket), the
# guest daemon with that socket as its virtio port and the session agent
# (tests/integration/agent-lib.sh), then the spice-gtk client
# (tests/interop/client.py, /usr/bin/python3) which runs every scenario and
# checks its effect in the guest X session.
#
# Our daemon gets no uinput device, so the mouse goes through the agent's
# XTest and the client reads the X pointer; Debian's daemon writes
# struct input_event records to a FIFO, decoded into a text file the
# client reads.
#
# Exit status: 0 when every scenario passed, 1 when one failed, 77 when a
# requirement is missing (not root, no Xorg dummy driver, no spice-gtk
# introspection data, spice-host not built). Bounded: the client gets
# INTEROP_CLIENT_TIMEOUT seconds (default 240); everything started here is
# stopped on exit. INTEROP_KEEP_TMP=1 keeps the temp dir; INTEROP_SHOW_LOGS=0
# leaves out the logs after a failure; INTEROP_HOST_ARGS adds spice-host
# options (e.g. --qxl-monitors-config); INTEROP_SCENARIOS=a,b runs only those.
# shellcheck disable=SC2016  # the single-quoted strings are eval'ed later
set -u
export PATH="$PATH:/usr/sbin:/sbin"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=.}"
FLAVOUR=${1:-ours}
RESULTS=${2:-$PWD/$FLAVOUR.jsonl}
here=$(cd "$top_srcdir/tests/interop" && pwd) || exit 99
integ=$(cd "$top_srcdir/tests/integration" && pwd) || exit 99
# shellcheck source=../integration/lib.sh
. "$integ/lib.sh"
# shellcheck source=../integration/agent-lib.sh
. "$integ/agent-lib.sh"

PY=/usr/bin/python3
CLIENT_TIMEOUT=${INTEROP_CLIENT_TIMEOUT:-240}
HOST_BIN=$(cd "$top_builddir" && pwd)/tests/interop/spice-host
[ "${INTEROP_KEEP_TMP:-0}" = 1 ] && IT_KEEP_TMP=1

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: must run as root (Xorg with the dummy driver, spice-vdagentd)"
    exit 77
fi
it_require_cmds Xorg xrandr xclip xdotool timeout sha256sum mkfifo
if ! it_find_dummy_driver >/dev/null; then
    echo "SKIP: the Xorg dummy video driver (xserver-xorg-video-dummy) is not installed"
    exit 77
fi
if ! "$PY" -c 'import gi; gi.require_version("SpiceClientGLib", "2.0"); from gi.repository import SpiceClientGLib' 2>/dev/null; then
    echo "SKIP: $PY cannot import SpiceClientGLib (gir1.2-spiceclientglib-2.0, python3-gi)"
    exit 77
fi
if [ ! -x "$HOST_BIN" ]; then
    echo "SKIP: $HOST_BIN is not built (libspice-server-dev)"
    exit 77
fi

case $FLAVOUR in
    ours) AG_NO_UINPUT=1 ;;
    debian) AG_NO_UINPUT=0 ;;
    *) echo "usage: run.sh ours|debian [RESULTS]"; exit 2 ;;
esac
AG_FLAVOUR=$FLAVOUR
export AG_NO_UINPUT AG_FLAVOUR

it_init "interop-$FLAVOUR"
T=$IT_TMP
: >"$RESULTS"

setup_fail() {
    echo "FAIL setup: $*"
    # shellcheck disable=SC1003  # tr deletes quotes and backslashes
    printf '{"scenario": "setup", "result": "FAIL", "reason": "%s", "seconds": 0}\n' \
        "$(printf '%s' "$*" | tr -d '"\\' | tr '\n' ' ')" >>"$RESULTS"
    ag_show_logs
    it_show_log spice-host "$T/spice-host.log" 40
    exit 1
}

ag_x_start xorg || setup_fail "Xorg with the dummy driver did not start"
it_wait_for 10 eval 'it_xrandr_active "$IT_DISPLAY" | grep -q .' ||
    setup_fail "xrandr on $IT_DISPLAY shows no active output"

PORT_SOCK=$T/virtio-port.sock
# shellcheck disable=SC2086  # INTEROP_HOST_ARGS is a word list
it_spawn spice-host "$HOST_BIN" ${INTEROP_HOST_ARGS:-} --port 0 --port-file "$T/spice-port" --agent-socket "$PORT_SOCK"
HOST_PID=$IT_LAST_PID
it_wait_for 10 test -s "$T/spice-port" -a -S "$PORT_SOCK" ||
    setup_fail "spice-host did not start listening within 10 s"
SPICE_PORT=$(head -n 1 "$T/spice-port")

ag_guest_start "$PORT_SOCK" || setup_fail "the $FLAVOUR guest daemon/agent did not start"

mouse_args=(--mouse xquery)
[ "$FLAVOUR" = debian ] && mouse_args=(--mouse "fifo:$AG_EVENTS")

mkdir -p "$T/client"
echo "interop ($FLAVOUR): spice-host on 127.0.0.1:$SPICE_PORT, X $IT_DISPLAY, save dir $AG_SAVE_DIR"
timeout -k 5 "$CLIENT_TIMEOUT" "$PY" "$here/client.py" \
    --port "$SPICE_PORT" --display "$IT_DISPLAY" --save-dir "$AG_SAVE_DIR" \
    --flavour "$FLAVOUR" --tmp "$T/client" --results "$RESULTS" --host-pid "$HOST_PID" \
    --deadline $((CLIENT_TIMEOUT - 15)) "${mouse_args[@]}" ${INTEROP_SCENARIOS:+--only "$INTEROP_SCENARIOS"} \
    2>"$T/client.err"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "FAIL: the client did not finish within $CLIENT_TIMEOUT s (killed)"
    printf '{"scenario": "timeout", "result": "FAIL", "reason": "client killed after %s s", "seconds": %s}\n' \
        "$CLIENT_TIMEOUT" "$CLIENT_TIMEOUT" >>"$RESULTS"
fi

# spice-host must end cleanly on SIGTERM (under --enable-sanitizers a leak
# or an error report makes its status non-zero)
if ! it_alive "$HOST_PID"; then
    echo "FAIL: spice-host exited during the run"
    rc=1
else
    kill -TERM "$HOST_PID"
    it_wait_for 10 eval '! it_alive "$HOST_PID"'
    if it_alive "$HOST_PID"; then
        echo "FAIL: spice-host still runs 10 s after SIGTERM"
        rc=1
    else
        wait "$HOST_PID"
        hrc=$?
        if [ "$hrc" -ne 0 ]; then
            echo "FAIL: spice-host ended with status $hrc on SIGTERM"
            printf '{"scenario": "host-stop", "result": "FAIL", "reason": "spice-host status %s on SIGTERM", "seconds": 0}\n' \
                "$hrc" >>"$RESULTS"
            rc=1
        fi
    fi
fi
if [ "$rc" -ne 0 ] && [ "${INTEROP_SHOW_LOGS:-1}" = 1 ]; then
    echo
    echo "=== logs ($FLAVOUR)"
    ag_show_logs
    it_show_log spice-host "$T/spice-host.log" 40
    it_show_log "client stderr (spice-gtk)" "$T/client.err" 40
    [ -n "${AG_EVENTS:-}" ] && it_show_log "uinput events" "$AG_EVENTS" 10
fi
[ "$rc" -ne 0 ] && exit 1
exit 0
