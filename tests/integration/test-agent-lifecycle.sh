#!/bin/bash
# shellcheck disable=SC2016,SC2317  # eval strings expand later; helpers run through check/eval
# test-agent-lifecycle.sh - our spice-vdagent with the real spice-vdagentd
# and vdagentctl serve as the host, under Xorg with the dummy driver:
#   no-port        the virtio port does not exist: exit 0 at once, silent
#   no-x           no X server: exit 1 with a clear message
#   log            with -x every line goes to syslog (seen with strace: the
#                  agent talks to /dev/log; skipped without strace) and
#                  once, not twice, to stderr, as 0.22.1 (LOG_PERROR); not
#                  to a stderr that is the journal already (JOURNAL_STREAM,
#                  the user unit), where it would be logged twice
#   bad-args       an unknown option, -o abc or an -o beyond int: exit 255
#                  ("Invalid arguments"); -o takes any integer (0.22.1)
#   connect        the stack comes up; the host sees the guest's capabilities
#   mouse          no uinput: the daemon sends MOUSE to the agent, which
#                  moves the pointer with XTest (checked with XQueryPointer),
#                  holds and releases buttons, clicks and scrolls (checked
#                  by an X client watching button events on the root)
#   daemon-restart the daemon is restarted: the agent reconnects, reports
#                  its layout again (the daemon reopens the port only after
#                  it: the host sees the guest again), the mouse works again
#   agent-first    the agent starts while the daemon is down, keeps
#                  retrying (more than one attempt, still running after
#                  several seconds) and connects once the daemon comes
#   same-display   a second agent on the same X display exits 0 (the X
#                  manager selection _SPICE_VDAGENT_S0); the first keeps
#                  working
#   same-session   a second agent on another X server but in the same
#                  session (the daemon allows one agent: -X) is refused
#                  DUPLICATE, says so once and keeps asking at the slow
#                  rate; the first keeps working
#   sigterm        SIGTERM: the agent exits 0 and says so; the waiting
#                  agent of same-session then connects (a greeter's agent
#                  leaving, the user's taking over)
#   race           three agents started at once on one display: one stays,
#                  the others exit 0
#   daemonized     without -x: the parent exits 0 once the agent is up, the
#                  agent connects and works in the background
#   session-switch against a scripted daemon (Python, the real IPC): a
#                  button held through MOUSE is released when SESSION_STATE
#                  says the session is no longer active (a switch mid-drag)
#   x-lost         the X server goes away: the agent exits 0
#
# Run by `make check` (top_srcdir, top_builddir set). Needs root (Xorg with
# the dummy driver); exits 77 when not root or Xorg, its dummy driver or
# Xvfb are missing. Every wait is bounded; IT_KEEP_TMP=1 keeps the temp dir.
set -u
export PATH="$PATH:/usr/sbin:/sbin"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=.}"
here=$(cd "$top_srcdir/tests/integration" && pwd) || exit 99
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=agent-lib.sh
. "$here/agent-lib.sh"

ag_need_root "Xorg with the dummy driver, spice-vdagentd"
it_require_cmds Xorg Xvfb timeout
ag_need_dummy
B=$(cd "$top_builddir" && pwd)
AGENT=$B/spice-vdagent
POINTER=$B/tests/unit/test-agent-pointer
ag_need_built "$AGENT" "$POINTER" "$B/spice-vdagentd" "$B/vdagentctl"

IT_DEADLINE=150
it_init test-agent-lifecycle
T=$IT_TMP

# ---- no port, no X, bad arguments ----

out=$(DISPLAY=:0 timeout 10 "$AGENT" -x -s "$T/no-such-port" -S "$T/no-sock" 2>&1)
rc=$?
check "no-port: exit 0" test "$rc" = 0
check "no-port: nothing printed without -d" test -z "$out"
: >"$T/fake-port"
out=$(DISPLAY=:987 timeout 10 "$AGENT" -x -s "$T/fake-port" -S "$T/no-sock" 2>&1)
rc=$?
check "no-x: exit 1" test "$rc" = 1
check "no-x: says it cannot connect to the X server" grep -q "could not connect to the X server" <<<"$out"
if command -v strace >/dev/null 2>&1; then
    # (LeakSanitizer cannot run under ptrace: off for this run.)
    DISPLAY=:987 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        timeout 20 strace -f -qq -e trace=connect,sendto,sendmsg -o "$T/strace.txt" \
        "$AGENT" -x -s "$T/fake-port" -S "$T/no-sock" >"$T/log-stderr.txt" 2>&1
    check "log: -x logs to syslog too (the agent talks to /dev/log)" grep -q '"/dev/log"' "$T/strace.txt"
