#!/bin/bash
# test-vdagentctl-cli.sh - vdagentctl against vdp-fake-guest, no X needed.
#
# Each fake guest connects (like spice-vdagentd -s PATH) to the socket that
# `vdagentctl --listen` listens on, reconnecting after every one-shot run,
# and logs every message it decodes to a file we grep. Covered: --help and
# usage errors, status (text and --json), monitors, mouse, display and
# audio messages, clipboard both ways (binary-safe), send-file with
# checksums, watch, serve with forwarded commands and raw JSON requests on
# its control socket, and the exit statuses 2 (no guest), 3 (capability),
# 4 (timeout) and 5 (refused).
#
# Automake test protocol: exit 0 pass, 1 fail, 77 skip.
set -u

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
# Absolute: some steps run from another directory.
top_builddir=$(cd "$top_builddir" && pwd) || exit 1
CTL=$top_builddir/vdagentctl
FG=$top_builddir/tests/tools/vdp-fake-guest

for bin in "$CTL" "$FG"; do
    if [ ! -x "$bin" ]; then
        echo "SKIP: $bin is not built"
        exit 77
    fi
done
if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: python3 is needed to check JSON output"
    exit 77
fi

# A short directory: UNIX socket paths are limited to 107 bytes.
T=$(mktemp -d /tmp/vdctl-cli.XXXXXX) || exit 1
PORT=$T/port
GUEST_PID=
BG_PIDS=()
PASS=0
FAIL=0

cleanup() {
    for p in "${BG_PIDS[@]}" $GUEST_PID; do
        kill "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() {   # check NAME COMMAND...: passes if the command succeeds
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# ctl ARGS...: run vdagentctl on the test port (listening), output in
# $T/out, errors in $T/err, exit status in $RC.
ctl() {
    "$CTL" -p "$PORT" --listen -t 5 "$@" >"$T/out" 2>"$T/err"
    RC=$?
}
# ctl_in INPUT ARGS...: the same with INPUT (a file) on stdin.
ctl_in() {
    local input=$1
    shift
    "$CTL" -p "$PORT" --listen -t 5 "$@" <"$input" >"$T/out" 2>"$T/err"
    RC=$?
}
expect_rc() {   # expect_rc NAME WANT
    if [ "$RC" = "$2" ]; then
        ok "$1 (exit $RC)"
    else
        not_ok "$1: exit $RC, expected $2; stdout: $(head -c 400 "$T/out"); stderr: $(head -c 400 "$T/err")"
    fi
}

# JSON checks: jq PYTHON-EXPRESSION over the object `o` parsed from $T/out.
json_check() {
    local name=$1 expr=$2
    if python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]).read().splitlines() if l.strip()]
o = json.loads(lines[-1])
sys.exit(0 if eval(sys.argv[2]) else 1)' "$T/out" "$expr" 2>"$T/pyerr"; then
        ok "$name"
    else
        not_ok "$name: $expr on $(head -c 600 "$T/out") $(cat "$T/pyerr")"
    fi
}

