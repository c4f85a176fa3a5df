#!/bin/bash
# vdagentctl drives Debian's spice-vdagent 0.22.1 (spice-vdagentd +
# spice-vdagent) under Xorg with the dummy driver:
#   setup         Xorg, `vdagentctl --listen serve` on a UNIX socket that
#                 stands in for the virtio port, the daemon with a fake
#                 uinput FIFO, the session agent
#   status        connected, with the capabilities the steps below need
#   monitors      two outputs, then one (RandR, checked with xrandr)
#   clipboard     host -> guest (CLIPBOARD and PRIMARY, checked with xclip -o),
#                 guest -> host (xclip -i, checked with clipboard get), and
#                 host -> guest again once the guest owned the selection
#   file          3 MiB lands in the agent's save dir with the same sha256
#   mouse         the daemon's input events, in order, on display 0 and 1;
#                 right and middle clicks, the wheel
#   serve-stop    the serve ends cleanly on SIGTERM
#
# spice-vdagent 0.22.1 rounds monitor widths and x positions down to a
# multiple of 8 and drops MONITORS_CONFIG messages that carry physical
# sizes, so every layout here uses multiples of 8 and no @MMxMM.
#
# Run by `make check` (top_srcdir, top_builddir set). Needs root; exits 77
# when not root or when Xorg, its dummy driver, spice-vdagent, xclip,
# xrandr or python3 are missing. Every wait is bounded; the whole test
# takes well under two minutes. Only UNIX sockets are bound, all under a
# fresh temp dir. IT_KEEP_TMP=1 keeps that dir.
set -u
export PATH="$PATH:/usr/sbin:/sbin"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=.}"
here=$(cd "$top_srcdir/tests/integration" && pwd) || exit 99
# shellcheck source=lib.sh
. "$here/lib.sh"

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: must run as root (Xorg with the dummy driver, spice-vdagentd)"
    exit 77
fi
it_require_cmds Xorg xrandr xclip python3 spice-vdagentd spice-vdagent timeout sha256sum mkfifo cmp
if ! it_find_dummy_driver >/dev/null; then
    echo "SKIP: the Xorg dummy video driver (xserver-xorg-video-dummy) is not installed"
    exit 77
fi
CTL=$(cd "$top_builddir" && pwd)/vdagentctl
if [ ! -x "$CTL" ]; then
    echo "FAIL: $CTL has not been built"
    exit 1
fi

DEADLINE=85           # seconds; steps that would start later are not run
IT_DEADLINE=110       # and every wait ends by then
it_init test-spice-vdagent
T=$IT_TMP
PORT=$T/port
SOCK=$T/vdagentd.sock
FIFO=$T/uinput.fifo
SAVE=$T/save
SERVE_PID=
EVENTS=$T/events.txt
mkdir -p "$SAVE" "$T/home"

# ---- results ----
RES_STATUS=()
RES_TEXT=()
FAILED=0
ok()   { RES_STATUS+=("ok  "); RES_TEXT+=("$1: $2"); echo "ok   $1: $2"; }
fail() { RES_STATUS+=("FAIL"); RES_TEXT+=("$1: $2"); echo "FAIL $1: $2"; FAILED=1; }
time_left() { [ "$SECONDS" -lt "$DEADLINE" ]; }

# ---- vdagentctl ----
# ctl ARGS...: run vdagentctl on our port (bounded by timeout), stdout in
# $T/ctl.out; command, exit code, stdout and stderr go to a transcript
# (a poll's identical attempts are written once, with a count).
CTL_N=0
CTL_PREV=
CTL_REPEAT=0
ctl() {
    local rc entry
    CTL_N=$((CTL_N + 1))
    timeout -k 2 "$(it_budget 25)" "$CTL" -p "$PORT" "$@" >"$T/ctl.out" 2>"$T/ctl.err"
    rc=$?
    entry="vdagentctl -p PORT $* -> exit $rc"
    if [ -s "$T/ctl.out" ]; then
        entry+=$'\n'"  stdout: $(head -c 600 "$T/ctl.out" | tr -c '[:print:]\n' '?' | head -n 5)"
    fi
    if [ -s "$T/ctl.err" ]; then
        entry+=$'\n'"$(sed 's/^/  stderr: /' "$T/ctl.err" | head -n 10)"
    fi
    if [ "$entry" = "$CTL_PREV" ]; then
        CTL_REPEAT=$((CTL_REPEAT + 1))
    else
        ctl_flush
        CTL_PREV=$entry
        printf '[%d] %s\n' "$CTL_N" "$entry" >>"$T/ctl-transcript.log"
    fi
    return "$rc"
}
ctl_flush() {
    [ "$CTL_REPEAT" -gt 0 ] && echo "  (the same $CTL_REPEAT more times)" >>"$T/ctl-transcript.log"
    CTL_REPEAT=0
}
ctl_err() { head -n 3 "$T/ctl.err" | tr '\n' ' '; }