else
    echo "ok - log: -x logs to syslog too # SKIP strace is not installed"
fi
out=$(DISPLAY=:987 timeout 10 "$AGENT" -x -s "$T/fake-port" -S "$T/no-sock" 2>&1)
check "log: each line once on stderr" test "$(grep -c "could not connect to the X server" <<<"$out")" = 1
check "log: ... in 0.22.1's form" grep -q "^spice-vdagent\[[0-9]*\]: could not connect to the X server" <<<"$out"
: >"$T/journal-stderr.txt"
js=$(stat -c '%d:%i' "$T/journal-stderr.txt")
DISPLAY=:987 JOURNAL_STREAM=$js timeout 10 "$AGENT" -x -s "$T/fake-port" -S "$T/no-sock" \
    2>>"$T/journal-stderr.txt"
check "log: a stderr that is the journal (JOURNAL_STREAM) gets no copy" test ! -s "$T/journal-stderr.txt"
out=$(DISPLAY=:987 JOURNAL_STREAM=1:1 timeout 10 "$AGENT" -x -s "$T/fake-port" -S "$T/no-sock" 2>&1)
check "log: ... another JOURNAL_STREAM does not count" grep -q "could not connect to the X server" <<<"$out"
out=$(timeout 10 "$AGENT" --no-such-option 2>&1)
rc=$?
check "bad-args: unknown option exits 255" test "$rc" = 255
check "bad-args: says why" grep -q "Invalid arguments" <<<"$out"
timeout 10 "$AGENT" -x -o abc -s "$T/no-such-port" >/dev/null 2>&1
check "bad-args: -o abc exits 255" test $? = 255
timeout 10 "$AGENT" -x -o 99999999999 -s "$T/no-such-port" >/dev/null 2>&1
check "bad-args: -o 99999999999 exits 255" test $? = 255
for v in 0 1 2 -1; do
    timeout 10 "$AGENT" -x -o "$v" -s "$T/no-such-port" >/dev/null 2>&1
    check "bad-args: -o $v is accepted (0.22.1 takes any integer)" test $? = 0
done

# ---- the stack, mouse through XTest ----

export AG_NO_UINPUT=1
if ! ag_stack_start xorg; then
    not_ok "connect: the stack came up"
    finish
fi
ok "connect: the host sees the guest agent"
check "connect: the agent logged its connection" grep -q "connected to spice-vdagentd" "$AG_AGENT_LOG"

pointer_at() { # pointer_at X Y MASK
    [ "$("$POINTER" query)" = "$1 $2 $3" ]
}
mouse_checks() { # mouse_checks LABEL X Y
    local label=$1 x=$2 y=$3
    ag_ctl mouse move "$x" "$y" >/dev/null
    check "$label: moved to $x,$y (XQueryPointer)" it_wait_for 10 pointer_at "$x" "$y" 0
}
mouse_checks mouse 123 234
mouse_checks mouse 700 500
ag_ctl mouse move 300 200 --buttons left >/dev/null
check "mouse: left button held at 300,200" it_wait_for 10 pointer_at 300 200 1
ag_ctl mouse move 310 210 --buttons left,right >/dev/null
check "mouse: left and right held" it_wait_for 10 pointer_at 310 210 5
ag_ctl mouse move 320 220 >/dev/null
check "mouse: buttons released" it_wait_for 10 pointer_at 320 220 0

