#!/bin/bash
# sandbox-tour.sh - the whole system in a sandbox, driven from the host side.
#
# An X server (Xorg with the dummy driver, so RandR can resize), the daemon
# spice-vdagentd on a UNIX socket standing in for the virtio port, the
# session agent spice-vdagent, and `vdagentctl serve` as the host endpoint
# (what spice-server and the client would be). Then a short tour, each step
# printing what the host asked and what the guest shows:
#   1. one monitor at 1366x768 (0.22.1 makes that 1360)
#   2. two monitors side by side, with physical sizes (0.22.1 ignores those)
#   3. clipboard host -> guest (UTF-8), read in the guest with xclip
#   4. clipboard guest -> host, set in the guest with xclip
#   5. a file sent to the guest, checksum compared
#   6. the mouse: moved on the second monitor, read back with xdotool
#   7. a screenshot of the guest screen (PNG)
#
# Usage: sandbox-tour.sh [--flavour ours|debian] [--keep] [--screenshot FILE]
# Run from a build directory (top_builddir) or set top_builddir. Needs
# root (Xorg). Exit status: 0 when every step did what it should.
set -u
export PATH="$PATH:/usr/sbin:/sbin"
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=.}"
FLAVOUR=ours
SHOT=
while [ $# -gt 0 ]; do
    case $1 in
        --flavour) FLAVOUR=$2; shift 2 ;;
        --keep) export IT_KEEP_TMP=1; shift ;;
        --screenshot) SHOT=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 1 ;;
    esac
done
SHOT=${SHOT:-$(cd "$top_builddir" && pwd)/guest-screen.png}

# shellcheck source=../tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"
# shellcheck source=../tests/integration/agent-lib.sh
. "$top_srcdir/tests/integration/agent-lib.sh"

if [ "$(id -u)" != 0 ]; then
    echo "the tour needs root (it starts Xorg with the dummy driver)" >&2
    exit 1
fi
it_init vdagent-tour
IT_DEADLINE=240
AG_FLAVOUR=$FLAVOUR
AG_NO_UINPUT=1     # no /dev/uinput here: the agent moves the X pointer (XTest)
[ "$FLAVOUR" = debian ] && AG_NO_UINPUT=0   # 0.22.1 only knows uinput
T=$IT_TMP
FAILS=0
STEP=0

say()  { printf '%s\n' "$*"; }
step() { STEP=$((STEP + 1)); printf '\n[%d] %s\n' "$STEP" "$*"; }
good() { printf '    ok: %s\n' "$*"; }
bad()  { printf '    FAILED: %s\n' "$*"; FAILS=$((FAILS + 1)); }
host() { printf '    host$ vdagentctl %s\n' "$*"; ag_ctl "$@"; }
layout() { it_xrandr_active "$DISPLAY" | tr '\n' ',' | sed 's/,$//; s/,/, /g'; }
layout_is() { [ "$(layout)" = "$1" ]; }

say "vdagent sandbox tour ($FLAVOUR binaries)"
say "starting Xorg (dummy driver), spice-vdagentd, spice-vdagent and vdagentctl serve..."
if ! ag_stack_start xorg; then
    say "the stack did not come up"
    ag_show_logs
    exit 1
fi
say "X display $DISPLAY, port socket $AG_PORT"
say "guest layout now: $(layout)"
ag_ctl status | sed 's/^/    /'
DISPLAY=$DISPLAY xsetroot -solid '#2d5f8b' 2>/dev/null

step "one monitor, 1366x768"
if host monitors 1366x768 >/dev/null; then
    if it_wait_for 10 layout_is "DUMMY0 1366x768+0+0"; then
        good "guest xrandr: $(layout)"
    else
        bad "guest xrandr: $(layout) (wanted DUMMY0 1366x768+0+0)"
    fi
else
    bad "the monitor config was refused"
fi

step "two monitors side by side, with physical sizes"
if host monitors 1280x800+0+0@286x179 1024x768+1280+0@304x228 >/dev/null; then
    want="DUMMY0 1280x800+0+0, DUMMY1 1024x768+1280+0"
    if it_wait_for 10 layout_is "$want"; then
        good "guest xrandr: $(layout)"
    else
        bad "guest xrandr: $(layout) (wanted $want)"
    fi
