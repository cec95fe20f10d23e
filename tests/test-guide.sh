#!/bin/bash
# docs/plugin-guide.md's "Your first plugin", exactly as printed: its
# first.c, its shell blocks run in order in one shell (with /path/to/plughost
# replaced by a checkout of this test's own, whose run/ belongs to a
# plughostd started as ./dev.sh run starts it), and the last block's output
# compared with the guide's. Blocks are marked <!-- first-plugin:KIND -->.
set -u
: "${PH_SRCDIR:?run from make check}" "${PH_BUILDDIR:?run from make check}"
name=test-guide
fail() { echo "FAIL: $name: $*"; exit 1; }
guide=$PH_SRCDIR/docs/plugin-guide.md

tmp=$(mktemp -d /tmp/ph-guide.XXXXXX) || fail "mktemp"
daemon_pid=
cleanup() {
        [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT

# The marked blocks: first.c into work/, shell blocks into one script with a
# marker before the last, the expected output apart.
mkdir "$tmp/work"
awk -v dir="$tmp" '
        match($0, /^<!-- first-plugin:[^ ]+ -->$/) { kind = substr($0, 19, length($0) - 22); want = 1; next }
        want && /^```/ { want = 0; inblock = 1; n[kind]++; if (kind == "sh") nsh++; next }
        inblock && /^```$/ { inblock = 0; kind = ""; next }
        inblock {
                if (kind == "sh") print > (dir "/sh." nsh)
                else if (kind == "expect") print > (dir "/expect")
                else print > (dir "/work/" kind)
        }
' "$guide" || fail "cannot read $guide"
[ -s "$tmp/work/first.c" ] || fail "no <!-- first-plugin:first.c --> block in the guide"
[ -s "$tmp/expect" ] || fail "no <!-- first-plugin:expect --> block in the guide"
nsh=$(ls "$tmp"/sh.* 2>/dev/null | wc -l)
[ "$nsh" -ge 2 ] || fail "fewer than two <!-- first-plugin:sh --> blocks in the guide"
{
        echo 'set -e'
        for i in $(seq 1 "$nsh"); do
                [ "$i" -eq "$nsh" ] && echo 'echo @@ph-last-block@@'
                sed "s|/path/to/plughost|$tmp/co|g" "$tmp/sh.$i"
        done
} >"$tmp/guide.sh"

# The checkout the guide's paths name: build/ holds what it uses of the
# real build tree, run/ is the daemon's, as ./dev.sh run lays them out.
mkdir -p "$tmp/co/build" "$tmp/co/run/plugins" "$tmp/co/run/state"
ln -s "$PH_BUILDDIR/plughost-uninstalled.pc" "$PH_BUILDDIR/plughostctl" "$tmp/co/build/"
printf '[Daemon]\nWorkerPath=%s/plughost-worker\n' "$PH_BUILDDIR" >"$tmp/co/run/plughostd.conf"
cp "$PH_BUILDDIR"/docs/examples/*.so "$tmp/co/run/plugins/"
sock=$tmp/co/run/plughost.sock
"$PH_BUILDDIR/plughostd" --plugin-dir "$tmp/co/run/plugins" --socket "$sock" \
        --state-dir "$tmp/co/run/state" --config "$tmp/co/run/plughostd.conf" >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
# Its socket accepts once the first scan is done (bounded, for a daemon
# that never gets there).
for _ in $(seq 1 600); do
        socat -u OPEN:/dev/null "UNIX-CONNECT:$sock" 2>/dev/null && break
        kill -0 "$daemon_pid" 2>/dev/null || { cat "$tmp/daemon.log"; fail "plughostd exited"; }
        sleep 0.1
done

# The reader's shell, without the test's pkg-config path or socket.
if ! (cd "$tmp/work" && env -u PKG_CONFIG_PATH -u PLUGHOST_SOCKET bash "$tmp/guide.sh") \
        >"$tmp/out" 2>"$tmp/err"; then
        cat "$tmp/guide.sh" "$tmp/out" "$tmp/err" "$tmp/daemon.log" | sed 's/^/  /'
        fail "the guide's commands failed"
fi
[ -f "$tmp/co/run/plugins/first.so" ] || fail "the guide's commands did not put first.so in run/plugins"
sed '1,/^@@ph-last-block@@$/d' "$tmp/out" >"$tmp/last"
if ! cmp -s "$tmp/expect" "$tmp/last"; then
        diff -u "$tmp/expect" "$tmp/last" | sed 's/^/  /'
        fail "the call's output differs from the guide's"
fi
echo "PASS: $name: the guide's first plugin builds, installs into run/plugins and answers"
