# shellcheck shell=bash
# shellcheck disable=SC2034  # AG_* results are read by the sourcing script
# agent-lib.sh - the whole guest stack for end-to-end tests (bash; source it
# after lib.sh and after it_init).
#
#   ag_x_start MODE          MODE xorg (Xorg dummy: RandR can resize) or xvfb
#                            (clipboard only); sets DISPLAY and AG_X_MODE
#   ag_guest_start PORT      spice-vdagentd + spice-vdagent of $AG_FLAVOUR
#                            (ours | debian) on an existing X server, the
#                            daemon connecting to PORT (a UNIX socket that
#                            someone listens on: vdagentctl serve, or the
#                            interop spice-server bridge)
#   ag_host_serve            vdagentctl --listen serve on $AG_PORT
#   ag_stack_start MODE      all of the above; returns once the host sees
#                            the guest's capabilities (0), else 1 with a
#                            reason on stderr
#   ag_ctl ARGS...           vdagentctl on $AG_PORT (through the serve),
#                            bounded by a timeout
#   ag_agent_restart, ag_daemon_restart
#   ag_show_logs             tails of the daemon, agent and serve logs
#
# Settings: AG_FLAVOUR (ours | debian, default ours); AG_NO_UINPUT=1 gives
# the daemon a uinput device that does not exist, so the mouse goes to the
# agent (XTest) instead of the fake-uinput FIFO; AG_DAEMON_ARGS (extra
# daemon options).
#
# Results: AG_PORT, AG_SOCK, AG_FIFO, AG_SAVE_DIR, AG_HOME, AG_DAEMON_PID,
# AG_AGENT_PID, AG_SERVE_PID, AG_DAEMON_LOG, AG_AGENT_LOG, AG_SERVE_LOG,
# AG_CTL (the vdagentctl binary), AG_DAEMON_BIN, AG_AGENT_BIN.

AG_FLAVOUR=${AG_FLAVOUR:-ours}
AG_X_MODE=
AG_PORT=
AG_SOCK=
AG_FIFO=
AG_SAVE_DIR=
AG_HOME=
AG_DAEMON_PID=
AG_AGENT_PID=
AG_SERVE_PID=
AG_BUS=
AG_RESTARTS=0

ag_builddir() { (cd "${top_builddir:-.}" && pwd); }

ag_bins() {
    local b
    b=$(ag_builddir)
    AG_CTL=$b/vdagentctl
    case $AG_FLAVOUR in
        ours)
            AG_DAEMON_BIN=$b/spice-vdagentd
            AG_AGENT_BIN=$b/spice-vdagent ;;
        debian)
            AG_DAEMON_BIN=/usr/sbin/spice-vdagentd
            AG_AGENT_BIN=/usr/bin/spice-vdagent ;;
        *)
            it_log "AG_FLAVOUR must be ours or debian, not $AG_FLAVOUR"
            return 1 ;;
    esac
    local f
    for f in "$AG_DAEMON_BIN" "$AG_AGENT_BIN"; do
        if [ ! -x "$f" ]; then
            it_log "$f is missing (not built, or the package is not installed)"
            return 1
        fi
    done
}

# ag_x_start MODE
ag_x_start() {
    AG_X_MODE=$1
    local here
    here=$(cd "${top_srcdir:?}/tests/integration" && pwd) || return 1
    case $AG_X_MODE in
        xorg)
            it_xorg_start "$here/xorg-dummy.conf" || return 1 ;;
        xvfb)
            : >"$IT_TMP/xvfb.display"
            Xvfb -nolisten tcp -noreset -screen 0 1280x1024x24 -displayfd 9 \
                </dev/null >"$IT_TMP/xvfb.log" 2>&1 9>"$IT_TMP/xvfb.display" &
            it_track Xvfb $!
            if ! it_wait_for 20 grep -q '^[0-9][0-9]*$' "$IT_TMP/xvfb.display"; then
                it_log "Xvfb did not start within 20 s"
                tail -n 20 "$IT_TMP/xvfb.log" >&2
                return 1
            fi
            IT_DISPLAY=":$(head -n 1 "$IT_TMP/xvfb.display")" ;;
        *)
            it_log "ag_x_start: mode must be xorg or xvfb"
            return 1 ;;
    esac
    export DISPLAY=$IT_DISPLAY
}