# ---- checks ----
# status_ok FILE: the --json status output says connected, names our port
# and lists the capabilities every step needs; prints a one-line description.
status_ok() {
    python3 - "$1" "$PORT" <<'EOF'
import json, sys
need = ["monitors-config", "clipboard-by-demand", "clipboard-selection"]
obj = None
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = line.strip()
    if not line:
        continue
    try:
        o = json.loads(line)
    except ValueError as e:
        print("not JSON: %r (%s)" % (line[:120], e))
        sys.exit(1)
    if isinstance(o, dict) and "connected" in o:
        obj = o
if obj is None:
    print("no JSON object with \"connected\"")
    sys.exit(1)
if obj.get("connected") is not True:
    print("connected is %r" % (obj.get("connected"),))
    sys.exit(1)
if obj.get("port") != sys.argv[2]:
    print("port is %r, expected %r" % (obj.get("port"), sys.argv[2]))
    sys.exit(1)
caps = obj.get("capabilities")
if not isinstance(caps, list):
    print("capabilities is %r, not a list" % (caps,))
    sys.exit(1)
missing = [c for c in need if c not in caps]
if missing:
    print("capabilities %s lack %s" % (",".join(map(str, caps)), ",".join(missing)))
    sys.exit(1)
print("connected, port %s, %d capabilities including %s"
      % (obj.get("port"), len(caps), ", ".join(need)))
EOF
}

layout() { it_xrandr_active "$IT_DISPLAY" | tr '\n' ',' | sed 's/,$//; s/,/, /g'; }
layout_is() { [ "$(layout)" = "$1" ]; }

# events_since N: the non-SYN events after line N of the event log.
events_since() { tail -n +"$(($1 + 1))" "$EVENTS" | grep -v '^EV_SYN'; }
events_count() { wc -l <"$EVENTS"; }
events_at_least() { [ "$(events_since "$1" | wc -l)" -ge "$2" ]; }

# xclip_reads SELECTION EXPECTED_FILE: one paste in the guest equals the file.
xclip_reads() {
    DISPLAY=$IT_DISPLAY timeout 5 xclip -o -selection "$1" >"$T/xclip.out" 2>"$T/xclip.err" &&
        cmp -s "$T/xclip.out" "$2"
}

# ---- 1. setup ----
setup() {
    if ! it_xorg_start "$here/xorg-dummy.conf"; then
        fail setup "Xorg with the dummy driver did not start"
        return 1
    fi
    if ! it_wait_for 10 eval 'it_xrandr_active "$IT_DISPLAY" | grep -q .'; then
        fail setup "xrandr on $IT_DISPLAY shows no active output"
        return 1
    fi

    it_spawn serve "$CTL" -p "$PORT" --listen serve
    SERVE_PID=$IT_LAST_PID
    local serve_pid=$SERVE_PID
    if ! it_wait_for 10 test -S "$PORT" -a -S "$PORT.ctl"; then
        fail setup "vdagentctl serve did not create $PORT and $PORT.ctl within 10 s"
        it_alive "$serve_pid" || echo "  (vdagentctl serve exited)"
        return 1
    fi

    mkfifo "$FIFO" || { fail setup "mkfifo failed"; return 1; }
    : >"$EVENTS"
    it_event_reader "$FIFO" "$EVENTS"

    # The daemon renames /run/spice-vdagentd/xorg.conf.spice on every
    # monitor config; give it a private, empty one where we can.
    local wrap=()
    if [ -d /run/spice-vdagentd ] && unshare -m --propagation private true 2>/dev/null; then
        wrap=(unshare -m --propagation private sh -c
              'mount -t tmpfs -o mode=0755,size=1m vdagent-test /run/spice-vdagentd && exec "$@"' sh)
    fi
    it_spawn vdagentd "${wrap[@]}" spice-vdagentd -x -X -s "$PORT" -S "$SOCK" -f -u "$FIFO"
    local daemon_pid=$IT_LAST_PID
    if ! it_wait_for 10 test -S "$SOCK"; then
        fail setup "spice-vdagentd did not create $SOCK within 10 s"
        it_alive "$daemon_pid" || echo "  (spice-vdagentd exited)"
        return 1
    fi

    # A session of our own: a private session bus (spice-vdagent 0.22.1
    # asks it for mutter, finds none and carries on; without any bus it
    # works too but dies of SIGSEGV when stopped), no accessibility bus, no
    # gvfs, and a config dir of ours (the agent deletes monitors.xml there).
    local bus
    if it_session_bus; then
        bus=$IT_BUS_ADDRESS
    else
        bus=unix:path=$T/no-session-bus
        echo "note: no dbus-daemon; spice-vdagent 0.22.1 may crash when it is stopped"
    fi
    it_spawn vdagent env DISPLAY="$IT_DISPLAY" HOME="$T/home" XDG_CONFIG_HOME="$T/home/.config" \
        XDG_RUNTIME_DIR="$T/home" DBUS_SESSION_BUS_ADDRESS="$bus" \
        NO_AT_BRIDGE=1 GDK_BACKEND=x11 GIO_USE_VFS=local \
        spice-vdagent -x -s "$PORT" -S "$SOCK" -f "$SAVE" -o 0
    local agent_pid=$IT_LAST_PID

    # The daemon connects to the port once the agent has reported its
    # resolution; the guest then announces its capabilities.
    if ! it_wait_for 20 eval 'ctl --json -t 2 status && status_ok "$T/ctl.out" >/dev/null'; then
        fail setup "no guest on the port within 20 s ($(status_ok "$T/ctl.out"))"
        it_alive "$daemon_pid" || echo "  (spice-vdagentd exited)"
        it_alive "$agent_pid" || echo "  (spice-vdagent exited)"
        return 1
    fi
    ok setup "Xorg dummy on $IT_DISPLAY, spice-vdagentd and spice-vdagent connected to vdagentctl serve after ${SECONDS} s"
}

