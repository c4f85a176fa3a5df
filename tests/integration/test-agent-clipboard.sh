#!/bin/bash
# test-agent-clipboard.sh - the clipboard end to end: vdagentctl as the
# host, the real spice-vdagentd and our spice-vdagent under Xvfb, xclip as
# the guest's applications:
#   text       UTF-8 in several scripts (CJK, Arabic, emoji, mixed lines)
#              both ways on CLIPBOARD and PRIMARY; host text pasted as
#              STRING comes out as ISO-8859-1
#   image      a PNG both ways (bytes unchanged)
#   big        64 MiB both ways (INCR on the X side, streamed through the
#              daemon), same sha256; the times are printed
#   reannounce a guest copy made while no client is connected is announced
#              to the client that connects next
#
# Run by `make check`. Needs root (spice-vdagentd checks sessions); exits
# 77 when not root or Xvfb/xclip are missing. Every wait is bounded;
# IT_KEEP_TMP=1 keeps the temp dir.
# shellcheck disable=SC2317  # the check functions are called through it_wait_for
set -u
export PATH="$PATH:/usr/sbin:/sbin"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=.}"
here=$(cd "$top_srcdir/tests/integration" && pwd) || exit 99
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=agent-lib.sh
. "$here/agent-lib.sh"

ag_need_root "spice-vdagentd checks sessions"
it_require_cmds Xvfb xclip timeout sha256sum cmp
IT_DEADLINE=240
it_init test-agent-clipboard
T=$IT_TMP
sum() { sha256sum <"$1" | cut -d' ' -f1; }

if ! ag_stack_start xvfb; then
    not_ok "the stack came up"
    finish
fi

# xclip -o into a file, bounded (xclip writes while it runs: a file, not
# a pipe that nobody reads).
paste_to() { # paste_to OUT SELECTION [TARGET]
    timeout -k 2 "$(it_budget 60)" xclip -o -selection "$2" ${3:+-t "$3"} >"$1" 2>"$1.err"
}

# pasted_is FILE SELECTION TARGET: a paste of TARGET gives FILE's bytes.
pasted_is() {
    paste_to "$T/pasted" "$2" "$3" && cmp -s "$1" "$T/pasted"
}

# A guest application owning a selection: xclip -i in the foreground,
# tracked, so that the cleanup stops it.
copy_pid=
guest_copy() { # guest_copy FILE SELECTION [TARGET]
    [ -n "$copy_pid" ] && ag_stop_pid "$copy_pid"
    xclip -quiet -i -selection "$2" ${3:+-t "$3"} <"$1" >/dev/null 2>&1 &
    copy_pid=$!
    it_track xclip "$copy_pid"
}

# The host reads the guest's selection until it equals FILE (the offer of
# the previous owner may still be what the host sees for a moment).
host_gets() { # host_gets FILE SELECTION TYPE
    ag_ctl clipboard get --selection "$2" --type "$3" >"$T/got" 2>"$T/got.err" &&
        cmp -s "$1" "$T/got"
}

# ---- text ----

texts=(
    "plain ASCII text"
    "中文 日本語のテキスト 한국어"
    "مرحبا بالعالم"
    "emoji 😀🎉👍🏽 and a ZWJ sequence 👩‍💻"
    $'Ελληνικά, русский, עברית, हिन्दी\nsecond line\n'
)
for sel in clipboard primary; do
    i=0
    for text in "${texts[@]}"; do
        i=$((i + 1))
        printf '%s' "$text" >"$T/text$i"
        printf '%s' "$text" | ag_ctl clipboard set --selection "$sel" --type text >/dev/null 2>"$T/set.err"
        if it_wait_for 10 pasted_is "$T/text$i" "$sel" UTF8_STRING; then
            ok "text host->guest ($sel): ${text%%$'\n'*}"
        else
            not_ok "text host->guest ($sel): ${text%%$'\n'*} (got: $(head -c 100 "$T/pasted"); $(cat "$T/set.err"))"
        fi
        guest_copy "$T/text$i" "$sel" UTF8_STRING
        check "text guest->host ($sel): ${text%%$'\n'*}" \
            it_wait_for 15 host_gets "$T/text$i" "$sel" text
    done
done