start_guest() {   # start_guest ARGS...: a fresh fake guest, log in $T/guest.log
    stop_guest
    : >"$T/guest.log"
    "$FG" -s "$PORT" "$@" >"$T/guest.log" 2>&1 &
    GUEST_PID=$!
}
stop_guest() {   # the guest ends cleanly on SIGTERM (and sanitizer-clean)
    if [ -n "$GUEST_PID" ]; then
        kill "$GUEST_PID" 2>/dev/null
        wait "$GUEST_PID" 2>/dev/null
        local rc=$?
        [ $rc = 0 ] || not_ok "the fake guest exited with $rc: $(grep -v '^[-<=]' "$T/guest.log" | tail -n 5)"
        GUEST_PID=
    fi
}
mark() { MARK=$(wc -l <"$T/guest.log"); }
# wait_log PATTERN [SECONDS]: the guest logged PATTERN (grep -E) after the mark.
wait_log() {
    local pattern=$1 limit=${2:-5} i=0
    while [ $i -lt $((limit * 20)) ]; do
        if tail -n +$((MARK + 1)) "$T/guest.log" | grep -qE -- "$pattern"; then
            return 0
        fi
        sleep 0.05
        i=$((i + 1))
    done
    echo "  (guest log after line $MARK has no \"$pattern\":)"
    tail -n +$((MARK + 1)) "$T/guest.log" | grep -v FILE_XFER_DATA | tail -n 15 | sed 's/^/    /'
    return 1
}
count_log() { tail -n +$((MARK + 1)) "$T/guest.log" | grep -cE -- "$1"; }
wait_file() {   # wait_file PATH [SECONDS]
    local i=0
    while [ $i -lt $((${2:-5} * 20)) ]; do
        [ -e "$1" ] && return 0
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

echo "# vdagentctl CLI tests in $T"

# ---- help and usage ----
"$CTL" --help >"$T/out" 2>&1
RC=$?
expect_rc "vdagentctl --help" 0
check "--help lists the commands" grep -q "send-file FILE" "$T/out"
"$CTL" -p "$PORT" mouse move --help >"$T/out" 2>&1
RC=$?
expect_rc "vdagentctl mouse move --help" 0
"$FG" --help >/dev/null 2>&1
RC=$?
expect_rc "vdp-fake-guest --help" 0
env -u VDAGENTCTL_PORT "$CTL" status >"$T/out" 2>"$T/err"
RC=$?
expect_rc "no port given" 1
check "no port: the message says how to give one" grep -q "VDAGENTCTL_PORT" "$T/err"
VDAGENTCTL_PORT=$PORT "$CTL" --listen -t 0.3 status >"$T/out" 2>"$T/err"
RC=$?
expect_rc "port from \$VDAGENTCTL_PORT (nobody there)" 2
ctl frobnicate
expect_rc "unknown command" 1
ctl monitors 1920y1080
expect_rc "bad geometry" 1
check "bad geometry: the message quotes it" grep -q '1920y1080' "$T/err"
ctl mouse move 10
expect_rc "mouse move without Y" 1
ctl volume playback 70000
expect_rc "volume level out of range" 1
ctl --json mouse click sideways
expect_rc "unknown button (--json)" 1
json_check "usage error as JSON" 'o["ok"] is False and o["exit"] == 1 and "BUTTON" in o["error"]'
ctl -t 0 status
expect_rc "timeout 0 refused" 1
ctl send-file "$T/does-not-exist"
expect_rc "send-file of a missing file" 1

# ---- no guest ----
ctl -t 0.5 status
expect_rc "status without a guest" 2
check "no guest: the message names the port and the time" grep -q "no guest agent connected to $PORT within 0.5 s" "$T/err"
ctl -t 0.5 --json status
expect_rc "status --json without a guest" 2
json_check "no guest as JSON" 'o["ok"] is False and o["exit"] == 2 and o["connected"] is False'

# ---- a guest with everything ----
mkdir -p "$T/save"
start_guest --save-dir "$T/save" --clipboard-out "$T/clip.out"

ctl status
expect_rc "status" 0
check "status says connected" grep -q "guest agent: *connected" "$T/out"
check "status lists capabilities in words" grep -q "monitors-config" "$T/out"
ctl --json status
expect_rc "status --json" 0
json_check "status JSON: connected, port, capabilities" \
    "o['connected'] is True and o['port'] == '$PORT' and 'mouse-state' in o['capabilities'] and 'clipboard-grab-serial' in o['capabilities']"
json_check "status JSON: guest_caps_hex matches the capability list" \
    "int(o['guest_caps_hex'], 16) & (1 << 1) and int(o['guest_caps_hex'], 16) & (1 << 17) and not int(o['guest_caps_hex'], 16) & (1 << 4)"
ctl status --json
json_check "global options after the command" "o['connected'] is True"

mark
ctl monitors 1920x1080
expect_rc "monitors 1920x1080" 0
check "the guest got one monitor" wait_log "MONITORS_CONFIG count=1 flags=0x0 1920x1080\+0\+0@32"
check "the guest replied" wait_log "REPLY type=MONITORS_CONFIG error=success"
check "monitors prints the REPLY" grep -q "the guest applied the monitor configuration: 1920x1080+0+0" "$T/out"
mark
ctl --json monitors 1280x1024+0+0 1024x768+1280+0
expect_rc "two monitors with positions" 0
json_check "monitors JSON: confirmed, two monitors" "o['confirmed'] is True and len(o['monitors']) == 2 and o['monitors'][1]['x'] == 1280"
check "USE_POS and both positions reached the guest" wait_log "count=2 flags=0x1 1280x1024\+0\+0@32 1024x768\+1280\+0@32"
mark
ctl monitors 800x600@300x200 off
expect_rc "physical size and a disabled monitor" 0
check "PHYSICAL_SIZE and the disabled entry reached the guest" wait_log "count=2 flags=0x2 800x600\+0\+0@32\(300x200mm\) 0x0\+0\+0@0"

mark
ctl mouse move 10 20
expect_rc "mouse move" 0
check "MOUSE_STATE 10,20" wait_log "MOUSE_STATE x=10 y=20 buttons=0x0 display=0"
mark
ctl mouse move 30 40 --display 1 --buttons left,right
expect_rc "mouse move with buttons and display" 0
check "buttons held and display 1" wait_log "MOUSE_STATE x=30 y=40 buttons=0xa display=1"
mark
ctl mouse click right --at 7 8
expect_rc "mouse click right --at 7 8" 0
check "press then release at 7,8" wait_log "MOUSE_STATE x=7 y=8 buttons=0x8 display=0"
check "release after the press" wait_log "MOUSE_STATE x=7 y=8 buttons=0x0 display=0"
mark
ctl mouse scroll up 3
expect_rc "mouse scroll up 3" 0
wait_log "MOUSE_STATE x=0 y=0 buttons=0x0" >/dev/null
sleep 0.2
check "three wheel-up presses" test "$(count_log 'buttons=0x10 ')" = 3

mark
ctl volume playback --mute 1000 2000
expect_rc "volume" 0
check "AUDIO_VOLUME_SYNC reached the guest" wait_log "AUDIO_VOLUME_SYNC playback mute=1 volume=1000,2000"
mark
ctl device-info 0:0:0:pci/0000/02.0 0:1:1:pci/0000/02.0
expect_rc "device-info" 0
check "GRAPHICS_DEVICE_INFO reached the guest" wait_log "GRAPHICS_DEVICE_INFO count=2 0.0=pci/0000/02.0#0 0.1=pci/0000/02.0#1"
ctl display-config --disable-wallpaper
expect_rc "display-config: spice-vdagent's caps have no display-config" 3
check "capability error names the capability" grep -q "does not support display-config" "$T/err"

# clipboard host -> guest (the guest fetches on GRAB)
printf 'from the host: \xc3\xbc\nsecond line' >"$T/clip.in"
rm -f "$T/clip.out"
mark
ctl_in "$T/clip.in" clipboard set
expect_rc "clipboard set" 0
check "the guest fetched it (message)" grep -q "the guest fetched the clipboard offer" "$T/out"
check "the guest got exactly the data" wait_file "$T/clip.out"
check "clipboard data identical" cmp -s "$T/clip.in" "$T/clip.out"
check "the one-shot run released its offer" wait_log "CLIPBOARD_RELEASE sel=0"
head -c 300 /dev/urandom >"$T/img.bin"
ctl_in "$T/img.bin" --json -t 1 clipboard set --type png
expect_rc "png offer not fetched (the guest only takes text)" 0
json_check "clipboard set JSON: not fetched" "o['outcome'] == 'not fetched' and o['type'] == 'png'"
ctl_in "$T/img.bin" -t 1 clipboard set --type png --wait-served
expect_rc "--wait-served and nobody fetches: timeout" 4
printf '\xff\xfe' >"$T/bad.txt"
ctl_in "$T/bad.txt" clipboard set
expect_rc "clipboard set of text that is not UTF-8" 1
ctl_in /dev/null clipboard set
expect_rc "clipboard set of nothing" 1

# send-file
head -c 3145728 /dev/urandom >"$T/big.bin"
printf 'small\n' >"$T/small.txt"
printf '' >"$T/empty"
cp "$T/small.txt" "$T/with space.txt"
mark
ctl send-file "$T/big.bin" "$T/small.txt" "$T/with space.txt"
expect_rc "send-file of three files" 0
check "send-file reports throughput" grep -qE "sent 3 files \(3.[0-9] MB\) in [0-9.]+ s, .*/s" "$T/out"
check "big.bin identical" cmp -s "$T/big.bin" "$T/save/big.bin"
check "small.txt identical" cmp -s "$T/small.txt" "$T/save/small.txt"
check "a name with a space" cmp -s "$T/with space.txt" "$T/save/with space.txt"
check "the guest checked sizes" wait_log "saved $T/save/big.bin size=3145728"
mark
(cd "$T" && "$CTL" -p "$PORT" --listen -t 5 --json send-file small.txt >"$T/out" 2>"$T/err")
RC=$?
expect_rc "send-file with a relative path, --json" 0
json_check "send-file JSON: bytes and a rate" "o['bytes'] == 6 and o['bytes_per_second'] >= 0 and o['files'][0]['name'] == 'small.txt'"
check "the second copy got a new name" cmp -s "$T/small.txt" "$T/save/small.txt (1)"

if command -v script >/dev/null 2>&1 && script -qec true /dev/null >/dev/null 2>&1; then
    # stderr on a terminal: the progress bar
    head -c 8388608 /dev/urandom >"$T/bar.bin"
    script -qec "'$CTL' -p '$PORT' --listen -t 5 send-file '$T/bar.bin'" /dev/null >"$T/tty.out" 2>&1
    check "a progress bar on a terminal, ending at 100%" grep -q "100% 8.4 MB / 8.4 MB" "$T/tty.out"
    check "the bar is cleared before the summary" grep -qa "sent 1 file (8.4 MB)" "$T/tty.out"
    check "file sent from a terminal identical" cmp -s "$T/bar.bin" "$T/save/bar.bin"
else
    echo "# no pseudo-terminal (script(1)): progress bar not checked"
fi
"$CTL" -p "$PORT" --listen -t 5 send-file "$T/small.txt" >"$T/out" 2>"$T/err"
check "no progress bar when stderr is not a terminal" test ! -s "$T/err"

mark
ctl disconnect
expect_rc "disconnect" 0
check "CLIENT_DISCONNECTED reached the guest" wait_log "<- CLIENT_DISCONNECTED"

# ---- clipboard guest -> host ----
printf 'guest clip \xe2\x82\xac\nline 2\n' >"$T/guest-clip.txt"
start_guest --clipboard-text "$(cat "$T/guest-clip.txt")"
"$CTL" -p "$PORT" --listen -t 5 clipboard get >"$T/got.bin" 2>"$T/err"
RC=$?
expect_rc "clipboard get" 0
# $(...) dropped the final newline of the text given to the guest
head -c -1 "$T/guest-clip.txt" >"$T/guest-clip.want"
check "clipboard get wrote the guest's bytes exactly" cmp -s "$T/guest-clip.want" "$T/got.bin"
ctl --json clipboard get --type text
expect_rc "clipboard get --json" 0
json_check "clipboard get JSON: text and base64 agree" \
    "o['type'] == 'text' and o['text'] == open('$T/guest-clip.want', encoding='utf-8').read() and __import__('base64').b64decode(o['data_base64']) == open('$T/guest-clip.want','rb').read()"
ctl -t 1 clipboard get --selection primary
expect_rc "clipboard get of an empty selection: timeout" 4

# ---- watch ----
"$CTL" -p "$PORT" --listen --json watch >"$T/watch.json" 2>"$T/watch.err" &
WATCH=$!
BG_PIDS+=("$WATCH")
sleep 1
kill -INT "$WATCH"
wait "$WATCH"
RC=$?
expect_rc "watch ends with 0 on SIGINT" 0
cp "$T/watch.json" "$T/out"
check "watch --json: one object per message" python3 -c '
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
types = [e.get("type") for e in ev if e.get("event") == "message"]
sys.exit(0 if "ANNOUNCE_CAPABILITIES" in types and "CLIPBOARD_GRAB" in types and any(e.get("event") == "connected" for e in ev) else 1)' "$T/watch.json"
"$CTL" -p "$PORT" --listen watch >"$T/watch.txt" 2>/dev/null &
WATCH=$!
BG_PIDS+=("$WATCH")
sleep 1
kill -TERM "$WATCH"
wait "$WATCH"
RC=$?
expect_rc "watch ends with 0 on SIGTERM" 0
check "watch in words: timestamped message lines" grep -qE "^[0-9:.]+ CLIPBOARD_GRAB sel=0 serial=[0-9]+ types=utf8-text" "$T/watch.txt"

# ---- exit statuses from guests that say no ----
start_guest --no-cap monitors-config
ctl monitors 1024x768
expect_rc "monitors without monitors-config" 3
check "capability message" grep -q "does not support monitors-config" "$T/err"
start_guest --no-cap sparse-monitors-config
ctl monitors 1024x768 off
expect_rc "a disabled monitor without sparse-monitors-config" 3
check "sparse capability named" grep -q "sparse-monitors-config" "$T/err"
start_guest --no-reply
ctl -t 1 monitors 1024x768
expect_rc "no REPLY within the timeout" 4
start_guest --reply-error
ctl --json monitors 1024x768
expect_rc "REPLY error" 5
json_check "refusal as JSON" "o['ok'] is False and o['exit'] == 5 and 'refused' in o['error']"
mkdir -p "$T/save2"
start_guest --save-dir "$T/save2" --free-space 1000
ctl send-file "$T/big.bin"
expect_rc "not enough space" 5
check "refusal names the file and the free space" grep -qE "big.bin.*not enough space.*1.0 kB free" "$T/err"
start_guest --file-xfer-disabled
ctl send-file "$T/small.txt"
expect_rc "file transfer disabled in the guest" 3

# ---- serve ----
rm -rf "$T/save" "$T/clip.out"
mkdir -p "$T/save"
start_guest --save-dir "$T/save" --clipboard-out "$T/clip.out"
"$CTL" -p "$PORT" --listen -t 5 serve >"$T/serve.log" 2>"$T/serve.err" &
SERVE=$!
BG_PIDS+=("$SERVE")
check "serve creates its control socket" wait_file "$PORT.ctl"
check "serve says where it listens" grep -q "control socket $PORT.ctl" "$T/serve.log"
"$CTL" -p "$PORT" --listen -t 5 serve >"$T/out" 2>"$T/err"
RC=$?
expect_rc "a second serve for the same port" 6
check "second serve: the message says why" grep -q "already running" "$T/err"

ctl status
expect_rc "status through serve" 0
check "status names the serve" grep -q "served by: *vdagentctl serve" "$T/out"
ctl --json status
json_check "status JSON through serve" "o['serve'] is True and o['connected'] is True"
mark
ctl mouse move 11 22
expect_rc "mouse move through serve" 0
check "MOUSE_STATE through serve" wait_log "MOUSE_STATE x=11 y=22 buttons=0x0"
mark
ctl mouse click middle
expect_rc "mouse click through serve (last position)" 0
check "click at the position the serve remembers" wait_log "MOUSE_STATE x=11 y=22 buttons=0x4"
mark
ctl mouse move 33 44 --display 1
expect_rc "mouse move on display 1 through serve" 0
mark
ctl mouse click left
expect_rc "mouse click through serve after a move on display 1" 0
check "the click stays on the remembered display" wait_log "MOUSE_STATE x=33 y=44 buttons=0x2 display=1"
mark
ctl mouse click left --at 5 6
expect_rc "mouse click with --at and no --display" 0
check "an explicit position without --display is on display 0" wait_log "MOUSE_STATE x=5 y=6 buttons=0x2 display=0"
printf 'kept by serve' >"$T/clip2.in"
ctl_in "$T/clip2.in" --json clipboard set
expect_rc "clipboard set through serve" 0
json_check "serve keeps the offer" "o['outcome'] == 'offered' and o['kept'] is True"
check "the guest fetched from the serve" wait_file "$T/clip.out"
check "clipboard data through serve identical" cmp -s "$T/clip2.in" "$T/clip.out"
rm -f "$T/clip.out"
printf 'waited for' >"$T/clip3.in"
ctl_in "$T/clip3.in" --json clipboard set --wait-served
expect_rc "clipboard set --wait-served through serve" 0
json_check "--wait-served: fetched" "o['outcome'] == 'fetched' and o['served'] == 1"
check "the waited-for data arrived" cmp -s "$T/clip3.in" "$T/clip.out"
mark
(cd "$T" && "$CTL" -p "$PORT" -t 5 send-file big.bin >"$T/out" 2>"$T/err")
RC=$?
expect_rc "send-file through serve (relative path)" 0
check "file through serve identical" cmp -s "$T/big.bin" "$T/save/big.bin"

"$CTL" -p "$PORT" --json watch >"$T/swatch.json" 2>"$T/swatch.err" &
SWATCH=$!
BG_PIDS+=("$SWATCH")
sleep 0.3
pids=()
for i in 1 2 3 4 5; do
    "$CTL" -p "$PORT" -t 5 monitors "$((1000 + i))x700" >"$T/par$i.out" 2>&1 &
    pids+=($!)
done
par_ok=1
for p in "${pids[@]}"; do
    wait "$p" || par_ok=0
done
check "five monitors commands at once through serve" test $par_ok = 1
sleep 0.3
kill -INT "$SWATCH"
wait "$SWATCH"
RC=$?
expect_rc "watch through serve ends with 0" 0
check "watch through serve saw the five REPLYs" test "$(grep -c '"type":"REPLY"' "$T/swatch.json")" = 5

# Raw JSON lines on the control socket.
python3 - "$PORT.ctl" >"$T/raw.out" 2>&1 <<'EOF'
import base64, json, socket, sys

def session(lines):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sys.argv[1])
    f = s.makefile("rwb")
    answers = []
    for line in lines:
        f.write(line.encode() + b"\n")
        f.flush()
        while True:
            got = json.loads(f.readline())
            if "ok" in got:
                answers.append(got)
                break
    s.close()
    return answers