"$POINTER" watch 20 >"$T/buttons.txt" 2>&1 &
watch_pid=$!
it_track pointer-watch "$watch_pid"
it_wait_for 10 grep -q ready "$T/buttons.txt"
ag_ctl mouse click middle --at 50 60 >/dev/null
ag_ctl mouse scroll up 3 >/dev/null
ag_ctl mouse scroll down 2 >/dev/null
count_lines() { grep -c -x "$1" "$T/buttons.txt"; }
saw_all() {
    [ "$(count_lines 'press 2')" = 1 ] && [ "$(count_lines 'release 2')" = 1 ] &&
        [ "$(count_lines 'press 4')" = 3 ] && [ "$(count_lines 'release 4')" = 3 ] &&
        [ "$(count_lines 'press 5')" = 2 ] && [ "$(count_lines 'release 5')" = 2 ]
}
check "mouse: middle click, 3 wheel steps up and 2 down seen by an X client" it_wait_for 15 saw_all
saw_all || sed 's/^/    /' "$T/buttons.txt"
check "mouse: the click happened at 50,60" it_wait_for 10 pointer_at 50 60 0
kill "$watch_pid" 2>/dev/null

# ---- daemon restart ----

ag_daemon_restart || not_ok "daemon-restart: the daemon came back"
check "daemon-restart: the host sees the guest again" ag_wait_guest 30
# The daemon opens the port only once the active agent reported a layout.
check "daemon-restart: the new daemon got the layout and opened the port" \
    it_wait_for 10 grep -q "agent port open" "$AG_DAEMON_LOG"
check "daemon-restart: the agent lived through it" it_alive "$AG_AGENT_PID"
check "daemon-restart: the agent noticed and reconnected" \
    it_wait_for 10 eval '[ "$(grep -c "connected to spice-vdagentd" "$AG_AGENT_LOG")" -ge 2 ]'
check "daemon-restart: the agent logged the loss" grep -q "lost the connection to spice-vdagentd" "$AG_AGENT_LOG"
mouse_checks daemon-restart 400 300

# ---- agent first, daemon later ----

ag_stop_pid "$AG_DAEMON_PID"
ag_agent_restart
sleep_until() { it_wait_for "$1" false; }
# Retrying means several attempts over several seconds, still running.
check "agent-first: retries while the daemon is down" \
    it_wait_for 15 eval '[ "$(grep -c "cannot connect to spice-vdagentd" "$AG_AGENT_LOG")" -ge 1 ]'
sleep_until 5
check "agent-first: still running after 5 s without a daemon" it_alive "$AG_AGENT_PID"
AG_RESTARTS=$((AG_RESTARTS + 1))
ag_start_daemon || not_ok "agent-first: the daemon started"
check "agent-first: connects once the daemon is there" \
    it_wait_for 15 grep -q "connected to spice-vdagentd" "$AG_AGENT_LOG"
check "agent-first: the host sees the guest" ag_wait_guest 30
mouse_checks agent-first 222 111

# ---- a second agent on the same display ----

first=$AG_AGENT_PID
timeout 20 env HOME="$AG_HOME" "$AGENT" -x -s "$AG_PORT" -S "$AG_SOCK" -f "$AG_SAVE_DIR" -o 0 \
    >"$T/second.log" 2>&1
rc=$?
check "same-display: a second agent exits 0" test "$rc" = 0
check "same-display: ... saying another agent runs on this display" \
    grep -q "another spice-vdagent runs on this display" "$T/second.log"
check "same-display: the first agent still runs" it_alive "$first"
mouse_checks same-display 321 123

# ---- a second agent in the same session, on another X server ----

: >"$T/xvfb2.display"
Xvfb -nolisten tcp -noreset -screen 0 800x600x24 -displayfd 9 </dev/null >"$T/xvfb2.log" 2>&1 \
    9>"$T/xvfb2.display" &
it_track Xvfb2 $!
if it_wait_for 20 grep -q '^[0-9][0-9]*$' "$T/xvfb2.display"; then
    d2=":$(head -n 1 "$T/xvfb2.display")"
    it_spawn third env DISPLAY="$d2" HOME="$AG_HOME" "$AGENT" -x -s "$AG_PORT" -S "$AG_SOCK" \
        -f "$AG_SAVE_DIR" -o 0
    third=$IT_LAST_PID
    check "same-session: an agent refused by the daemon says another agent serves the session" \
        it_wait_for 15 grep -q "another agent already serves this session" "$T/third.log"
    # Two more slow retries (4 s apart) without giving up or logging again.
    check "same-session: ... and keeps asking (the daemon refuses it 3 times)" \
        it_wait_for 20 eval '[ "$(grep -c "rejected (duplicate)" "$AG_DAEMON_LOG")" -ge 3 ]'
    check "same-session: ... still running" it_alive "$third"
    check "same-session: ... said so once" test "$(grep -c "another agent already serves this session" "$T/third.log")" = 1
    check "same-session: the first agent still runs" it_alive "$first"
    mouse_checks same-session 135 246
