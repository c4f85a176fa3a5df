#!/bin/bash
# bench-agents.sh - our spice-vdagentd + spice-vdagent against Debian's
# spice-vdagent 0.22.1, same machine, same run, same host endpoint
# (vdagentctl serve), under Xorg with the dummy driver.
#
# For each flavour the whole guest stack is started once and these are
# measured REPEAT times (median reported):
#   file-64M       vdagentctl send-file of 64 MiB until the host has the
#                  final status (the file is checked by sha256 once)
#   clip-h2g-16M   host offers 16 MiB of text; time until `xclip -o` in the
#                  guest has read all of it
#   clip-g2h-16M   `xclip -i` owns 16 MiB in the guest; time until
#                  `vdagentctl clipboard get` has all of it
#   monitors       vdagentctl monitors WxH (alternating two sizes that both
#                  agents can show exactly: multiples of 8, no physical
#                  size) until xrandr in the guest shows it
#   agent-peak     the session agent's peak RSS (VmHWM) after all of that
#   daemon-peak    the daemon's peak RSS
# and prints one table with the ratio debian/ours (above 1: ours is faster
# or smaller).
#
# Usage: bench/bench-agents.sh [REPEAT]   (default 3; run as root from a
# build directory, or set top_builddir). Not a test: it prints numbers.
set -u
export PATH="$PATH:/usr/sbin:/sbin"
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=.}"
REPEAT=${1:-3}
# shellcheck source=../tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"
# shellcheck source=../tests/integration/agent-lib.sh
. "$top_srcdir/tests/integration/agent-lib.sh"
ag_need_root "Xorg with the dummy driver"
ag_need_dummy
it_require_cmds Xorg xrandr xclip python3 sha256sum

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }
peak_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo "-"; }
# The real process behind a pid started through env/unshare wrappers.
real_pid() {
    local pid=$1 name=$2 c
    for c in "$pid" $(pgrep -P "$pid" 2>/dev/null); do
        if [ "$(cat "/proc/$c/comm" 2>/dev/null)" = "$name" ]; then
            echo "$c"
            return
        fi
        for cc in $(pgrep -P "$c" 2>/dev/null); do
            [ "$(cat "/proc/$cc/comm" 2>/dev/null)" = "$name" ] && { echo "$cc"; return; }
        done
    done
    echo "$pid"
}

declare -A R

bench_flavour() {
    local fl=$1 i t0 sum
    (
        AG_FLAVOUR=$fl
        IT_DEADLINE=600
        it_init "bench-$fl"
        T=$IT_TMP
        if ! ag_stack_start xorg; then
            echo "$fl: the stack did not come up" >&2
            exit 1
        fi
        head -c $((64 * 1024 * 1024)) /dev/urandom >"$T/file64"
        sum=$(sha256sum <"$T/file64" | cut -d' ' -f1)
        python3 -c 'import sys; sys.stdout.write(("vdagent benchmark text line\n" * 621000)[:16777216])' >"$T/text16"
        for ((i = 1; i <= REPEAT; i++)); do
            rm -f "$AG_SAVE_DIR"/file64*
            t0=$(now)
            ag_ctl send-file "$T/file64" >/dev/null 2>&1 || echo "$fl: send-file failed" >&2
            echo "file-64M $(since "$t0")"
            if [ "$i" = 1 ] && [ "$(sha256sum <"$AG_SAVE_DIR/file64" | cut -d' ' -f1)" != "$sum" ]; then
                echo "$fl: the received file differs" >&2
            fi

            ag_ctl clipboard set <"$T/text16" >/dev/null 2>&1 &
            local setter=$!
            sleep 0.5   # the offer reaches the guest
            t0=$(now)
            timeout 60 xclip -o -selection clipboard >"$T/got" 2>/dev/null
            echo "clip-h2g-16M $(since "$t0")"
            cmp -s "$T/got" "$T/text16" || echo "$fl: host->guest clipboard differs" >&2
            kill "$setter" 2>/dev/null; wait "$setter" 2>/dev/null

            xclip -i -selection clipboard -loops 1 <"$T/text16" 2>/dev/null &
            local owner=$!
            sleep 0.5   # the grab reaches the host
            t0=$(now)
            ag_ctl -t 60 clipboard get >"$T/got" 2>/dev/null
            echo "clip-g2h-16M $(since "$t0")"
            cmp -s "$T/got" "$T/text16" || echo "$fl: guest->host clipboard differs" >&2
            kill "$owner" 2>/dev/null; wait "$owner" 2>/dev/null

            local geo want
            if [ $((i % 2)) = 1 ]; then geo=1280x800; else geo=1024x768; fi
            want="DUMMY0 $geo+0+0"
            t0=$(now)
            ag_ctl monitors "$geo" >/dev/null 2>&1
            local end=$((SECONDS + 20))
            while [ "$(it_xrandr_active "$DISPLAY" | head -n 1)" != "$want" ] && [ $SECONDS -lt $end ]; do
                sleep 0.02
            done
            echo "monitors $(since "$t0")"
        done
        echo "agent-peak $(peak_kib "$(real_pid "$AG_AGENT_PID" spice-vdagent)")"
        echo "daemon-peak $(peak_kib "$(real_pid "$AG_DAEMON_PID" spice-vdagentd)")"
    ) >"/tmp/bench-$fl.$$" 2>"/tmp/bench-$fl.$$.err"
    local k
    for k in file-64M clip-h2g-16M clip-g2h-16M monitors agent-peak daemon-peak; do
        R[$fl,$k]=$(awk -v k="$k" '$1 == k { print $2 }' "/tmp/bench-$fl.$$" | median)
    done
    if [ -s "/tmp/bench-$fl.$$.err" ]; then
        sed "s/^/  ($fl) /" "/tmp/bench-$fl.$$.err" | grep -v '^  ([a-z]*) $' | head -n 20 >&2
    fi
    rm -f "/tmp/bench-$fl.$$" "/tmp/bench-$fl.$$.err"
}

echo "vdagent benchmark: ours vs Debian's spice-vdagent 0.22.1, median of $REPEAT, Xorg dummy"
bench_flavour ours
bench_flavour debian

printf '\n%-14s %14s %14s %10s\n' "what" "ours" "0.22.1" "0.22.1/ours"
for k in file-64M clip-h2g-16M clip-g2h-16M monitors agent-peak daemon-peak; do
    unit=s
    case $k in *-peak) unit=KiB ;; esac
    o=${R[ours,$k]:--}
    d=${R[debian,$k]:--}
    ratio=$(awk -v o="$o" -v d="$d" 'BEGIN { if (o + 0 > 0 && d + 0 > 0) printf "%.2f", d / o; else print "-" }')
    printf '%-14s %10s %-3s %10s %-3s %10s\n' "$k" "$o" "$unit" "$d" "$unit" "$ratio"
done