ag_start_daemon() {
    local uinput=()
    if [ "${AG_NO_UINPUT:-0}" = 1 ]; then
        uinput=(-u "$IT_TMP/no-such-uinput")
    else
        uinput=(-f -u "$AG_FIFO")
    fi
    local wrap=()
    # Debian's daemon renames /run/spice-vdagentd/xorg.conf.spice on every
    # monitor config: give it a private, empty /run/spice-vdagentd.
    if [ "$AG_FLAVOUR" = debian ] && [ -d /run/spice-vdagentd ] &&
        unshare -m --propagation private true 2>/dev/null; then
        wrap=(unshare -m --propagation private sh -c
              'mount -t tmpfs -o mode=0755,size=1m vdagent-test /run/spice-vdagentd && exec "$@"' sh)
    fi
    rm -f "$AG_SOCK"
    # shellcheck disable=SC2086  # AG_DAEMON_ARGS is a word list
    it_spawn "vdagentd$AG_RESTARTS" "${wrap[@]}" "$AG_DAEMON_BIN" -x -X -s "$AG_PORT" -S "$AG_SOCK" \
        "${uinput[@]}" ${AG_DAEMON_ARGS:-}
    AG_DAEMON_PID=$IT_LAST_PID
    AG_DAEMON_LOG=$IT_TMP/vdagentd$AG_RESTARTS.log
    if ! it_wait_for 10 test -S "$AG_SOCK"; then
        it_log "spice-vdagentd did not create $AG_SOCK within 10 s"
        it_alive "$AG_DAEMON_PID" || it_log "(spice-vdagentd exited)"
        return 1
    fi
}

ag_start_agent() {
    it_spawn "vdagent$AG_RESTARTS" env DISPLAY="$IT_DISPLAY" HOME="$AG_HOME" \
        XDG_CONFIG_HOME="$AG_HOME/.config" XDG_RUNTIME_DIR="$AG_HOME/run" \
        DBUS_SESSION_BUS_ADDRESS="$AG_BUS" NO_AT_BRIDGE=1 GDK_BACKEND=x11 GIO_USE_VFS=local \
        "$AG_AGENT_BIN" -x -s "$AG_PORT" -S "$AG_SOCK" -f "$AG_SAVE_DIR" -o 0
    AG_AGENT_PID=$IT_LAST_PID
    AG_AGENT_LOG=$IT_TMP/vdagent$AG_RESTARTS.log
}

# ag_guest_start PORT
ag_guest_start() {
    ag_bins || return 1
    AG_PORT=$1
    AG_SOCK=$IT_TMP/vdagentd.sock
    AG_FIFO=$IT_TMP/uinput.fifo
    AG_SAVE_DIR=${AG_SAVE_DIR:-$IT_TMP/save}
    AG_HOME=$IT_TMP/home
    mkdir -p "$AG_SAVE_DIR" "$AG_HOME/.config" "$AG_HOME/run"
    chmod 0700 "$AG_HOME/run"
    if [ "${AG_NO_UINPUT:-0}" != 1 ] && [ ! -p "$AG_FIFO" ]; then
        mkfifo "$AG_FIFO" || return 1
        : >"$IT_TMP/events.txt"
        it_event_reader "$AG_FIFO" "$IT_TMP/events.txt"
        AG_EVENTS=$IT_TMP/events.txt
    fi
    # Debian's agent dies of SIGSEGV at exit without a session bus.
    if [ -z "$AG_BUS" ]; then
        if it_session_bus; then
            AG_BUS=$IT_BUS_ADDRESS
        else
            AG_BUS=unix:path=$IT_TMP/no-session-bus
        fi
    fi
    ag_start_daemon || return 1
    ag_start_agent
}

