#!/bin/bash
# test-data-files.sh - the packaging files in data/ and the daemon's man
# page: systemd-analyze verify (system and user units; skipped without
# systemd-analyze), desktop-file-validate (skipped without it), groff
# warnings on the man page (skipped without groff), and consistency checks
# that need nothing: the units, the tmpfiles line, the autostart entry and
# the man page name the paths the daemon uses, and the udev rule matches the
# agent's virtio port and nothing else.
#
# Automake test protocol: exit 0 pass, 1 fail.
set -u

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
top_srcdir=$(cd "$top_srcdir" && pwd) || exit 1
top_builddir=$(cd "$top_builddir" && pwd) || exit 1
DATA=$top_srcdir/data
MAN=$top_srcdir/man/spice-vdagentd.8
DAEMON_SRC=$top_srcdir/src/vdagentd/vdagentd.c
AGENT_MAN=$top_srcdir/man/spice-vdagent.1
AGENT_SRC=$top_srcdir/src/vdagent/vdagent.c

PASS=0
FAIL=0
SKIP=0
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
skip() { SKIP=$((SKIP + 1)); echo "skip - $*"; }
check() { # check DESCRIPTION CMD...
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}

T=$(mktemp -d "${TMPDIR:-/tmp}/data-files.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

# key FILE SECTION KEY: the values of KEY in [SECTION], one per line.
key() {
    awk -v sec="[$2]" -v k="$3" '
        /^[ \t]*[#;]/ { next }
        /^\[/ { cur = $0; next }
        cur == sec {
            i = index($0, "=")
            if (i > 0 && substr($0, 1, i - 1) == k) print substr($0, i + 1)
        }' "$1"
}

# The daemon's compiled-in defaults.
define() { sed -n "s/^#define $1 \"\\(.*\\)\"$/\\1/p" "$DAEMON_SRC"; }
SOCK=$(define DEFAULT_SOCKET_PATH)
PORT=$(define DEFAULT_PORT_PATH)
PIDFILE=$(define PIDFILE)
UINPUT=$(define DEFAULT_UINPUT_PATH)

SERVICE=$DATA/spice-vdagentd.service
SOCKET=$DATA/spice-vdagentd.socket
RULE=$DATA/70-spice-vdagentd.rules
TMPFILES=$DATA/spice-vdagentd.conf
DESKTOP=$DATA/spice-vdagent.desktop
USER_UNIT=$DATA/spice-vdagent.service

for f in "$SERVICE" "$SOCKET" "$RULE" "$TMPFILES" "$DESKTOP" "$USER_UNIT" "$MAN" "$DAEMON_SRC" \
    "$AGENT_MAN" "$AGENT_SRC"; do
    check "exists: ${f#"$top_srcdir"/}" test -s "$f"
done
check "daemon defaults found in vdagentd.c" test -n "$SOCK" -a -n "$PORT" -a -n "$PIDFILE" -a -n "$UINPUT"

# ---- the system units ----

check "socket: ListenStream is the daemon's default socket ($SOCK)" \
    test "$(key "$SOCKET" Socket ListenStream)" = "$SOCK"
check "socket: SocketMode=0666 (every user's agent connects)" \
    test "$(key "$SOCKET" Socket SocketMode)" = "0666"
check "socket: Service= names spice-vdagentd.service" \
    test "$(key "$SOCKET" Socket Service)" = "spice-vdagentd.service"
exec_start=$(key "$SERVICE" Service ExecStart)
check "service: ExecStart runs /usr/sbin/spice-vdagentd -x" \
    test "${exec_start%% \$*}" = "/usr/sbin/spice-vdagentd -x"
check "service: extra arguments from SPICE_VDAGENTD_EXTRA_ARGS" \
    test "${exec_start#* -x }" = "\$SPICE_VDAGENTD_EXTRA_ARGS"
check "service: Type=notify" test "$(key "$SERVICE" Service Type)" = notify
check "service: Restart=on-failure" test "$(key "$SERVICE" Service Restart)" = on-failure
check "service: requires and follows its socket" \
    test "$(key "$SERVICE" Unit Requires)$(key "$SERVICE" Unit After)" = \
    "spice-vdagentd.socketspice-vdagentd.socket"
check "service: may write the socket directory $(dirname "$SOCK")" \
    test "$(key "$SERVICE" Service ReadWritePaths)" = "-$(dirname "$SOCK")"
check "service: uinput device allowed ($UINPUT)" \
    grep -qx "DeviceAllow=$UINPUT rw" "$SERVICE"
check "service: virtio port devices allowed" \
    grep -qx "DeviceAllow=char-virtio-portsdev rw" "$SERVICE"
check "service: EnvironmentFile for /etc/default and /etc/sysconfig" \
    test "$(key "$SERVICE" Service EnvironmentFile | tr '\n' ' ')" = \
    "-/etc/default/spice-vdagentd -/etc/sysconfig/spice-vdagentd "

# ---- tmpfiles ----

tmp_line=$(grep -v '^[[:space:]]*#' "$TMPFILES" | grep -v '^[[:space:]]*$')
read -r t_type t_path t_mode t_user t_group _ <<<"$tmp_line"
check "tmpfiles: one 'd' line" test "$(printf '%s\n' "$tmp_line" | wc -l)" = 1 -a "$t_type" = d
check "tmpfiles: creates the socket's directory" test "$t_path" = "$(dirname "$SOCK")"
check "tmpfiles: ... which is also the pid file's" test "$t_path" = "$(dirname "$PIDFILE")"
check "tmpfiles: 0755 root root" test "$t_mode $t_user $t_group" = "0755 root root"

# ---- session agent: user unit and autostart ----

user_exec=$(key "$USER_UNIT" Service ExecStart)
agent_bin=${user_exec%% *}
check "user unit: ExecStart runs /usr/bin/spice-vdagent in the foreground" \
    test "$user_exec" = "/usr/bin/spice-vdagent -x"
check "user unit: PartOf/Requisite/After graphical-session.target" \
    test "$(key "$USER_UNIT" Unit PartOf) $(key "$USER_UNIT" Unit Requisite) $(key "$USER_UNIT" Unit After)" = \
    "graphical-session.target graphical-session.target graphical-session.target"
check "user unit: Restart=on-failure" test "$(key "$USER_UNIT" Service Restart)" = on-failure
d_exec=$(key "$DESKTOP" "Desktop Entry" Exec)
check "autostart: TryExec is the agent binary" \
    test "$(key "$DESKTOP" "Desktop Entry" TryExec)" = "$agent_bin"
check "autostart: starts the user unit first" \
    grep -q "systemctl --user --quiet start $(basename "$USER_UNIT")" <<<"$d_exec"
check "autostart: falls back to running the agent itself" \
    grep -q "|| exec $agent_bin\"\$" <<<"$d_exec"
check "autostart: hidden, early in GNOME's startup" \
    test "$(key "$DESKTOP" "Desktop Entry" NoDisplay)/$(key "$DESKTOP" "Desktop Entry" X-GNOME-Autostart-Phase)" = \
    "true/WindowManager"

# The fallback logic of the Exec line itself, with a fake systemctl: the
# agent runs directly only when systemctl fails.
mkdir -p "$T/bin"
cat >"$T/bin/systemctl" <<'EOF'
#!/bin/sh
echo "systemctl $*" >>"$CALLS"
exit "$SYSTEMCTL_RC"
EOF
chmod +x "$T/bin/systemctl"
inner=$(sed -n 's/^\/bin\/sh -c "\(.*\)"$/\1/p' <<<"$d_exec")
inner=${inner//$agent_bin/echo agent-started >>\"\$CALLS\"; exit 0; :}
for rc in 0 1; do
    : >"$T/calls"
    PATH="$T/bin:$PATH" CALLS="$T/calls" SYSTEMCTL_RC=$rc /bin/sh -c "$inner"
    want="systemctl --user --quiet start spice-vdagent.service"
    [ "$rc" = 1 ] && want="$want
agent-started"
    check "autostart: Exec with systemctl exiting $rc" test "$(cat "$T/calls")" = "$want"
done

# ---- udev ----

rule=$(grep -v '^[[:space:]]*#' "$RULE" | grep -v '^[[:space:]]*$')
check "udev: one rule" test "$(printf '%s\n' "$rule" | wc -l)" = 1
check "udev: pulls in the socket unit" grep -q 'ENV{SYSTEMD_WANTS}+="spice-vdagentd.socket"' <<<"$rule"
check "udev: tags the device for systemd" grep -q 'TAG+="systemd"' <<<"$rule"
check "udev: the port's name is the daemon's default port's" \
    test "virtio-ports/$(sed -n 's/.*ATTR{name}=="\([^"]*\)".*/\1/p' <<<"$rule")" = \
    "${PORT#/dev/}"

# A small evaluator for the rule's match keys (==, != with globs) against
# device descriptions "ACTION SUBSYSTEM NAME".
rule_matches() {
    local action=$1 subsystem=$2 name=$3 part k op v actual
    local IFS=','
    for part in $rule; do
        part=${part# }
        [[ $part =~ ^([A-Za-z_]+(\{[a-z_]+\})?)(==|!=)\"(.*)\"$ ]] || continue
        k=${BASH_REMATCH[1]} op=${BASH_REMATCH[3]} v=${BASH_REMATCH[4]}
        case $k in
        ACTION) actual=$action ;;
        SUBSYSTEM) actual=$subsystem ;;
        'ATTR{name}') actual=$name ;;
        *) echo "unknown match key $k" >&2; return 2 ;;
        esac
        # shellcheck disable=SC2053  # glob match on purpose
        if [ "$op" = "==" ]; then [[ $actual == $v ]] || return 1; else [[ $actual != $v ]] || return 1; fi
    done
    return 0
}
check "udev: matches the port being added" rule_matches add virtio-ports com.redhat.spice.0
check "udev: matches it on change (property kept)" rule_matches change virtio-ports com.redhat.spice.0
check "udev: not on remove" eval '! rule_matches remove virtio-ports com.redhat.spice.0'
check "udev: not the QEMU guest agent's port" eval '! rule_matches add virtio-ports org.qemu.guest_agent.0'
check "udev: not a tty of the same name" eval '! rule_matches add tty com.redhat.spice.0'
if command -v udevadm >/dev/null && udevadm verify --help >/dev/null 2>&1; then
    check "udevadm verify" udevadm verify --no-summary "$RULE"
else
    skip "udevadm verify (needs systemd >= 254)"
fi

# ---- systemd-analyze verify ----

# The units name /usr paths; verify needs the binaries to exist, so copies
# point at this build's daemon (or /bin/true) and at /bin/true for the agent.
daemon_bin=$top_builddir/spice-vdagentd
[ -x "$daemon_bin" ] || daemon_bin=/bin/true
verify() { # verify DIR UNIT... (with --user if VERIFY_USER=1)
    local dir=$1 out
    shift
    local args=(verify --man=no)
    [ "${VERIFY_USER:-0}" = 1 ] && args=(--user "${args[@]}")
    out=$(cd "$dir" && XDG_RUNTIME_DIR=$T/run SYSTEMD_LOG_LEVEL=notice systemd-analyze "${args[@]}" "$@" 2>&1)
    local rc=$?
    # Only what concerns our files counts (verify also reports on the
    # host's own units); a warning is a failure too.
    local ours
    ours=$(grep -E "spice-vdagent|$dir|Unknown|Invalid|Failed to|not executable" <<<"$out")
    if [ $rc -ne 0 ] || [ -n "$ours" ]; then
        printf '%s\n' "$out" | sed 's/^/    /'
        return 1
    fi
    return 0
}
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$T/sys" "$T/user" "$T/run" && chmod 700 "$T/run"
    sed "s|/usr/sbin/spice-vdagentd|$daemon_bin|" "$SERVICE" >"$T/sys/spice-vdagentd.service"
    cp "$SOCKET" "$T/sys/"
    sed "s|/usr/bin/spice-vdagent|/bin/true|" "$USER_UNIT" >"$T/user/spice-vdagent.service"
    check "systemd-analyze verify: system units" \
        verify "$T/sys" ./spice-vdagentd.socket ./spice-vdagentd.service
    check "systemd-analyze --user verify: user unit" \
        env VERIFY_USER=1 bash -c "$(declare -f verify); T='$T' verify '$T/user' ./spice-vdagent.service"
    # The checker itself: a misspelt key must be caught.
    sed 's/^Restart=/Restrt=/' "$T/sys/spice-vdagentd.service" >"$T/sys/bad.service"
    # shellcheck disable=SC2016  # expanded by eval
    check "systemd-analyze verify catches a misspelt key" eval '! verify "$T/sys" ./bad.service >/dev/null'
else
    skip "systemd-analyze not installed"
fi

# ---- desktop-file-validate ----

if command -v desktop-file-validate >/dev/null 2>&1; then
    out=$(desktop-file-validate "$DESKTOP" 2>&1)
    check "desktop-file-validate" test -z "$out"
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
else
    skip "desktop-file-validate not installed (desktop-file-utils)"
fi

# ---- the man page ----

for opt in -h -d -s -S -u -f -x -o -X --status --json --allow-clipboard-when-locked; do
    esc=${opt//-/\\\\-}
    check "man: documents $opt" grep -q -- "$esc" "$MAN"
done
# Every long option of the daemon's option table is in the man page.
while read -r long; do
    check "man: documents --$long (from vdagentd.c)" grep -q -- "\\\\-\\\\-${long//-/\\\\-}" "$MAN"
done < <(sed -n 's/^ *{"\([a-z-]*\)", .*/\1/p' "$DAEMON_SRC")
for path in "$SOCK" "$PORT" "$PIDFILE" "$UINPUT"; do
    check "man: names $path" grep -qF -- "${path//-/\\-}" "$MAN"
done
# The session agent (clipboard, files) exists now: the daemon's page must
# not say that a part of it is missing.
nothing_missing() {
    ! sed -n '/^\.SH BUGS/,/^\.SH/p' "$MAN" | tr '\n' ' ' |
        grep -qiE "not (yet )?implemented|not part of this version"
}
check "man: BUGS does not call the clipboard or file transfers missing" nothing_missing
for sec in NAME SYNOPSIS DESCRIPTION OPTIONS SIGNALS "EXIT STATUS" FILES BUGS; do
    check "man: section $sec" grep -q "^\\.SH \"\\?$sec\"\\?$" "$MAN"
done
if command -v groff >/dev/null 2>&1; then
    out=$(LC_ALL=C groff -man -ww -z -Tutf8 "$MAN" 2>&1)
    check "groff: no warnings" test -z "$out"
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
else
    skip "groff not installed"
fi

# ---- the session agent ----

adefine() { sed -n "s/^#define $1 \"\\(.*\\)\"$/\\1/p" "$AGENT_SRC"; }
check "agent: default socket is the daemon's ($SOCK)" test "$(adefine DEFAULT_SOCKET)" = "$SOCK"
check "agent: default port is the daemon's ($PORT)" test "$(adefine DEFAULT_PORT)" = "$PORT"
check "user unit: documents the agent's man page" \
    grep -q "man:spice-vdagent(1)" <<<"$(key "$USER_UNIT" Unit Documentation)"
for opt in -h -d -s -S -x -f -o xdg-desktop xdg-download; do
    esc=${opt//-/\\\\-}
    check "agent man: documents $opt" grep -q -- "$esc" "$AGENT_MAN"
done
# Every long option of the agent's option table (hidden ones aside).
while read -r long; do
    check "agent man: documents --$long (from vdagent.c)" grep -q -- "\\\\-\\\\-${long//-/\\\\-}" "$AGENT_MAN"
done < <(grep -v HIDDEN "$AGENT_SRC" | sed -n 's/^ *{"\([a-z-]*\)", .*/\1/p')
check "agent man: BUGS says audio volume sync is not implemented" \
    bash -c "sed -n '/^\\.SH BUGS/,/^\\.SH/p' '$AGENT_MAN' | tr '\\n' ' ' | grep -q 'AUDIO_VOLUME_SYNC.*not implemented'"
check "agent man: names the manager selection" grep -q "_SPICE_VDAGENT_S" "$AGENT_MAN"
for sec in NAME SYNOPSIS DESCRIPTION OPTIONS SIGNALS "EXIT STATUS" FILES BUGS; do
    check "agent man: section $sec" grep -q "^\\.SH \"\\?$sec\"\\?$" "$AGENT_MAN"
done
if command -v groff >/dev/null 2>&1; then
    out=$(LC_ALL=C groff -man -ww -z -Tutf8 "$AGENT_MAN" 2>&1)
    check "groff: no warnings in spice-vdagent.1" test -z "$out"
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
fi

# The install rule (install-data-hook of src/vdagent/agent.am) into a
# scratch DESTDIR, when this is a configured build tree with the agent.
if [ -f "$top_builddir/Makefile" ] && grep -q '^install-data-hook:' "$top_builddir/Makefile"; then
    inst=$T/inst
    # A make of its own, not a child of the make running this test.
    submake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory "$@"; }
    if submake -C "$top_builddir" DESTDIR="$inst" install-data-hook >"$T/install.log" 2>&1; then
        ok "install-data-hook ran"
        # The directories as configured (expanded by make itself).
        dirs=$(submake -C "$top_builddir" -f - print-dirs <<EOF2 2>/dev/null
include Makefile
print-dirs:
	@echo '\$(autostartdir)|\$(gdmautostartdir)|\$(systemduserunitdir)|\$(bindir)'
EOF2
)
        IFS='|' read -r d_auto d_gdm d_user d_bin <<<"$dirs"
        check "install: autostart entry in $d_auto" test -f "$inst$d_auto/spice-vdagent.desktop"
        if [ -n "$d_gdm" ]; then
            check "install: GDM greeter entry in $d_gdm" test -f "$inst$d_gdm/spice-vdagent.desktop"
        fi
        check "install: user unit in $d_user" test -f "$inst$d_user/spice-vdagent.service"
        check "install: the user unit runs $d_bin/spice-vdagent -x" \
            test "$(key "$inst$d_user/spice-vdagent.service" Service ExecStart)" = "$d_bin/spice-vdagent -x"
        check "install: the autostart entry's TryExec is $d_bin/spice-vdagent" \
            test "$(key "$inst$d_auto/spice-vdagent.desktop" "Desktop Entry" TryExec)" = "$d_bin/spice-vdagent"
        check "install: the autostart entry falls back to $d_bin/spice-vdagent" \
            grep -q "|| exec $d_bin/spice-vdagent\"\$" <<<"$(key "$inst$d_auto/spice-vdagent.desktop" "Desktop Entry" Exec)"
    else
        not_ok "install-data-hook ran"
        sed 's/^/    /' "$T/install.log"
    fi
else
    skip "agent install rule (no configured build tree with the agent)"
fi

echo "# $PASS passed, $FAIL failed, $SKIP skipped"
[ "$FAIL" -eq 0 ]