# ---- 2. status ----
step_status() {
    local desc rc
    ctl --json status
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail status "vdagentctl --json status exited $rc: $(ctl_err)"
        return
    fi
    if desc=$(status_ok "$T/ctl.out"); then
        ok status "$desc"
    else
        fail status "$desc"
    fi
}

# ---- 3. monitors ----
step_monitors() {
    local want rc
    want="DUMMY0 1280x1024+0+0, DUMMY1 1024x768+1280+0"
    ctl monitors 1280x1024+0+0 1024x768+1280+0
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail monitors "vdagentctl monitors 1280x1024+0+0 1024x768+1280+0 exited $rc: $(ctl_err)"
    elif it_wait_for 10 layout_is "$want"; then
        ok monitors "two outputs 1280x1024+0+0, 1024x768+1280+0"
    else
        fail monitors "xrandr shows [$(layout)], expected [$want] within 10 s"
    fi

    want="DUMMY0 1600x900+0+0"
    ctl monitors 1600x900
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail monitors-single "vdagentctl monitors 1600x900 exited $rc: $(ctl_err)"
    elif it_wait_for 10 layout_is "$want"; then
        ok monitors-single "one output 1600x900+0+0, DUMMY1 disabled"
    else
        fail monitors-single "xrandr shows [$(layout)], expected [$want] within 10 s"
    fi
}

# ---- 4. clipboard host -> guest ----
step_clipboard_to_guest() {
    local sel=$1 name=$2 text=$3 rc
    printf '%s' "$text" >"$T/h2g-$sel.txt"
    ctl clipboard set --selection "$sel" <"$T/h2g-$sel.txt"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name" "vdagentctl clipboard set --selection $sel exited $rc: $(ctl_err)"
        return
    fi
    # The grab reaches the X server asynchronously: paste until it does.
    if it_wait_for 10 xclip_reads "$sel" "$T/h2g-$sel.txt"; then
        ok "$name" "xclip -o -selection $sel read '$text' ($(wc -c <"$T/h2g-$sel.txt") bytes)"
    else
        fail "$name" "xclip -o -selection $sel read '$(head -c 200 "$T/xclip.out")' $(head -c 200 "$T/xclip.err"), expected '$text'"
    fi
}

# ---- 5. clipboard guest -> host ----
clip_get_equals() {
    ctl -t 3 clipboard get && cmp -s "$T/ctl.out" "$1"
}
step_clipboard_to_host() {
    local text='from the guest ✓'
    printf '%s' "$text" >"$T/g2h.txt"
    # -quiet keeps xclip in the foreground (so the cleanup can stop it);
    # it serves the selection until someone else takes it.
    it_spawn xclip-in env DISPLAY="$IT_DISPLAY" xclip -quiet -i -selection clipboard "$T/g2h.txt"
    if it_wait_for 10 clip_get_equals "$T/g2h.txt"; then
        ok clipboard-g2h "vdagentctl clipboard get returned '$text' from xclip -i"
    else
        fail clipboard-g2h "vdagentctl clipboard get returned '$(head -c 200 "$T/ctl.out")' ($(ctl_err)), expected '$text'"
    fi
}