printf '%s' "café naïve ÿ € 中" | ag_ctl clipboard set --type text >/dev/null
printf 'caf\351 na\357ve \377 ? ?' >"$T/latin1"
check "text host->guest as STRING: ISO-8859-1, '?' for what it lacks" \
    it_wait_for 10 pasted_is "$T/latin1" clipboard STRING
printf 'Gr\374\337e' >"$T/latin1-in"
printf 'Grüße' >"$T/latin1-utf8"
guest_copy "$T/latin1-in" clipboard STRING
check "text guest->host from a STRING-only application: converted to UTF-8" \
    it_wait_for 15 host_gets "$T/latin1-utf8" clipboard text

# ---- image ----

printf '\211PNG\r\n\032\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\10\6\0\0\0\37\25\304\211\0\0\0\rIDATx\234c\370\317\300\360\37\0\5\0\1\377\211\231=\35\0\0\0\0IEND\256B`\202' >"$T/img.png"
ag_ctl clipboard set --type png <"$T/img.png" >/dev/null
check "image host->guest: image/png unchanged" \
    it_wait_for 10 pasted_is "$T/img.png" clipboard image/png
guest_copy "$T/img.png" clipboard image/png
check "image guest->host: png unchanged" it_wait_for 15 host_gets "$T/img.png" clipboard png

# ---- 64 MiB both ways ----

head -c $((64 * 1024 * 1024)) /dev/urandom >"$T/big"
want=$(sum "$T/big")

# (until the host sees the new owner, a get returns the previous image)
big_get() {
    ag_ctl -t 60 clipboard get --type png >"$T/big.got" 2>"$T/big.err" &&
        test "$(stat -c %s "$T/big.got")" = 67108864
}
guest_copy "$T/big" clipboard image/png
t0=$(now)
if it_wait_for 60 big_get; then
    secs=$(elapsed "$t0")
    check "big guest->host: 64 MiB, same sha256 ($secs s)" test "$(sum "$T/big.got")" = "$want"
else
    not_ok "big guest->host: 64 MiB arrived ($(stat -c %s "$T/big.got" 2>/dev/null) bytes; $(head -c 300 "$T/big.err"))"
fi
rm -f "$T/big.got"

# The serve takes at most 48 MiB on stdin: for 64 MiB the one-shot
# vdagentctl listens on the port itself (the daemon reconnects to it).
# First the guest application goes away: otherwise the agent announces its
# selection to the newly connected host, which withdraws its own offer.
ag_stop_pid "$copy_pid"
check "the guest's selection is released when its owner exits" \
    it_wait_for 15 eval '! ag_ctl -t 1 clipboard get --type png >/dev/null 2>&1'
ag_stop_pid "$AG_SERVE_PID"
rm -f "$AG_PORT" "$AG_PORT.ctl"
"$AG_CTL" -p "$AG_PORT" --listen -t 120 clipboard set --type png <"$T/big" >"$T/bigset.out" 2>&1 &
set_pid=$!
it_track big-set "$set_pid"
# the guest offers png for the host once the agent owns the selection
have_png() { xclip -o -selection clipboard -t TARGETS 2>/dev/null | grep -qx image/png; }
if it_wait_for 60 have_png; then
    t0=$(now)
    paste_to "$T/big.pasted" clipboard image/png
    secs=$(elapsed "$t0")
    check "big host->guest: 64 MiB through INCR, same sha256 ($secs s)" \
        test "$(sum "$T/big.pasted")" = "$want"
else
    not_ok "big host->guest: the host's offer reached the guest ($(head -c 300 "$T/bigset.out"))"
fi
ag_stop_pid "$set_pid"

# ---- a new client is told what the guest holds ----

# A guest application copies while no client is connected; the client
# that connects next must be able to paste it without another copy.
printf 'copied while no client was there' >"$T/offline"
guest_copy "$T/offline" clipboard UTF8_STRING
it_wait_for 10 pasted_is "$T/offline" clipboard UTF8_STRING
rm -f "$AG_PORT" "$AG_PORT.ctl"
if ag_host_serve && ag_wait_guest 30; then
    check "a newly connected client gets the guest's selection announced" \
        it_wait_for 15 host_gets "$T/offline" clipboard text
else
    not_ok "the host reconnected"
fi
check "the agent is still running" it_alive "$AG_AGENT_PID"
finish