checks = []
a = session([json.dumps({"command": "status"}),
             json.dumps({"command": "monitors", "args": ["640x480"], "timeout": 5}),
             json.dumps({"command": "clipboard", "args": ["set"],
                         "stdin_base64": base64.b64encode(b"raw").decode()}),
             "this is not json",
             json.dumps({"command": "frobnicate"}),
             json.dumps({"command": "clipboard", "args": ["set"]}),
             json.dumps({"command": "status", "bogus": 1}),
             json.dumps({"command": "serve"}),
             json.dumps({"command": "clipboard", "args": ["set"], "stdin_base64": "!!!"})])
checks.append(("status", a[0]["ok"] and a[0]["connected"]))
checks.append(("monitors", a[1]["ok"] and a[1]["confirmed"]))
checks.append(("clipboard set", a[2]["ok"] and a[2]["outcome"] == "offered"))
for i, name in [(3, "not JSON"), (4, "unknown command"), (5, "no stdin"), (6, "unknown key"),
                (7, "serve via control"), (8, "bad base64")]:
    checks.append((name + " -> exit 1", a[i]["ok"] is False and a[i]["exit"] == 1))
bad = [n for n, good in checks if not good]
print(json.dumps(a))
sys.exit(1 if bad else 0)
EOF
RC=$?
expect_rc "raw JSON requests on the control socket" 0
[ $RC = 0 ] || cat "$T/raw.out"
check "the raw clipboard offer reached the guest" sh -c "sleep 0.3; test \"\$(cat '$T/clip.out')\" = raw"

