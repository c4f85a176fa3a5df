# shellcheck shell=bash
# shellcheck disable=SC2034  # IT_* results are read by the sourcing script
# lib.sh - helpers for the integration tests (bash; source it).
#
#   it_init NAME              unique temp dir in $IT_TMP, cleanup trap
#   it_spawn NAME CMD...      start CMD in the background, output in
#                             $IT_TMP/NAME.log; killed by the cleanup
#   it_wait_for SECS CMD...   poll CMD every 0.1 s until it succeeds
#   it_budget SECS            SECS, or less so as to end by $IT_DEADLINE
#   it_xorg_start CONF        Xorg with the dummy driver on a free display;
#                             sets IT_DISPLAY (":N") and IT_XORG_LOG
#   it_session_bus            a private D-Bus session bus (no service
#                             activation); sets IT_BUS_ADDRESS
#   it_event_reader FIFO OUT  decode raw struct input_event records from
#                             FIFO into text lines ("EV_ABS ABS_X 100")
#   it_require_cmds CMD...    exit 77 naming what is missing
#
# Everything started with it_spawn (and Xorg) is stopped by the EXIT trap,
# one by one, last started first: TERM, up to 3 s of grace, then KILL. The
# temp dir is removed unless IT_KEEP_TMP=1.

IT_PIDS=()
IT_NAMES=()
IT_TMP=
IT_DISPLAY=   # ":N" once it_xorg_start has run
IT_XORG_LOG=
IT_BUS_ADDRESS=
IT_DEADLINE=  # optional: $SECONDS by which every wait must have ended

it_log() { printf '%s\n' "$*" >&2; }

it_init() {
    IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 99
    trap it_cleanup EXIT
    trap 'exit 1' INT TERM HUP
}

