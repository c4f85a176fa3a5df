#!/bin/bash
# test-interop.sh - the interop scenarios (tests/interop/run.sh) against our
# guest programs and against Debian's spice-vdagent 0.22.1, one after the
# other, then a side-by-side table. Fails when ours fails a scenario (or
# does not run); Debian's failures are shown, not counted.
#
# Run by `make check` (top_srcdir, top_builddir set). Exits 77 when ours
# cannot run here (not root, no Xorg dummy driver, no spice-gtk
# introspection data, spice-host not built). Bounded: each flavour's client
# gets INTEROP_CLIENT_TIMEOUT seconds (default 240), the whole test stays
# under 10 minutes. INTEROP_FLAVOURS="ours" skips the Debian run;
# INTEROP_SCENARIOS=a,b runs only those scenarios.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=.}"
export top_srcdir top_builddir
here=$(cd "$top_srcdir/tests/interop" && pwd) || exit 99
out=$(mktemp -d "${TMPDIR:-/tmp}/test-interop.XXXXXX") || exit 99
trap 'rm -rf "$out"' EXIT
FLAVOURS=${INTEROP_FLAVOURS:-ours debian}

declare -A RC
for f in $FLAVOURS; do
    echo "=== interop: $f"
    t0=$SECONDS
    # Debian's failures are expected (see docs/INTEROP.md): no log dump
    show=1
    [ "$f" = debian ] && show=0
    INTEROP_SHOW_LOGS=$show bash "$here/run.sh" "$f" "$out/$f.jsonl"
    RC[$f]=$?
    echo "=== interop: $f finished with status ${RC[$f]} in $((SECONDS - t0)) s"
    if [ "$f" = ours ] && [ "${RC[$f]}" -eq 77 ]; then
        exit 77
    fi
done

echo
# shellcheck disable=SC2086  # FLAVOURS is a word list
/usr/bin/python3 - "$out" $FLAVOURS <<'EOF'
import json, os, sys
out, flavours = sys.argv[1], sys.argv[2:]
res, order = {}, []
for f in flavours:
    res[f] = {}
    path = os.path.join(out, f + ".jsonl")
    if not os.path.exists(path):
        continue
    for line in open(path, encoding="utf-8", errors="replace"):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        name = o.get("scenario", "?")
        if name not in order:
            order.append(name)
        res[f][name] = o
w = max([len(n) for n in order] + [8])
print("%-*s  %s" % (w, "scenario", "  ".join("%-14s" % f for f in flavours)))
for n in order:
    cells = []
    for f in flavours:
        o = res[f].get(n)
        cells.append("%-14s" % ("-" if o is None else "%s %5.1fs" % (o["result"], o.get("seconds", 0))))
    print("%-*s  %s" % (w, n, "  ".join(cells)))
print()
for f in flavours:
    for n in order:
        o = res[f].get(n)
        if o is not None and o["result"] != "PASS":
            print("%s / %s: %s" % (f, n, o.get("reason", "")))
EOF

if [ "${RC[ours]:-1}" -ne 0 ]; then
    echo
    echo "FAIL: our agent failed a scenario (or did not run); see above"
    exit 1
fi
if ! grep -q '"result": "PASS"' "$out/ours.jsonl" 2>/dev/null ||
    grep -q '"result": "FAIL"' "$out/ours.jsonl"; then
    echo "FAIL: our results are missing or contain a failure"
    exit 1
fi
exit 0