else
    bad "the monitor config was refused (REPLY error or no REPLY)"
fi
# something to look at on the screenshot
DISPLAY=$DISPLAY xlogo -geometry 300x300+100+100 >/dev/null 2>&1 &
it_track xlogo $!
DISPLAY=$DISPLAY xclock -geometry 300x300+1500+150 -update 1 >/dev/null 2>&1 &
it_track xclock $!

step "clipboard, host -> guest"
TEXT='Grüße aus dem Host — 你好 ✓'
printf '%s' "$TEXT" | host clipboard set >/dev/null &
setter=$!
got=
for _ in $(seq 1 50); do
    got=$(DISPLAY=$DISPLAY timeout 5 xclip -o -selection clipboard 2>/dev/null) && [ "$got" = "$TEXT" ] && break
    sleep 0.2
done
wait "$setter" 2>/dev/null
if [ "$got" = "$TEXT" ]; then
    good "guest\$ xclip -o -selection clipboard -> $got"
else
    bad "guest pasted [$got], host offered [$TEXT]"
fi

step "clipboard, guest -> host"
GTEXT="copied in the guest at $(date +%T) — ça marche"
printf '%s' "$GTEXT" | DISPLAY=$DISPLAY xclip -i -selection clipboard -loops 10 2>/dev/null &
it_track xclip $!
say "    guest\$ xclip -i -selection clipboard <<< '$GTEXT'"
got=
for _ in $(seq 1 50); do
    got=$(ag_ctl clipboard get 2>/dev/null) && [ "$got" = "$GTEXT" ] && break
    sleep 0.2
done
if [ "$got" = "$GTEXT" ]; then
    good "host\$ vdagentctl clipboard get -> $got"
else
    bad "host got [$got], guest copied [$GTEXT]"
fi

step "a file, host -> guest"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$T/holiday photos.tar"
sum=$(sha256sum <"$T/holiday photos.tar" | cut -d' ' -f1)
if host send-file "$T/holiday photos.tar" >/dev/null; then
    if it_wait_for 10 test -f "$AG_SAVE_DIR/holiday photos.tar"; then
        gsum=$(sha256sum <"$AG_SAVE_DIR/holiday photos.tar" | cut -d' ' -f1)
        if [ "$gsum" = "$sum" ]; then
            good "8 MiB in the guest's save dir as 'holiday photos.tar', sha256 ${sum:0:16}... matches"
        else
            bad "sha256 differs: host $sum guest $gsum"
        fi
    else
        bad "no file in $AG_SAVE_DIR"
    fi
else
    bad "the transfer failed"
fi

step "the mouse, on the second monitor"
if host mouse move 200 300 --display 1 >/dev/null; then
    if [ "$AG_NO_UINPUT" = 1 ]; then
        where=
        for _ in $(seq 1 50); do
            where=$(DISPLAY=$DISPLAY xdotool getmouselocation 2>/dev/null | cut -d' ' -f1,2)
            [ "$where" = "x:1480 y:300" ] && break
            sleep 0.1
        done
        if [ "$where" = "x:1480 y:300" ]; then
            good "guest pointer at $where (display 1 starts at x=1280)"
        else
            bad "guest pointer at [$where], wanted x:1480 y:300"
        fi
    else
        if it_wait_for 5 grep -q "ABS_X" "$AG_EVENTS"; then
            good "the daemon wrote input events: $(grep -c ABS_X "$AG_EVENTS") ABS_X"
        else
            bad "no input events from the daemon"
        fi
    fi
else
    bad "mouse move was refused"
fi

step "screenshot of the guest screen"
sleep 1
if DISPLAY=$DISPLAY xwd -root -silent >"$T/screen.xwd" 2>/dev/null &&
    size=$(python3 "$top_srcdir/tools/xwd2png.py" "$T/screen.xwd" "$SHOT"); then
    good "$SHOT ($size)"
else
    bad "xwd or the PNG conversion failed"
fi

printf '\n'
if [ "$FAILS" -eq 0 ]; then
    say "tour complete: $STEP steps, all as expected"
else
    say "tour complete: $FAILS of $STEP steps failed"
    ag_show_logs
fi
[ "$FAILS" -eq 0 ]
