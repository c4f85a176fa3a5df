#!/bin/bash
# shellcheck disable=SC2016,SC2317  # eval strings expand later; helpers run through check/eval
# test-agent-files.sh - files sent with `vdagentctl send-file` through the
# real spice-vdagentd into our spice-vdagent (Xvfb: files need no RandR):
#   batch        empty, 1-byte, 64 KiB + 1 and 5 MiB random files in one
#                batch: same sha256 in the save dir, nothing else there
#   collisions   the same batch again: "name (1).ext"; a third time:
#                "name (2).ext"; the originals unchanged
#   odd-names    a name with spaces, quotes, ';', '$(...)' and a dotfile
#                are saved literally (no shell anywhere); nothing else
#                created
#   symlink      a symlink planted in the save dir under the name of the
#                next file is not followed: the file lands beside it
#   cancel       a 512 MiB transfer: once its file exists the agent is
#                stopped (SIGSTOP: the daemon and host back up behind it),
#                the sending vdagentctl is killed (the host cancels), the
#                agent is continued: the partial file is removed, the
#                agent logs the cancel, a later transfer works
#   sigterm      the agent gets SIGTERM in the middle of a 512 MiB file:
#                it exits 0 and removes the partial file
#   full-disk    a 1 MiB tmpfs as save dir: a 2 MiB file is refused "not
#                enough space" with nothing left behind; 600 KiB fits;
#                another 600 KiB does not (the first one's space counted)
#   open-dir     -o takes any integer as 0.22.1: -o 2 shows the directory
#                after a batch (an xdg-open stand-in first in PATH records
#                its arguments), -o 0 does not, -o -1 decides by the
#                desktop (Xvfb, no window manager showing icons: it does);
#                -o abc is refused (exit 255)
#
# Run by `make check`. Needs root; exits 77 when not root or Xvfb is
# missing. The full-disk part is reported as skipped where tmpfs cannot be
# mounted. Every wait is bounded; IT_KEEP_TMP=1 keeps the temp dir.
set -u
export PATH="$PATH:/usr/sbin:/sbin"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=.}"
here=$(cd "$top_srcdir/tests/integration" && pwd) || exit 99
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=agent-lib.sh
. "$here/agent-lib.sh"

ag_need_root "spice-vdagentd checks sessions; tmpfs"
it_require_cmds Xvfb timeout sha256sum truncate
IT_DEADLINE=150
it_init test-agent-files
T=$IT_TMP

if ! ag_stack_start xvfb; then
    not_ok "the stack came up"
    finish
fi
SAVE=$AG_SAVE_DIR

same() { # same SRC DST: both exist with the same sha256
    [ -f "$2" ] && [ ! -L "$2" ] &&
        [ "$(sha256sum <"$1" | cut -d' ' -f1)" = "$(sha256sum <"$2" | cut -d' ' -f1)" ]
}
count() { find "$1" -mindepth 1 -maxdepth 1 | wc -l; }

# ---- a batch, then collisions ----

mkdir -p "$T/src"
: >"$T/src/empty.txt"
printf x >"$T/src/one.bin"
head -c 65537 /dev/urandom >"$T/src/odd size.dat"
head -c $((5 * 1024 * 1024)) /dev/urandom >"$T/src/big.tar.gz"
files=("$T/src/empty.txt" "$T/src/one.bin" "$T/src/odd size.dat" "$T/src/big.tar.gz")
out=$(ag_ctl --json send-file "${files[@]}" 2>&1)
check "batch: send-file succeeded" grep -q '"ok":true' <<<"$out"
for f in "${files[@]}"; do
    check "batch: $(basename "$f") arrived intact" same "$f" "$SAVE/$(basename "$f")"
done
check "batch: nothing else in the save dir" test "$(count "$SAVE")" = 4

for n in 1 2; do
    out=$(ag_ctl --json send-file "${files[@]}" 2>&1)
    check "collisions: batch #$((n + 1)) succeeded" grep -q '"ok":true' <<<"$out"
    check "collisions: empty ($n).txt" same "$T/src/empty.txt" "$SAVE/empty ($n).txt"
    check "collisions: one ($n).bin" same "$T/src/one.bin" "$SAVE/one ($n).bin"
    check "collisions: odd size ($n).dat" same "$T/src/odd size.dat" "$SAVE/odd size ($n).dat"
    check "collisions: big.tar ($n).gz" same "$T/src/big.tar.gz" "$SAVE/big.tar ($n).gz"
done
check "collisions: the originals are unchanged" same "$T/src/big.tar.gz" "$SAVE/big.tar.gz"
check "collisions: 12 files in all" test "$(count "$SAVE")" = 12