else
    not_ok "same-session: a second X server (Xvfb) started"
    third=
fi

# ---- SIGTERM ----

kill -TERM "$first"
wait "$first" 2>/dev/null
rc=$?
check "sigterm: exit status 0" test "$rc" = 0
check "sigterm: logged" grep -q "signal received, exiting" "$AG_AGENT_LOG"
if [ -n "$third" ]; then
    check "same-session: with the first agent gone, the waiting one connects" \
        it_wait_for 20 grep -q "connected to spice-vdagentd" "$T/third.log"
    ag_stop_pid "$third"
fi

# ---- three agents started at once ----

race_pids=()
for i in 1 2 3; do
    env HOME="$AG_HOME" "$AGENT" -x -s "$AG_PORT" -S "$AG_SOCK" -f "$AG_SAVE_DIR" -o 0 \
        >"$T/race$i.log" 2>&1 &
    race_pids+=($!)
    it_track "race$i" "$!"
done
alive_count() {
    local p n=0
    for p in "${race_pids[@]}"; do it_alive "$p" && n=$((n + 1)); done
    echo "$n"
}
check "race: of three agents started together, two leave" it_wait_for 20 eval '[ "$(alive_count)" = 1 ]'
# Still one a moment later (no late SelectionClear or REJECT pending).
it_wait_for 2 false
check "race: exactly one keeps running" test "$(alive_count)" = 1
survivor=
for p in "${race_pids[@]}"; do
    if it_alive "$p"; then
        survivor=$p
    else
        wait "$p"
        check "race: agent $p exited with status 0" test $? = 0
    fi
done
check "race: the survivor is connected (the host sees the guest)" ag_wait_guest 30
mouse_checks race 234 345
[ -n "$survivor" ] && ag_stop_pid "$survivor"

# ---- daemonized (no -x) ----

nconn() { grep -c "): connected:" "$AG_DAEMON_LOG"; }
# shellcheck disable=SC2034  # read inside eval
before=$(nconn)
timeout 20 env HOME="$AG_HOME" "$AGENT" -s "$AG_PORT" -S "$AG_SOCK" -f "$AG_SAVE_DIR" -o 0 \
    >"$T/daemonized.log" 2>&1
rc=$?
check "daemonized: the parent exits 0 once the agent is up" test "$rc" = 0
check "daemonized: the agent connects to the daemon" it_wait_for 15 eval '[ "$(nconn)" -gt "$before" ]'
dpid=$(sed -n 's/.*agent #[0-9]* (pid \([0-9]*\),.*): connected:.*/\1/p' "$AG_DAEMON_LOG" | tail -n 1)
if [ -n "$dpid" ] && it_alive "$dpid"; then
    ok "daemonized: the agent (pid $dpid) runs in the background"
    check "daemonized: the host sees the guest" ag_wait_guest 30
    mouse_checks daemonized 111 222
    kill -TERM "$dpid"
    check "daemonized: SIGTERM stops it" it_wait_for 10 eval '! it_alive "$dpid"'
else
    not_ok "daemonized: the agent runs in the background"
fi

# ---- session switch mid-drag, against a scripted daemon ----

