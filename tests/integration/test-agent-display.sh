#!/bin/bash
# test-agent-display.sh - displays end to end: vdagentctl serve as the host,
# the real spice-vdagentd and our spice-vdagent under Xorg with the dummy
# driver. Every config goes through `vdagentctl monitors` (exit status and
# the JSON result checked) and its effect is checked in the guest with
# xrandr (outputs, positions, exact mode sizes, screen size) and xdpyinfo
# (screen size in millimetres), and the layout the agent reported is read
# back from the daemon (spice-vdagentd --status):
#   one           1366x768: exactly 1366 wide (0.22.1 makes it 1360)
#   two           1366x768 1001x777 without positions: left to right
#   four          2560x1440, 800x600, 1366x768, 1001x777 with positions:
#                 a gap, vertical stacking
#   negative      a monitor left of the origin: the layout is moved to 0,0
#   sparse        800x600 off 1366x768: the middle output is switched off
#   physical      1920x1080@527x296: screen mm from the client's DPI
#                 (0.22.1 rejects a config with physical sizes outright)
#   external      outputs switched off and the screen resized with xrandr
#                 by someone else: the agent reports it to the daemon
#   impossible    a layout wider than the largest X screen: refused, the
#                 layout stays, the agent logs why and keeps running
#   monitors.xml  the user's ~/.config/monitors.xml is left alone
#   restart       the agent restarted: a new config still applies exactly,
#                 and modes the first agent made and no longer used are gone
#   flood         another X client floods the agent's window (found by its
#                 name) with ClientMessages for a few seconds
#                 (tests/unit/test-x11 --flood-agent): meanwhile a config
#                 still applies and is reported; afterwards the agent runs
#   no-randr      the agent on an Xvfb started with -extension RANDR: it
#                 still reports the root window as display 0, so the
#                 daemon opens the port and the host sees the guest; a
#                 monitor config is refused with a log line
#
# Run by `make check` (top_srcdir, top_builddir set). Needs root (Xorg with
# the dummy driver); exits 77 when not root or Xorg, its dummy driver,
# Xvfb, xrandr or python3 are missing (without xdpyinfo the millimetre checks are
# skipped and say so). Every wait is bounded; IT_KEEP_TMP=1 keeps
# the temp dir.
# shellcheck disable=SC2016,SC2317  # conditions are eval'd later by it_wait_for
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
it_require_cmds Xorg Xvfb xrandr python3 timeout
# xdpyinfo (x11-utils) only for the screen's millimetres.
HAVE_XDPYINFO=0
command -v xdpyinfo >/dev/null 2>&1 && HAVE_XDPYINFO=1
ag_need_dummy
B=$(cd "$top_builddir" && pwd)
ag_need_built "$B/spice-vdagent" "$B/spice-vdagentd" "$B/vdagentctl"

IT_DEADLINE=200
it_init test-agent-display
T=$IT_TMP

# "OUTPUT WxH+X+Y, ..." for the active outputs, sorted by name.
layout() { it_xrandr_active "$IT_DISPLAY" | tr '\n' ',' | sed 's/,$//; s/,/, /g'; }
layout_is() { [ "$(layout)" = "$1" ]; }
# "W x H" of the screen, from xrandr's "current W x H".
screen() { DISPLAY=$IT_DISPLAY timeout 10 xrandr --query 2>/dev/null |
    sed -n 's/^Screen 0:.*current \([0-9]*\) x \([0-9]*\),.*/\1x\2/p'; }