ag_host_serve() {
    ag_bins || return 1
    AG_PORT=${AG_PORT:-$IT_TMP/port}
    it_spawn serve "$AG_CTL" -p "$AG_PORT" --listen serve
    AG_SERVE_PID=$IT_LAST_PID
    AG_SERVE_LOG=$IT_TMP/serve.log
    if ! it_wait_for 10 test -S "$AG_PORT" -a -S "$AG_PORT.ctl"; then
        it_log "vdagentctl serve did not create $AG_PORT within 10 s"
        return 1
    fi
}

# ag_ctl ARGS...: vdagentctl through the serve; output on stdout/stderr.
ag_ctl() {
    timeout -k 2 "$(it_budget "${AG_CTL_TIMEOUT:-60}")" "$AG_CTL" -p "$AG_PORT" "$@"
}

# ag_wait_guest SECS: the host sees the guest (its capabilities).
ag_wait_guest() {
    it_wait_for "$1" eval 'ag_ctl --json -t 2 status 2>/dev/null | grep -q "\"capabilities\": *\[ *\""'
}

ag_stack_start() {
    ag_x_start "$1" || return 1
    AG_PORT=$IT_TMP/port
    ag_host_serve || return 1
    ag_guest_start "$AG_PORT" || return 1
    if ! ag_wait_guest 30; then
        it_log "the host did not see the guest within 30 s"
        it_alive "$AG_DAEMON_PID" || it_log "(spice-vdagentd exited)"
        it_alive "$AG_AGENT_PID" || it_log "(spice-vdagent exited)"
        ag_show_logs >&2
        return 1
    fi
}

ag_stop_pid() {
    local pid=$1 t
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((t = 0; t < 50; t++)); do
        it_alive "$pid" || break
        sleep 0.1
    done
    it_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

ag_agent_restart() {
    ag_stop_pid "$AG_AGENT_PID"
    AG_RESTARTS=$((AG_RESTARTS + 1))
    ag_start_agent
}

ag_daemon_restart() {
    ag_stop_pid "$AG_DAEMON_PID"
    AG_RESTARTS=$((AG_RESTARTS + 1))
    ag_start_daemon
}

ag_show_logs() {
    it_show_log "spice-vdagentd" "${AG_DAEMON_LOG:-}" 30
    it_show_log "spice-vdagent" "${AG_AGENT_LOG:-}" 30
    it_show_log "vdagentctl serve" "${AG_SERVE_LOG:-}" 15
}

# ---- for the test scripts: prerequisites and TAP-like results ----
#   ag_need_root WHY           exit 77 (skipped) unless root
#   ag_need_dummy              exit 77 without the Xorg dummy video driver
#   ag_need_built FILE...      exit 1 when a program of the build is missing
#   ok / not_ok / skip TEXT    one result line; check TEXT CMD... runs CMD
#   finish                     the summary (logs after a failure) and exit
#   now, elapsed START         timestamps for timings

ag_need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "SKIP: must run as root ($1)"
        exit 77
    fi
}

ag_need_dummy() {
    if ! it_find_dummy_driver >/dev/null; then
        echo "SKIP: the Xorg dummy video driver (xserver-xorg-video-dummy) is not installed"
        exit 77
    fi
}

ag_need_built() {
    local f
    for f in "$@"; do
        if [ ! -x "$f" ]; then
            echo "FAIL: $f has not been built"
            exit 1
        fi
    done
}

PASS=0
FAIL=0
SKIPPED=0
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
skip() { SKIPPED=$((SKIPPED + 1)); echo "skip - $*"; }
check() { # check DESCRIPTION CMD...
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
finish() {
    [ "$FAIL" -gt 0 ] && ag_show_logs
    if [ "$SKIPPED" -gt 0 ]; then
        echo "# $PASS passed, $FAIL failed, $SKIPPED skipped"
    else
        echo "# $PASS passed, $FAIL failed"
    fi
    [ "$FAIL" -eq 0 ]
    exit
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