# ---- odd names ----

odd=("$T/src/it's \"quoted\" ; \$(touch pwned) \`id\`.txt" "$T/src/.hidden")
for f in "${odd[@]}"; do head -c 1000 /dev/urandom >"$f"; done
out=$(ag_ctl --json send-file "${odd[@]}" 2>&1)
check "odd-names: send-file succeeded" grep -q '"ok":true' <<<"$out"
for f in "${odd[@]}"; do
    check "odd-names: saved literally: $(basename "$f")" same "$f" "$SAVE/$(basename "$f")"
done
check "odd-names: no command ran" test ! -e "$SAVE/pwned" -a ! -e pwned -a ! -e "$AG_HOME/pwned"

# ---- a symlink planted at the target name ----

mkdir -p "$T/victim"
printf keep >"$T/victim/target"
ln -s "$T/victim/target" "$SAVE/planted.txt"
ln -s "$T/victim/new" "$SAVE/dangling.txt"
printf new1 >"$T/src/planted.txt"
printf new2 >"$T/src/dangling.txt"
out=$(ag_ctl --json send-file "$T/src/planted.txt" "$T/src/dangling.txt" 2>&1)
check "symlink: send-file succeeded" grep -q '"ok":true' <<<"$out"
check "symlink: the link target is unchanged" test "$(cat "$T/victim/target")" = keep
check "symlink: nothing created through a dangling link" test ! -e "$T/victim/new"
check "symlink: the file landed beside the link" same "$T/src/planted.txt" "$SAVE/planted (1).txt"
check "symlink: ... both of them" same "$T/src/dangling.txt" "$SAVE/dangling (1).txt"
check "symlink: the links are still links" test -L "$SAVE/planted.txt" -a -L "$SAVE/dangling.txt"

# ---- cancel ----

truncate -s 512M "$T/src/huge.img"
before=$(count "$SAVE")
# vdagentctl itself in the background (not through a function or
# timeout), so that its pid is the one killed below.
"$AG_CTL" -p "$AG_PORT" --json send-file "$T/src/huge.img" >"$T/cancel.out" 2>&1 &
ctl_pid=$!
it_track send-file "$ctl_pid"
if it_wait_for 20 test -e "$SAVE/huge.img"; then
    kill -STOP "$AG_AGENT_PID"
    kill -TERM "$ctl_pid"
    wait "$ctl_pid" 2>/dev/null
    # The host cancels when its client goes; give the CANCELLED a moment to
    # queue behind the data, then let the agent drain everything.
    it_wait_for 3 false
    kill -CONT "$AG_AGENT_PID"
    check "cancel: the partial file is removed" it_wait_for 30 test ! -e "$SAVE/huge.img"
    check "cancel: the agent logged the cancel" \
        it_wait_for 10 grep -q "file transfer [0-9]*: cancelled by the client" "$AG_AGENT_LOG"
    check "cancel: no other file appeared" test "$(count "$SAVE")" = "$before"
    check "cancel: the host did not report success" eval '! grep -q "\"ok\":true" "$T/cancel.out"'
else
    kill -CONT "$AG_AGENT_PID" 2>/dev/null
    not_ok "cancel: the transfer started (its file appeared)"
fi
rm -f "$T/src/huge.img"
out=$(ag_ctl --json send-file "$T/src/one.bin" 2>&1)
check "cancel: a later transfer works" grep -q '"ok":true' <<<"$out"

# ---- the agent stopped mid-transfer ----

truncate -s 512M "$T/src/huge2.img"
"$AG_CTL" -p "$AG_PORT" --json send-file "$T/src/huge2.img" >"$T/stop.out" 2>&1 &
ctl_pid=$!
it_track send-file2 "$ctl_pid"
if it_wait_for 20 test -e "$SAVE/huge2.img"; then
    kill -STOP "$AG_AGENT_PID"
    kill -TERM "$AG_AGENT_PID"
    kill -CONT "$AG_AGENT_PID"
    check "sigterm: the agent exits mid-transfer" it_wait_for 20 eval '! it_alive "$AG_AGENT_PID"'
    wait "$AG_AGENT_PID" 2>/dev/null
    rc=$?
    check "sigterm: with status 0" test "$rc" = 0
    check "sigterm: the partial file is removed" test ! -e "$SAVE/huge2.img"
    check "sigterm: the host was not told success" \
        it_wait_for 20 eval '! it_alive "$ctl_pid" && ! grep -q "\"ok\":true" "$T/stop.out"'