# The mode sizes of the active outputs: "WxH" per line, from the timings
# of each output's current mode (not its name, not the CRTC), sorted.
active_modes() { DISPLAY=$IT_DISPLAY timeout 10 xrandr --verbose 2>/dev/null |
    awk '/\*current/ { cur = 1; next }
         cur && $1 == "h:" && $2 == "width" { w = $3; next }
         cur && $1 == "v:" && $2 == "height" { print w "x" $3; cur = 0 }' | sort; }
# "WxH" millimetres of the screen, from xdpyinfo.
screen_mm() { DISPLAY=$IT_DISPLAY timeout 10 xdpyinfo 2>/dev/null |
    sed -n 's/.*dimensions: *[0-9]*x[0-9]* pixels (\([0-9]*\)x\([0-9]*\) millimeters).*/\1x\2/p'; }

# The layout the daemon has from the agent (spice-vdagentd --status):
# "WxH: ID WxH+X+Y, ..." for the enabled displays, sorted by id.
daemon_layout() {
    timeout 10 "$B/spice-vdagentd" --status --json -S "$AG_SOCK" 2>/dev/null | python3 -c '
import json, sys
doc = json.load(sys.stdin)
agents = [a for a in doc.get("agents", []) if a.get("active")]
l = agents[0].get("layout") if agents else None
if not l:
    sys.exit(1)
ds = sorted((d for d in l.get("displays", []) if d["width"] and d["height"]), key=lambda d: d["id"])
print("%dx%d: %s" % (l["desktop_width"], l["desktop_height"],
      ", ".join("%d %dx%d+%d+%d" % (d["id"], d["width"], d["height"], d["x"], d["y"]) for d in ds)))'
}
# What daemon_layout should say for an xrandr layout and screen (display
# id N is output DUMMYN without GRAPHICS_DEVICE_INFO).
daemon_want() { echo "$2: ${1//DUMMY/}"; }

# monitors NAME WANT_LAYOUT WANT_SCREEN GEOM...: vdagentctl monitors GEOM...
# exits 0 with "ok": true, then xrandr shows WANT_LAYOUT and WANT_SCREEN.
monitors() {
    local name=$1 want=$2 want_screen=$3
    shift 3
    local out rc
    out=$(ag_ctl --json monitors "$@" 2>"$T/ctl.err")
    rc=$?
    if [ "$rc" != 0 ] || ! grep -q '"ok": *true' <<<"$out"; then
        not_ok "$name: vdagentctl monitors $* exited $rc: $out $(cat "$T/ctl.err")"
        return 1
    fi
    if it_wait_for 15 layout_is "$want" && it_wait_for 5 eval '[ "$(screen)" = "$want_screen" ]'; then
        ok "$name: monitors $* -> [$want], screen $want_screen"
    else
        not_ok "$name: xrandr shows [$(layout)], screen $(screen); expected [$want], screen $want_screen"
        return 1
    fi
    local dwant
    dwant=$(daemon_want "$want" "$want_screen")
    if it_wait_for 10 eval '[ "$(daemon_layout)" = "$dwant" ]'; then
        ok "$name: the daemon has the agent's report [$dwant]"
    else
        not_ok "$name: the daemon has [$(daemon_layout)], expected [$dwant]"
        return 1
    fi
}

export AG_NO_UINPUT=1
# The user's saved monitor layout (0.22.1 deletes it on every config).
mkdir -p "$T/home/.config"
echo '<monitors version="2"><!-- the user'"'"'s own --></monitors>' >"$T/home/.config/monitors.xml"
cp "$T/home/.config/monitors.xml" "$T/monitors.xml.orig"
if ! ag_stack_start xorg; then
    not_ok "connect: the stack came up"
    finish
fi
ok "connect: the host sees the guest agent (it reported its layout to the daemon)"

# ---- one ----
if monitors one "DUMMY0 1366x768+0+0" 1366x768 1366x768; then
    modes=$(active_modes | tr '\n' ' ')
    if [ "$modes" = "1366x768 " ]; then
        ok "one: the mode is exactly 1366x768 (xrandr --verbose)"
    else
        not_ok "one: active mode sizes are [$modes], expected [1366x768]"
    fi
    mm=$(screen_mm)
    # 96 DPI: 1366 * 25.4 / 96 = 361.4, 768 * 25.4 / 96 = 203.2
    if [ "$HAVE_XDPYINFO" = 0 ]; then
        echo "ok - one: screen mm # SKIP xdpyinfo (x11-utils) is not installed"
    elif [ "$mm" = 361x203 ]; then
        ok "one: screen 361x203 mm (96 DPI without physical sizes)"
    else
        not_ok "one: screen is $mm mm, expected 361x203"
    fi
fi

# ---- two, four, negative, sparse ----
monitors two "DUMMY0 1366x768+0+0, DUMMY1 1001x777+1366+0" 2367x777 1366x768 1001x777
monitors four "DUMMY0 2560x1440+0+0, DUMMY1 800x600+2600+0, DUMMY2 1366x768+0+1440, DUMMY3 1001x777+1400+1500" \
    3400x2277 2560x1440+0+0 800x600+2600+0 1366x768+0+1440 1001x777+1400+1500
modes=$(active_modes | tr '\n' ' ')
if [ "$modes" = "1001x777 1366x768 2560x1440 800x600 " ]; then
    ok "four: mode sizes exact [$modes]"
else
    not_ok "four: active mode sizes are [$modes]"
fi
monitors negative "DUMMY0 1024x768+0+0, DUMMY1 1366x768+1024+0" 2390x768 1024x768-1024+0 1366x768+0+0
monitors sparse "DUMMY0 800x600+0+0, DUMMY2 1366x768+800+0" 2166x768 800x600 off 1366x768

# ---- physical size ----
if monitors physical "DUMMY0 1920x1080+0+0" 1920x1080 1920x1080@527x296; then
    if [ "$HAVE_XDPYINFO" = 0 ]; then
        echo "ok - physical: screen mm # SKIP xdpyinfo (x11-utils) is not installed"
    elif it_wait_for 5 eval '[ "$(screen_mm)" = 527x296 ]'; then
        ok "physical: screen 527x296 mm as the client said"
    else
        not_ok "physical: screen is $(screen_mm) mm, expected 527x296"
    fi
fi

# ---- impossible ----
before=$(layout)
out=$(ag_ctl --json monitors 30000x768 30000x768 2>&1)
rc=$?
# The daemon confirms what it forwarded; the agent refuses it.
if it_wait_for 10 grep -q "config refused" "$AG_AGENT_LOG"; then
    ok "impossible: the agent logged the refusal (vdagentctl exit $rc)"
else
    not_ok "impossible: no refusal in the agent's log (vdagentctl exit $rc: $out)"
fi
sleep 1  # the layout must stay as it was: give a wrong apply time to show
if [ "$(layout)" = "$before" ] && it_alive "$AG_AGENT_PID"; then
    ok "impossible: the layout stays [$before], the agent runs on"
else
    not_ok "impossible: layout now [$(layout)], was [$before]; agent alive: $(it_alive "$AG_AGENT_PID" && echo yes || echo no)"
fi

# ---- external changes ----
monitors external-before "DUMMY0 1366x768+0+0, DUMMY1 1001x777+1366+0" 2367x777 1366x768 1001x777
DISPLAY=$IT_DISPLAY timeout 10 xrandr --output DUMMY1 --off
# (xrandr shrinks the screen to what is left on)
want="1366x768: 0 1366x768+0+0"
if it_wait_for 10 eval '[ "$(daemon_layout)" = "$want" ]'; then
    ok "external: xrandr --output DUMMY1 --off reaches the daemon [$want]"
else
    not_ok "external: the daemon has [$(daemon_layout)] after xrandr --off, expected [$want]"
fi
DISPLAY=$IT_DISPLAY timeout 10 xrandr --fb 2000x1000
want="2000x1000: 0 1366x768+0+0"
if it_wait_for 10 eval '[ "$(daemon_layout)" = "$want" ]'; then
    ok "external: xrandr --fb 2000x1000 reaches the daemon [$want]"
else
    not_ok "external: the daemon has [$(daemon_layout)] after xrandr --fb, expected [$want]"
fi

# ---- the user's monitors.xml ----
if cmp -s "$AG_HOME/.config/monitors.xml" "$T/monitors.xml.orig"; then
    ok "monitors.xml: the user's saved layout is untouched after all these configs"
else
    not_ok "monitors.xml: $AG_HOME/.config/monitors.xml was changed or removed"
fi

# ---- restart ----
monitors restart-before "DUMMY0 1001x777+0+0, DUMMY1 1234x789+1001+0" 2235x789 1001x777 1234x789
ag_agent_restart
if ag_wait_guest 30; then
    ok "restart: the host sees the restarted agent"
else
    not_ok "restart: the host does not see the restarted agent"
fi
monitors restart-after "DUMMY0 1366x768+0+0" 1366x768 1366x768
own=$(DISPLAY=$IT_DISPLAY timeout 10 xrandr --verbose 2>/dev/null | grep -c -- '-vdagent ' || true)
if [ "$own" = 1 ]; then
    ok "restart: one mode of ours left (the one in use), the first agent's unused ones deleted"
else
    not_ok "restart: $own modes named *-vdagent exist, expected 1"
    DISPLAY=$IT_DISPLAY xrandr --verbose | grep -- '-vdagent' | sed 's/^/    /'
fi

# ---- flood ----
FLOODER=$B/tests/unit/test-x11
if [ ! -x "$FLOODER" ]; then
    echo "ok - flood # SKIP $FLOODER has not been built (make check builds it)"
else
    DISPLAY=$IT_DISPLAY "$FLOODER" --flood-agent 3 >"$T/flood.log" 2>&1 &
    flood_pid=$!
    it_track flooder "$flood_pid"
    # A config sent while the flood is on (once the flooder has found the
    # agent's window and started sending). It normally applies within a
    # second; the wait is long because on a machine loaded by parallel
    # tests the flooder, the X server and the agent share two cores.
    if ! it_wait_for 10 grep -q "flooding" "$T/flood.log"; then
        not_ok "flood: the flooder did not start: $(cat "$T/flood.log")"
    fi
    want="DUMMY0 1001x777+0+0, DUMMY1 1366x768+1001+0"
    out=$(ag_ctl --json monitors 1001x777 1366x768 2>&1)
    if ! grep -q '"ok": *true' <<<"$out"; then
        not_ok "flood: vdagentctl monitors failed during the flood: $out"
    elif it_wait_for 40 layout_is "$want"; then
        if it_alive "$flood_pid"; then
            ok "flood: a config sent during the flood applied while it went on [$want]"
        else
            ok "flood: a config sent during the flood applied [$want] (after it ended: a loaded machine)"
        fi
    else
        not_ok "flood: xrandr shows [$(layout)], expected [$want]"
    fi
    wait "$flood_pid"
    frc=$?
    if [ "$frc" = 0 ] && grep -q "ClientMessages sent" "$T/flood.log"; then
        ok "flood: $(sed -n 's/^# flooder: \([0-9]\)/\1/p' "$T/flood.log")"
    else
        not_ok "flood: the flooder exited $frc: $(cat "$T/flood.log")"
    fi
    echo "# agent after the flood: $(grep -E '^Vm(HWM|RSS)' "/proc/$AG_AGENT_PID/status" 2>/dev/null | tr -s ' \t\n' ' ')"
    if it_alive "$AG_AGENT_PID" && ag_wait_guest 20; then
        ok "flood: the agent survived it and the host still sees the guest"
    else
        not_ok "flood: the agent is gone or the host lost the guest"
    fi
    monitors flood-after "DUMMY0 1366x768+0+0" 1366x768 1366x768
fi

# ---- no RandR ----
: >"$T/norandr.display"
Xvfb -nolisten tcp -noreset -extension RANDR -screen 0 1152x864x24 -displayfd 9 \
    </dev/null >"$T/norandr-xvfb.log" 2>&1 9>"$T/norandr.display" &
it_track Xvfb-norandr $!
if ! it_wait_for 20 grep -q '^[0-9][0-9]*$' "$T/norandr.display"; then
    not_ok "no-randr: Xvfb -extension RANDR did not start: $(tail -n 5 "$T/norandr-xvfb.log")"
    finish
fi
norandr=":$(head -n 1 "$T/norandr.display")"
if DISPLAY=$norandr timeout 10 xrandr --query >/dev/null 2>&1; then
    not_ok "no-randr: xrandr works on $norandr: RandR is not disabled"
fi
# A new daemon (the port closed until a layout) and the agent on that server.
ag_stop_pid "$AG_AGENT_PID"
ag_daemon_restart
IT_DISPLAY=$norandr
ag_agent_restart
if ag_wait_guest 30; then
    ok "no-randr: the daemon opened the port (the agent reported a layout), the host sees the guest"
else
    not_ok "no-randr: the host does not see the guest"
fi
want="1152x864: 0 1152x864+0+0"
if it_wait_for 10 eval '[ "$(daemon_layout)" = "$want" ]'; then
    ok "no-randr: the daemon has the root window as display 0 [$want]"
else
    not_ok "no-randr: the daemon has [$(daemon_layout)], expected [$want]"
fi
out=$(ag_ctl --json monitors 1024x768 2>&1)
rc=$?
if it_wait_for 10 grep -q "monitor config refused" "$AG_AGENT_LOG" && it_alive "$AG_AGENT_PID"; then
    ok "no-randr: a monitor config is refused with a log line, the agent runs on (vdagentctl exit $rc)"
else
    not_ok "no-randr: no refusal logged or the agent died (vdagentctl exit $rc: $out)"
fi

finish