# A daemon speaking the real IPC: HELLO -> WELCOME, then frames written on
# command from a FIFO ("mouse X Y BUTTONS", "state FLAGS"); what the agent
# sends is read and dropped. Prints "welcomed" and "sent ..." lines.
cat >"$T/script-daemon.py" <<'PY'
import os, select, socket, struct, sys
path, cmds = sys.argv[1], sys.argv[2]
HDR = struct.Struct("<HBBII")
lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
lsock.bind(path)
lsock.listen(1)
print("listening", flush=True)
conn, _ = lsock.accept()
buf = b""
def frame():
    global buf
    while True:
        if len(buf) >= HDR.size:
            t, nfds, flags, fid, size = HDR.unpack_from(buf)
            if len(buf) >= HDR.size + size:
                payload = buf[HDR.size:HDR.size + size]
                buf = buf[HDR.size + size:]
                return t, payload
        data = conn.recv(65536)
        if not data:
            sys.exit(0)
        buf += data
def send(t, payload):
    conn.sendall(HDR.pack(t, 0, 0, 0, len(payload)) + payload)
t, payload = frame()
assert t == 1, t                      # HELLO
name = b"script-daemon\0"
send(2, struct.pack("<IHHII", 0x47414456, 1, 0, 0, 0) + name)   # WELCOME
print("welcomed", flush=True)
# Read-write: this end never sees EOF when the shell closes its end.
cfd = os.open(cmds, os.O_RDWR | os.O_NONBLOCK)
pending = b""
while True:
    r, _, _ = select.select([conn, cfd], [], [], 1.0)
    if conn in r:
        data = conn.recv(65536)
        if not data:
            sys.exit(0)
    if cfd in r:
        pending += os.read(cfd, 4096)
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            w = line.split()
            if w[0] == b"mouse":
                send(8, struct.pack("<iiI", int(w[1]), int(w[2]), int(w[3])))
            elif w[0] == b"state":
                send(9, struct.pack("<I", int(w[1])))
            print("sent", line.decode(), flush=True)
PY
mkfifo "$T/script-daemon.cmd"
it_spawn script-daemon python3 -u "$T/script-daemon.py" "$T/script-daemon.sock" "$T/script-daemon.cmd"
script_pid=$IT_LAST_PID
if it_wait_for 10 grep -q listening "$T/script-daemon.log"; then
    it_spawn vdagent-script env DISPLAY="$IT_DISPLAY" HOME="$AG_HOME" "$AGENT" -x -s "$AG_PORT" \
        -S "$T/script-daemon.sock" -f "$AG_SAVE_DIR" -o 0
    script_agent=$IT_LAST_PID
    check "session-switch: the agent talks to the scripted daemon" \
        it_wait_for 15 grep -q welcomed "$T/script-daemon.log"
    exec 7<>"$T/script-daemon.cmd"
    # ACTIVE | FILE_XFER_ENABLED, then the left button (VD_AGENT_LBUTTON_MASK 2) down.
    echo "state 9" >&7
    echo "mouse 260 180 2" >&7
    check "session-switch: left button held at 260,180" it_wait_for 10 pointer_at 260 180 1
    # Another session becomes active: this one is told it is not.
    echo "state 0" >&7
    check "session-switch: the button is released when the session is no longer active" \
        it_wait_for 10 pointer_at 260 180 0
    # Back: the daemon's next MOUSE presses it again.
    echo "state 9" >&7
    echo "mouse 270 190 2" >&7
    check "session-switch: active again, the button works" it_wait_for 10 pointer_at 270 190 1
    echo "mouse 270 190 0" >&7
    check "session-switch: ... and is released by the daemon" it_wait_for 10 pointer_at 270 190 0
    exec 7>&-
    ag_stop_pid "$script_agent"
else
    not_ok "session-switch: the scripted daemon started"
fi
ag_stop_pid "$script_pid"

# ---- the X server goes away ----

ag_start_agent
check "x-lost: a new agent connects" it_wait_for 15 grep -q "connected to spice-vdagentd" "$AG_AGENT_LOG"
for i in "${!IT_NAMES[@]}"; do
    [ "${IT_NAMES[i]}" = Xorg ] && kill -TERM "${IT_PIDS[i]}"
done
check "x-lost: the agent exits" it_wait_for 20 eval '! it_alive "$AG_AGENT_PID"'
wait "$AG_AGENT_PID" 2>/dev/null
rc=$?
check "x-lost: with status 0 (the session is over)" test "$rc" = 0
check "x-lost: logged" grep -q "connection to the X server was lost" "$AG_AGENT_LOG"
finish