# ---- 6. file ----
file_arrived() { [ -f "$2" ] && [ "$(sha256sum <"$2" | cut -d' ' -f1)" = "$1" ]; }
step_file() {
    local src=$T/payload-3MiB.bin sum rc
    head -c $((3 * 1024 * 1024)) /dev/urandom >"$src"
    sum=$(sha256sum <"$src" | cut -d' ' -f1)
    ctl -t 20 send-file "$src"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail file "vdagentctl send-file exited $rc: $(ctl_err)"
        return
    fi
    if it_wait_for 10 file_arrived "$sum" "$SAVE/payload-3MiB.bin"; then
        ok file "3 MiB arrived as $(basename "$SAVE")/payload-3MiB.bin, sha256 ${sum:0:16}... matches"
    else
        fail file "$SAVE/payload-3MiB.bin missing or different (save dir: $(ls -l "$SAVE" | tail -n +2 | tr '\n' ';'))"
    fi
}

# ---- 7. mouse ----
step_mouse() {
    local start want got rc
    if ! layout_is "DUMMY0 1600x900+0+0"; then
        if ! { ctl monitors 1600x900 && it_wait_for 10 layout_is "DUMMY0 1600x900+0+0"; }; then
            fail mouse "could not set the layout 1600x900 first (xrandr: $(layout); $(ctl_err))"
            return
        fi
    fi
    start=$(events_count)
    for args in "move 100 200" "click left --at 300 400" "move 50 60 --display 0"; do
        # shellcheck disable=SC2086
        ctl mouse $args
        rc=$?
        if [ "$rc" -ne 0 ]; then
            fail mouse "vdagentctl mouse $args exited $rc: $(ctl_err)"
            return
        fi
    done
    want="EV_ABS ABS_X 100|EV_ABS ABS_Y 200|EV_ABS ABS_X 300|EV_ABS ABS_Y 400|EV_KEY BTN_LEFT 1|EV_KEY BTN_LEFT 0|EV_ABS ABS_X 50|EV_ABS ABS_Y 60"
    it_wait_for 5 events_at_least "$start" 8
    sleep 0.3   # nothing more may follow
    got=$(events_since "$start" | tr '\n' '|' | sed 's/|$//')
    if [ "$got" = "$want" ]; then
        ok mouse "move 100 200, click left at 300 400, move 50 60 on display 0 gave X=100 Y=200, X=300 Y=400, BTN_LEFT 1/0, X=50 Y=60"
    else
        fail mouse "uinput events [$got], expected [$want]"
    fi
}

# Display 1 of a two-monitor layout: its x offset is added. The agent
# reports the new layout to the daemon just after applying it; an event that
# comes first still finds display 1 at its old place (the agent reports every
# RandR output, a disabled one as 0x0+0+0, so the daemon maps it to 0,0
# rather than dropping it). So: repeat the same move until X=1290 shows up;
# the events must end at X=1290 Y=20 with nothing but ABS events.
step_mouse_display1() {
    local start got rc tries=0 note=
    if ! { ctl monitors 1280x1024+0+0 1024x768+1280+0 &&
           it_wait_for 10 layout_is "DUMMY0 1280x1024+0+0, DUMMY1 1024x768+1280+0"; }; then
        fail mouse-display1 "could not set the two-monitor layout (xrandr: $(layout); $(ctl_err))"
        return
    fi
    start=$(events_count)
    local end=$((SECONDS + 5))
    while :; do
        tries=$((tries + 1))
        ctl mouse move 10 20 --display 1
        rc=$?
        if [ "$rc" -ne 0 ]; then
            fail mouse-display1 "vdagentctl mouse move 10 20 --display 1 exited $rc: $(ctl_err)"
            return
        fi
        it_wait_for 1 eval 'events_since "$start" | grep -qx "EV_ABS ABS_X 1290"' && break
        [ "$SECONDS" -ge "$end" ] && break
    done
    sleep 0.3
    got=$(events_since "$start" | tr '\n' '|' | sed 's/|$//')
    [ "$tries" -gt 1 ] && note=" (sent $tries times: [$got])"
    if events_since "$start" | python3 -c '
import sys
ev = [l.split() for l in sys.stdin.read().splitlines()]
last = {}
for t, c, v in ev:
    if t != "EV_ABS":
        sys.exit(1)
    last[c] = int(v)
sys.exit(0 if last == {"ABS_X": 1290, "ABS_Y": 20} else 1)'; then
        ok mouse-display1 "move 10 20 on display 1 (1024x768+1280+0) gave X=1290 Y=20$note"
    else
        fail mouse-display1 "uinput events [$got], expected them to end at X=1290 Y=20 after $tries moves"
    fi
}