else
    not_ok "sigterm: the transfer started (its file appeared)"
fi
kill "$ctl_pid" 2>/dev/null
rm -f "$T/src/huge2.img"

# ---- a full disk ----

mkdir -p "$T/small"
if mount -t tmpfs -o size=1m,mode=0755 vdagent-test "$T/small" 2>/dev/null; then
    AG_SAVE_DIR=$T/small
    ag_agent_restart
    it_wait_for 15 grep -q "connected to spice-vdagentd" "$AG_AGENT_LOG"
    ag_wait_guest 30
    head -c $((2 * 1024 * 1024)) /dev/urandom >"$T/src/two.bin"
    head -c $((600 * 1024)) /dev/urandom >"$T/src/six-a.bin"
    head -c $((600 * 1024)) /dev/urandom >"$T/src/six-b.bin"
    out=$(ag_ctl send-file "$T/src/two.bin" 2>&1)
    rc=$?
    check "full-disk: 2 MiB into 1 MiB is refused (exit 5)" test "$rc" = 5
    check "full-disk: ... as not enough space" grep -qi "not enough space" <<<"$out"
    check "full-disk: nothing left behind" test "$(count "$T/small")" = 0
    out=$(ag_ctl --json send-file "$T/src/six-a.bin" 2>&1)
    check "full-disk: 600 KiB fits" same "$T/src/six-a.bin" "$T/small/six-a.bin"
    out=$(ag_ctl send-file "$T/src/six-b.bin" 2>&1)
    rc=$?
    check "full-disk: another 600 KiB does not (exit 5, not enough space)" \
        eval '[ "$rc" = 5 ] && grep -qi "not enough space" <<<"$out"'
    check "full-disk: only the first file is there" test "$(count "$T/small")" = 1
    ag_stop_pid "$AG_AGENT_PID"
    umount "$T/small"
else
    skip "full-disk: cannot mount a tmpfs here"
fi

# ---- -o: show the directory after a batch ----

mkdir -p "$T/bin"
cat >"$T/bin/xdg-open" <<SH
#!/bin/sh
printf '%s\n' "\$*" >>"$T/xdg-open.calls"
SH
chmod +x "$T/bin/xdg-open"
agent_with_o() { # agent_with_o VALUE: a new agent with -o VALUE, connected
    ag_stop_pid "$AG_AGENT_PID"
    AG_RESTARTS=$((AG_RESTARTS + 1))
    it_spawn "vdagent$AG_RESTARTS" env PATH="$T/bin:$PATH" DISPLAY="$IT_DISPLAY" HOME="$AG_HOME" \
        XDG_CONFIG_HOME="$AG_HOME/.config" XDG_RUNTIME_DIR="$AG_HOME/run" \
        DBUS_SESSION_BUS_ADDRESS="$AG_BUS" NO_AT_BRIDGE=1 GIO_USE_VFS=local \
        "$AG_AGENT_BIN" -x -s "$AG_PORT" -S "$AG_SOCK" -f "$SAVE" -o "$1"
    AG_AGENT_PID=$IT_LAST_PID
    AG_AGENT_LOG=$IT_TMP/vdagent$AG_RESTARTS.log
    it_wait_for 15 grep -q "connected to spice-vdagentd" "$AG_AGENT_LOG" && ag_wait_guest 30
}
opened() { [ "$(cat "$T/xdg-open.calls" 2>/dev/null)" = "$SAVE" ]; }
for v in 2 -1 0; do
    rm -f "$T/xdg-open.calls"
    if ! agent_with_o "$v"; then
        not_ok "open-dir: an agent with -o $v connects"
        continue
    fi
    out=$(ag_ctl --json send-file "$T/src/one.bin" 2>&1)
    check "open-dir: -o $v: send-file succeeded" grep -q '"ok":true' <<<"$out"
    if [ "$v" = 0 ]; then
        # xdg-open would run right after the SUCCESS the host has seen;
        # give it a generous moment to show up anyway.
        it_wait_for 3 opened
        check "open-dir: -o 0: the directory is not shown" test ! -e "$T/xdg-open.calls"
    else
        check "open-dir: -o $v: the directory is shown (xdg-open DIR)" it_wait_for 15 opened
    fi
done
ag_stop_pid "$AG_AGENT_PID"
timeout 10 "$AG_AGENT_BIN" -x -o abc -s "$T/no-such-port" >"$T/o-abc.txt" 2>&1
rc=$?
check "open-dir: -o abc exits 255" test "$rc" = 255
check "open-dir: ... with Invalid arguments" grep -q "Invalid arguments" "$T/o-abc.txt"
finish