# A request line of many tiny JSON values: refused before json-c builds
# them (it spends tens of bytes per value), so the serve's memory does not
# grow by many times the line's size.
python3 - "$PORT.ctl" "$SERVE" >"$T/many.out" 2>&1 <<'MANY_EOF'
import json, socket, sys

def hwm_kib(pid):
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0

before = hwm_kib(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
n = 4 * 1024 * 1024
s.sendall(b'{"command": "status", "args": [' + b"0," * (n - 1) + b"0]}\n")
f = s.makefile("rb")
got = json.loads(f.readline())
s.close()
grown = hwm_kib(sys.argv[2]) - before
print(json.dumps(got), "grown", grown, "KiB")
ok = got["ok"] is False and got["exit"] == 1 and "JSON values" in got["error"] and grown < 96 * 1024
sys.exit(0 if ok else 1)
MANY_EOF
RC=$?
expect_rc "a request of millions of JSON values is refused cheaply" 0
[ $RC = 0 ] || cat "$T/many.out"

kill -TERM "$SERVE"
wait "$SERVE"
RC=$?
expect_rc "serve ends with 0 on SIGTERM" 0
check "serve removed its control socket" test ! -e "$PORT.ctl"
ctl -t 3 status
expect_rc "after serve: one-shot again (guest reconnects)" 0


# ---- a control socket that another user listens on ----
# The .ctl path sits next to the port, maybe in a directory others can
# write to: a forwarding run must not hand its clipboard data to someone
# else's listener (nor believe its answers).
AS_NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
EVIL_PY=
for py in /usr/bin/python3 /usr/local/bin/python3; do
    if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 && [ -x "$py" ] &&
        $AS_NOBODY "$py" -c pass 2>/dev/null; then
        EVIL_PY=$py
        break
    fi
done
if [ -n "$EVIL_PY" ]; then
    chmod 0711 "$T"
    mkdir -m 0777 "$T/shared"
    EVIL_PORT=$T/shared/port
    $AS_NOBODY "$EVIL_PY" - "$EVIL_PORT.ctl" "$T/shared/got" \
        >"$T/evil.log" 2>&1 <<'EVIL_EOF' &
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(4)
while True:
    c, _ = s.accept()
    line = c.makefile("rb").readline()
    with open(sys.argv[2], "ab") as f:
        f.write(line)
    c.sendall(json.dumps({"ok": True, "exit": 0, "command": "clipboard", "action": "set",
                          "selection": "clipboard", "type": "text", "size": 6, "served": 1,
                          "outcome": "fetched", "kept": True}).encode() + b"\n")
    c.close()
EVIL_EOF
    BG_PIDS+=("$!")
    wait_file "$EVIL_PORT.ctl"
    printf 'secret' >"$T/secret.in"
    "$CTL" -p "$EVIL_PORT" --listen -t 0.5 clipboard set <"$T/secret.in" >"$T/out" 2>"$T/err"
    RC=$?
    expect_rc "a control socket of another user is not trusted" 6
    check "the refusal names the other user" grep -q "user id 65534" "$T/err"
    check "the other user got nothing" sh -c "sleep 0.2; ! grep -q c2VjcmV0 '$T/shared/got' 2>/dev/null"
else
    ok "# SKIP control socket of another user (needs root, setpriv and a python3 user 65534 can run)"
fi

# ---- connect mode: a QEMU-like chardev socket in front of the guest ----
# A relay plays QEMU: it listens on the chardev socket (vdagentctl connects,
# as to -chardev socket,server=on) and on the guest's side (the fake guest
# connects); bytes go through while both are there, else are dropped.
stop_guest
QEMU_SOCK=$T/qemu.sock
python3 - "$QEMU_SOCK" "$PORT" >"$T/relay.log" 2>&1 <<'RELAY_EOF' &
import os, selectors, socket, sys
sel = selectors.DefaultSelector()
conn = {"host": None, "guest": None}
for side, path in (("host", sys.argv[1]), ("guest", sys.argv[2])):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    sel.register(s, selectors.EVENT_READ, ("listen", side))
while True:
    for key, _ in sel.select():
        kind, side = key.data
        if kind == "listen":
            c, _ = key.fileobj.accept()
            if conn[side]:
                c.close()   # one at a time, like a chardev
                continue
            conn[side] = c
            sel.register(c, selectors.EVENT_READ, ("conn", side))
            continue
        data = conn[side].recv(65536)
        if not data:
            sel.unregister(conn[side])
            conn[side].close()
            conn[side] = None
            continue
        other = conn["guest" if side == "host" else "host"]
        if other:
            other.sendall(data)
RELAY_EOF
RELAY=$!
BG_PIDS+=("$RELAY")
wait_file "$QEMU_SOCK"
"$CTL" -p "$QEMU_SOCK" -t 0.5 status >"$T/out" 2>"$T/err"
RC=$?
expect_rc "connect mode: the chardev is open but no agent answers" 2
check "no agent: the message says the port is open" grep -q "port is open" "$T/err"
start_guest
"$CTL" -p "$QEMU_SOCK" -t 5 --json status >"$T/out" 2>"$T/err"
RC=$?
expect_rc "connect mode: status" 0
json_check "connect mode: connected" "o['connected'] is True and o['port'] == '$QEMU_SOCK'"
mark
"$CTL" -p "$QEMU_SOCK" -t 5 mouse move 99 98 >"$T/out" 2>"$T/err"
RC=$?
expect_rc "connect mode: mouse move" 0
check "connect mode: MOUSE_STATE reached the guest" wait_log "MOUSE_STATE x=99 y=98"
mark
"$CTL" -p "$QEMU_SOCK" -t 5 monitors 1600x900 >"$T/out" 2>"$T/err"
RC=$?
expect_rc "connect mode: monitors" 0
check "connect mode: REPLY" wait_log "REPLY type=MONITORS_CONFIG error=success"

stop_guest
echo "# $PASS passed, $FAIL failed"
[ $FAIL = 0 ]