# The other buttons and the wheel (a notch is a press and release of the
# wheel button; the daemon turns the press into REL_WHEEL +1 or -1).
# Positions are not checked here: without --at the tool picks one.
step_mouse_buttons() {
    local start want got rc
    start=$(events_count)
    for args in "click right" "click middle" "scroll up" "scroll down 2"; do
        # shellcheck disable=SC2086
        ctl mouse $args
        rc=$?
        if [ "$rc" -ne 0 ]; then
            fail mouse-buttons "vdagentctl mouse $args exited $rc: $(ctl_err)"
            return
        fi
    done
    want="EV_KEY BTN_RIGHT 1|EV_KEY BTN_RIGHT 0|EV_KEY BTN_MIDDLE 1|EV_KEY BTN_MIDDLE 0|EV_REL REL_WHEEL 1|EV_REL REL_WHEEL -1|EV_REL REL_WHEEL -1"
    it_wait_for 5 eval '[ "$(events_since "$start" | grep -vc "^EV_ABS")" -ge 7 ]'
    sleep 0.3
    got=$(events_since "$start" | grep -v '^EV_ABS' | tr '\n' '|' | sed 's/|$//')
    if [ "$got" = "$want" ]; then
        ok mouse-buttons "click right, click middle, scroll up, scroll down 2 gave BTN_RIGHT 1/0, BTN_MIDDLE 1/0, REL_WHEEL +1, -1, -1"
    else
        fail mouse-buttons "uinput events (ABS left out) [$got], expected [$want]"
    fi
}

# ---- 8. stopping the serve ----
# SIGTERM while the guest is connected: it must end within 3 s, cleanly
# (under the sanitizers a leak report turns its exit status non-zero).
step_serve_stop() {
    local rc t
    kill -TERM "$SERVE_PID" 2>/dev/null
    for ((t = 0; t < 30; t++)); do
        it_alive "$SERVE_PID" || break
        sleep 0.1
    done
    if it_alive "$SERVE_PID"; then
        fail serve-stop "vdagentctl serve still runs 3 s after SIGTERM"
        return
    fi
    wait "$SERVE_PID" 2>/dev/null
    rc=$?
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 143 ]; then
        ok serve-stop "vdagentctl serve ended on SIGTERM with status $rc"
    else
        fail serve-stop "vdagentctl serve ended on SIGTERM with status $rc"
    fi
}

# ---- run ----
# run NAME CMD...: CMD unless the time budget is spent.
run() {
    local name=$1; shift
    if time_left; then
        "$@"
    else
        fail "$name" "not run: over the ${DEADLINE} s budget"
    fi
}
if setup; then
    run status step_status
    run monitors step_monitors
    run clipboard-h2g step_clipboard_to_guest clipboard clipboard-h2g 'héllo wörld ✓'
    run clipboard-h2g-primary step_clipboard_to_guest primary clipboard-h2g-primary 'héllo wörld ✓'
    run clipboard-g2h step_clipboard_to_host
    run clipboard-h2g-regrab step_clipboard_to_guest clipboard clipboard-h2g-regrab 'back from the host ✓'
    run file step_file
    run mouse step_mouse
    run mouse-display1 step_mouse_display1
    run mouse-buttons step_mouse_buttons
    run serve-stop step_serve_stop
fi

echo
echo "=== summary (${SECONDS} s)"
for i in "${!RES_STATUS[@]}"; do
    echo "${RES_STATUS[i]} ${RES_TEXT[i]}"
done

if [ "$FAILED" -ne 0 ]; then
    echo
    echo "=== logs"
    ctl_flush
    it_show_log "vdagentctl commands" "$T/ctl-transcript.log" 80
    it_show_log "vdagentctl serve" "$T/serve.log" 60
    it_show_log "spice-vdagentd" "$T/vdagentd.log" 60
    it_show_log "spice-vdagent" "$T/vdagent.log" 60
    it_show_log "uinput events" "$EVENTS" 40
    it_show_log "event reader errors" "$EVENTS.err" 20
    it_show_log "xclip -i" "$T/xclip-in.log" 20
    [ -n "$IT_XORG_LOG" ] && it_show_log "Xorg" "$IT_XORG_LOG" 30
    exit 1
fi
exit 0