it_cleanup() {
    local i pid t rc
    for ((i = ${#IT_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${IT_PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; continue; }
        for ((t = 0; t < 30; t++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            it_log "cleanup: ${IT_NAMES[i]} (pid $pid) ignored SIGTERM, killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
        rc=$?
        # 143 = ended by our SIGTERM; anything above 128 else is a crash
        if [ "$rc" -gt 128 ] && [ "$rc" -ne 143 ] && [ "$rc" -ne 137 ]; then
            it_log "cleanup: ${IT_NAMES[i]} (pid $pid) died of signal $((rc - 128)) when stopped"
        fi
    done
    IT_PIDS=()
    IT_NAMES=()
    if [ -n "$IT_TMP" ] && [ "${IT_KEEP_TMP:-0}" != 1 ]; then
        rm -rf "$IT_TMP"
    elif [ -n "$IT_TMP" ]; then
        it_log "kept $IT_TMP"
    fi
}

# Remember a process started elsewhere for the cleanup.
it_track() {  # it_track NAME PID
    IT_NAMES+=("$1")
    IT_PIDS+=("$2")
}

# it_spawn NAME CMD...: run CMD in the background with stdin from
# /dev/null and stdout+stderr in $IT_TMP/NAME.log; IT_LAST_PID is its pid.
it_spawn() {
    local name=$1; shift
    "$@" </dev/null >"$IT_TMP/$name.log" 2>&1 &
    IT_LAST_PID=$!
    it_track "$name" "$IT_LAST_PID"
}

it_alive() {  # it_alive PID
    kill -0 "$1" 2>/dev/null
}

# it_budget SECS: SECS, cut down to the time left before IT_DEADLINE (at
# least 1), so that a run of bounded waits stays bounded as a whole.
it_budget() {
    local secs=$1 left
    if [ -n "$IT_DEADLINE" ]; then
        left=$((IT_DEADLINE - SECONDS))
        [ "$left" -lt "$secs" ] && secs=$left
        [ "$secs" -lt 1 ] && secs=1
    fi
    echo "$secs"
}

# it_wait_for SECS CMD...: 0 as soon as CMD succeeds, 1 after SECS (see
# it_budget).
it_wait_for() {
    local secs
    secs=$(it_budget "$1"); shift
    local end=$((SECONDS + secs))
    while :; do
        "$@" && return 0
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.1
    done
}

it_require_cmds() {
    local c missing=()
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "SKIP: missing ${missing[*]}"
        exit 77
    fi
}

# The dummy video driver module, wherever the distribution put it.
it_find_dummy_driver() {
    local f
    for f in /usr/lib/xorg/modules/drivers/dummy_drv.so \
             /usr/lib/*/xorg/modules/drivers/dummy_drv.so \
             /usr/lib64/xorg/modules/drivers/dummy_drv.so; do
        [ -e "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

# it_xorg_start CONF: Xorg (as root) with CONF, its own log and an empty
# config dir; -displayfd lets the server pick a free display number itself
# (no race with other servers) and tells us once it accepts connections.
it_xorg_start() {
    local conf=$1 n
    IT_XORG_LOG=$IT_TMP/xorg.log
    mkdir -p "$IT_TMP/xorg.conf.d"
    : >"$IT_TMP/xorg.display"
    Xorg -noreset -nolisten tcp -config "$conf" -configdir "$IT_TMP/xorg.conf.d" \
        -logfile "$IT_XORG_LOG" -displayfd 9 \
        </dev/null >"$IT_TMP/xorg.out" 2>&1 9>"$IT_TMP/xorg.display" &
    local pid=$!
    it_track Xorg "$pid"
    if ! it_wait_for 20 grep -q '^[0-9][0-9]*$' "$IT_TMP/xorg.display"; then
        it_log "Xorg did not start within 20 s"
        it_alive "$pid" || it_log "Xorg exited"
        tail -n 30 "$IT_TMP/xorg.out" >&2
        return 1
    fi
    n=$(head -n 1 "$IT_TMP/xorg.display")
    IT_DISPLAY=":$n"
}

# it_session_bus: dbus-daemon on a UNIX socket in the temp dir, with a
# config of its own that has no service directories, so nothing is ever
# activated on it (no gvfs, no portals). 1 if dbus-daemon is missing or
# does not come up.
it_session_bus() {
    command -v dbus-daemon >/dev/null 2>&1 || return 1
    local sock=$IT_TMP/session-bus
    cat >"$IT_TMP/session-bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
    it_spawn session-bus dbus-daemon --nofork --nopidfile --config-file="$IT_TMP/session-bus.conf"
    if ! it_wait_for 5 test -S "$sock"; then
        it_log "dbus-daemon did not create $sock"
        return 1
    fi
    IT_BUS_ADDRESS=unix:path=$sock
}

# it_event_reader FIFO OUT: a reader for spice-vdagentd's fake uinput.
# It opens the FIFO read-write, so it never sees EOF when the daemon
# reopens the sink (it does on every desktop size change) and the daemon's
# open() never blocks. One line per event, flushed at once.
it_event_reader() {
    local fifo=$1 out=$2
    python3 -u -c '
import os, struct, sys
# struct input_event: struct timeval (two longs), u16 type, u16 code, s32 value
rec = struct.Struct("@llHHi")
types = {0: "EV_SYN", 1: "EV_KEY", 2: "EV_REL", 3: "EV_ABS"}
codes = {
    0: {0: "SYN_REPORT"},
    1: {0x110: "BTN_LEFT", 0x111: "BTN_RIGHT", 0x112: "BTN_MIDDLE",
        0x113: "BTN_SIDE", 0x114: "BTN_EXTRA"},
    2: {0: "REL_X", 1: "REL_Y", 6: "REL_HWHEEL", 8: "REL_WHEEL"},
    3: {0: "ABS_X", 1: "ABS_Y"},
}
fd = os.open(sys.argv[1], os.O_RDWR)
out = open(sys.argv[2], "w", buffering=1)
buf = b""
while True:
    data = os.read(fd, 65536)
    if not data:
        break
    buf += data
    while len(buf) >= rec.size:
        _, _, t, c, v = rec.unpack_from(buf)
        buf = buf[rec.size:]
        out.write("%s %s %d\n" % (types.get(t, "type%d" % t),
                                  codes.get(t, {}).get(c, "code%d" % c), v))
' "$fifo" "$out" </dev/null 2>"$out.err" &
    it_track event-reader $!
}

# it_xrandr_active DISPLAY: "OUTPUT WxH+X+Y" for every output that shows a
# mode, sorted by output name.
it_xrandr_active() {
    DISPLAY=$1 timeout 10 xrandr --query 2>/dev/null |
        sed -n 's/^\([^ ]*\) \(dis\)\{0,1\}connected \(primary \)\{0,1\}\([0-9]*x[0-9]*+[0-9-]*+[0-9-]*\).*/\1 \4/p' |
        sort
}

# it_show_log TITLE FILE [LINES]: print the tail of a log, framed, with
# runs of identical lines folded into one.
it_show_log() {
    local title=$1 file=$2 lines=${3:-40}
    [ -s "$file" ] || return 0
    echo "----- $title ($file, last $lines lines)"
    awk 'NR > 1 && $0 == prev { n++; next }
         { if (n) print "    (the line above " n " more times)"; print; prev = $0; n = 0 }
         END { if (n) print "    (the line above " n " more times)" }' "$file" | tail -n "$lines"
}
