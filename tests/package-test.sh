#!/bin/bash
# The Debian packages, end to end, as root on Debian 12: builds plughostd,
# libplughost0 and libplughost-dev from a copy of the checkout, installs
# them, checks what they put where, runs the installed daemon and client,
# builds a plugin against the installed SDK, installs them again over
# themselves, runs lintian, purges them and checks that nothing is left.
# Each check prints "ok - ..." or "not ok - ..."; the last line is
# "N passed, N failed" (./dev.sh package runs this, ./dev.sh test last).
# Whatever fails, the trap purges the packages and removes what the test
# made, the plughost user included if it did not exist before.
set -u
cd "$(dirname "$0")/.."
top=$PWD
PKGS=(plughostd libplughost0 libplughost-dev)

passed=0 failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
notok() { echo "not ok - $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: one line for the command's success.
check() {
        local what=$1; shift
        if "$@"; then ok "$what"; else notok "$what"; fi
}
quiet() { "$@" >/dev/null 2>&1; }
# Prints what a failed step said, indented, so the summary stays readable.
show() { sed 's/^/    /' "$@" | tail -n 30; }
finish() {
        echo "package test time: $((SECONDS - start)) s"
        echo "$passed passed, $failed failed"
        [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
        exit
}
start=$SECONDS

if [ "$(id -u)" -ne 0 ]; then
        notok "run as root (it installs and purges packages)"; finish
fi
# Known to dpkg in any state but purged: installed, unpacked, half-installed,
# config-files.
present() {
        local s
        s=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) && [ -n "$s" ] && [ "$s" != not-installed ]
}
# A machine with the packages, or a plughost of its own (make install), is
# someone's: the test's purge would remove them.
for p in "${PKGS[@]}"; do
        if present "$p"; then
                notok "$p is installed already; purge it first, the test would remove it"
                finish
        fi
done
for d in /etc/plughost /var/lib/plughost; do
        if [ -e "$d" ]; then
                notok "$d exists (from a make install?); the test's purge would remove it"
                finish
        fi
done

triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
had_user=no had_group=no
getent passwd plughost >/dev/null && had_user=yes
getent group plughost >/dev/null && had_group=yes
tmp=$(mktemp -d /tmp/ph-package.XXXXXX) || { notok "mktemp"; finish; }
chmod 0755 "$tmp"
daemon_pid=

cleanup() {
        if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
                kill -TERM "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
        fi
        local p left=()
        for p in "${PKGS[@]}"; do present "$p" && left+=("$p"); done
        if [ ${#left[@]} -gt 0 ]; then
                echo "cleanup: purging ${left[*]}"
                dpkg --purge "${left[@]}" >/dev/null 2>&1 || dpkg --purge --force-all "${left[@]}" >/dev/null 2>&1
        fi
        rm -rf /var/lib/plughost /etc/plughost
        # Debian keeps a purged package's system user; the test does not.
        [ "$had_user" = yes ] || ! getent passwd plughost >/dev/null || userdel plughost 2>/dev/null
        [ "$had_group" = yes ] || ! getent group plughost >/dev/null || groupdel plughost 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build, from a copy: the checkout's build*/ and generated files stay out
src=$tmp/src/plughost
mkdir -p "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # Tracked and new files, as they are in the working tree (uncommitted
        # changes too); whatever .gitignore names (build*/, run/, configure) is left.
        git -C "$top" ls-files -z -co --exclude-standard |
                while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
                tar --null -T - -cf - | tar -xf - -C "$src"
else
        # Not a git checkout: everything but builds, the run directory and
        # what autoreconf, configure or a package build made in the tree.
        tar -cf - --exclude-vcs --exclude='./build*' --exclude=./run --exclude=./autom4te.cache \
                --exclude=./configure --exclude=./config.status --exclude=./config.log \
                --exclude=./config.h --exclude=./config.h.in --exclude=./aclocal.m4 --exclude=./m4 \
                --exclude=./libtool --exclude=./Makefile --exclude=./Makefile.in --exclude=./stamp-h1 \
                --exclude=./debian/build --exclude=./debian/tmp --exclude=./debian/.debhelper \
                --exclude=./debian/plughostd --exclude=./debian/libplughost0 \
                --exclude=./debian/libplughost-dev . | tar -xf - -C "$src"
fi
jobs=$(nproc); [ "$jobs" -gt 2 ] && jobs=2
if (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$jobs" \
        dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1); then
        ok "dpkg-buildpackage -us -uc -b builds from a copy of the checkout"
else
        notok "dpkg-buildpackage -us -uc -b (log: last lines)"; show "$tmp/build.log"; finish
fi
version=$(cd "$src" && dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
debs=()
for p in "${PKGS[@]}"; do debs+=("$tmp/src/${p}_${version}_${arch}.deb"); done
check "the three packages were made" quiet ls "${debs[@]}"

# ---- install
export DEBIAN_FRONTEND=noninteractive
if dpkg -i "${debs[@]}" >"$tmp/install.log" 2>&1; then
        ok "dpkg -i installs plughostd, libplughost0 and libplughost-dev"
elif apt-get install -f -y -qq >>"$tmp/install.log" 2>&1; then
        ok "dpkg -i, then apt-get -f install for missing dependencies"
else
        notok "dpkg -i (and apt-get -f install)"; show "$tmp/install.log"; finish
fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
for p in "${PKGS[@]}"; do check "$p is installed" installed "$p"; done

files=(
        /usr/sbin/plughostd /usr/bin/plughostctl /usr/libexec/plughost/plughost-worker
        /lib/systemd/system/plughostd.service /lib/systemd/system/plughostd.socket
        /lib/systemd/system/plughost-metrics.service /lib/systemd/system/plughost-metrics.timer
        /usr/lib/sysusers.d/plughost.conf /usr/lib/tmpfiles.d/plughost.conf
        /usr/share/man/man8/plughostd.8.gz /usr/share/man/man1/plughostctl.1.gz
        /usr/share/bash-completion/completions/plughostctl
        /etc/plughost/plughostd.conf
        "/usr/lib/$triplet/plughost/examples/hello.so"
        "/usr/lib/$triplet/libplughost.so.0"
        "/usr/lib/$triplet/libplughost.so" "/usr/lib/$triplet/pkgconfig/plughost.pc"
        /usr/include/plughost/plugin.h /usr/include/plughost/plughost.h
        /usr/share/doc/libplughost-dev/examples/hello.c
)
missing=()
for f in "${files[@]}"; do [ -e "$f" ] || missing+=("$f"); done
check "every file is in place${missing:+ (missing: ${missing[*]})}" test ${#missing[@]} -eq 0
# The library exports the functions its installed headers declare, no more.
exported=$(nm -D --defined-only "/usr/lib/$triplet/libplughost.so.0" 2>/dev/null |
        awk 'NF == 3 { print $3 }' | sort)
declared=$(grep -ho '\bph_[a-z0-9_]*[[:space:]]*(' /usr/include/plughost/*.h 2>/dev/null |
        tr -d ' \t(' | sort -u)
check "libplughost.so.0 exports exactly the $(wc -l <<<"$declared") functions of its headers" \
        test -n "$exported" -a "$exported" = "$declared"
dirs_ok() { [ -d /etc/plughost/plugins.d ] && [ -d "/usr/lib/$triplet/plughost/plugins" ]; }
check "the plugin directories exist" dirs_ok
stray=$(find "/usr/lib/$triplet" -name 'libplughost*.la' -o -name 'libplughost*.a' 2>/dev/null)
check "no .la or static library is installed" test -z "$stray"
check "/etc/plughost/plughostd.conf is a conffile" \
        grep -q '/etc/plughost/plughostd.conf ' <(dpkg-query -W -f='${Conffiles}\n' plughostd)
out=$(plughostd --check-config 2>&1)
check "plughostd --check-config accepts the shipped configuration ($out)" \
        test "$out" = "/etc/plughost/plughostd.conf: configuration valid"
user_ok() {
        local uid
        uid=$(id -u plughost 2>/dev/null) || return 1
        [ "$uid" -lt 1000 ] && [ "$(id -gn plughost)" = plughost ]
}
check "the system user plughost exists (uid $(id -u plughost 2>/dev/null), group plughost)" user_ok
check "plughostd.socket is enabled" test -L /etc/systemd/system/sockets.target.wants/plughostd.socket
check "plughostd.service is not enabled" test ! -e /etc/systemd/system/multi-user.target.wants/plughostd.service
check "plughost-metrics.timer is not enabled" test ! -e /etc/systemd/system/timers.target.wants/plughost-metrics.timer

out=$(systemd-analyze verify /lib/systemd/system/plughostd.socket /lib/systemd/system/plughostd.service \
        /lib/systemd/system/plughost-metrics.service /lib/systemd/system/plughost-metrics.timer 2>&1)
rc=$?
check "systemd-analyze verify of the installed units${out:+: $out}" test "$rc" -eq 0 -a -z "$out"

# ---- the client offline, and the SDK
out=$(plughostctl inspect "/usr/lib/$triplet/plughost/examples/hello.so" 2>&1)
check "plughostctl inspect reads an installed example plugin" grep -q 'org.example.Greeter' <<<"$out"
cat >"$tmp/mine.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
#include <plughost/plugin.h>

static int mine_call(void *self, const char *method, const char *params_json, char **ret_result_json)
{
        if (strcmp(method, "Ping") != 0)
                return -95;     /* -EOPNOTSUPP */
        *ret_result_json = strdup("{\"pong\":true}");
        return *ret_result_json ? 0 : -12;
}

PLUGHOST_PLUGIN("{\"name\":\"mine\",\"version\":\"0.0.1\",\"interfaces\":[\"org.example.Ping\"]}",
                .call = mine_call);
EOF
if cc -shared -fPIC -o "$tmp/mine.so" "$tmp/mine.c" $(pkg-config --cflags --libs plughost) \
        >"$tmp/cc.log" 2>&1; then
        ok "a plugin builds with cc \$(pkg-config --cflags --libs plughost)"
else
        notok "a plugin builds against the installed SDK"; show "$tmp/cc.log"
fi
check "plughostctl inspect reads the plugin built against the SDK" \
        grep -q 'org.example.Ping' <(plughostctl inspect "$tmp/mine.so" 2>&1)

# ---- the installed daemon, as plughost, on a socket of the test's own.
# The state directory is the real one, made as StateDirectory= would make
# it, so that purge has the daemon's own state to remove.
mkdir -m 0755 "$tmp/plugins" "$tmp/run"
chown plughost:plughost "$tmp/run"
install -m 0644 "/usr/lib/$triplet/plughost/examples/hello.so" "$tmp/plugins/hello.so"
install -m 0644 "$tmp/mine.so" "$tmp/plugins/mine.so"
install -d -o plughost -g plughost -m 0750 /var/lib/plughost
sock=$tmp/run/io.plughost
# setpriv execs the daemon itself (runuser would stay its parent, as root).
setpriv --reuid=plughost --regid=plughost --init-groups -- \
        /usr/sbin/plughostd --plugin-dir "$tmp/plugins" --socket "$sock" >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
        [ -S "$sock" ] && plughostctl --socket "$sock" status >/dev/null 2>&1 && break
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
done
check "the installed plughostd starts in the foreground as plughost" \
        test "$(ps -o user= -p "$daemon_pid" 2>/dev/null)" = plughost
list=$(plughostctl --socket "$sock" list 2>&1)
listed() { awk '$1 == "hello" { h = 1 } $1 == "mine" { m = 1 } END { exit !(h && m) }' <<<"$list"; }
check "plughostctl list shows the installed example and the SDK-built plugin" listed
check "plughostctl load hello loads it in the daemon" quiet plughostctl --socket "$sock" load hello
out=$(plughostctl --socket "$sock" call hello Hello '{"name":"Ada"}' 2>&1)
check "plughostctl call hello Hello answers through the daemon" grep -q '"Hello, Ada!"' <<<"$out"
out=$(plughostctl --socket "$sock" call mine Ping '{}' 2>&1)
check "the SDK-built plugin answers a call" grep -q '"pong": *true' <<<"$out"
check "the daemon keeps its state in /var/lib/plughost" test -e /var/lib/plughost/loaded.json
metrics=$(plughostctl --socket "$sock" metrics 2>&1)
metrics_ok() {
        grep -q '^plughost_plugin_calls_total{plugin="hello"} 1$' <<<"$metrics" || return 1
        ! command -v promtool >/dev/null || promtool check metrics <<<"$metrics" >/dev/null 2>&1
}
check "plughostctl metrics counts the call (and promtool accepts it, when installed)" metrics_ok
kill -TERM "$daemon_pid" 2>/dev/null
wait "$daemon_pid"
rc=$?
daemon_pid=
check "plughostd stops on SIGTERM with status 0" test "$rc" -eq 0
[ "$rc" -eq 0 ] || show "$tmp/daemon.log"

# ---- again over itself, with the administrator's change to the conffile
echo "# changed by the administrator" >>/etc/plughost/plughostd.conf
if dpkg -i "${debs[@]}" >"$tmp/reinstall.log" 2>&1; then
        ok "dpkg -i over the installed packages (an upgrade in place)"
else
        notok "dpkg -i over the installed packages"; show "$tmp/reinstall.log"
fi
check "the administrator's change to plughostd.conf is kept" \
        grep -qx '# changed by the administrator' /etc/plughost/plughostd.conf
check "no .dpkg-new or .dpkg-dist copy of the conffile is left" \
        test -z "$(find /etc/plughost -name '*.dpkg-*')"
check "the socket is still enabled, the user still there" \
        eval 'test -L /etc/systemd/system/sockets.target.wants/plughostd.socket && user_ok'

# ---- lintian: no errors (warnings are justified in debian/README.source)
lintian --fail-on none "$tmp/src/plughost_${version}_${arch}.changes" >"$tmp/lintian.log" 2>&1
errors=$(grep -c '^E: ' "$tmp/lintian.log")
warnings=$(grep -c '^W: ' "$tmp/lintian.log")
check "lintian: $errors errors, $warnings warnings" test "$errors" -eq 0
grep -E '^[EW]: ' "$tmp/lintian.log" | sed 's/^/    /'

# ---- purge, and nothing is left
if dpkg --purge "${PKGS[@]}" >"$tmp/purge.log" 2>&1; then
        ok "dpkg --purge removes the three packages"
else
        notok "dpkg --purge"; show "$tmp/purge.log"
fi
left=()
for f in "${files[@]}" /etc/plughost /var/lib/plughost "/usr/lib/$triplet/plughost" \
         /usr/libexec/plughost /usr/include/plughost \
         /etc/systemd/system/sockets.target.wants/plughostd.socket \
         /var/lib/systemd/deb-systemd-helper-enabled/plughostd.socket.dsh-also \
         /var/lib/systemd/deb-systemd-helper-enabled/sockets.target.wants/plughostd.socket; do
        [ -e "$f" ] || [ -L "$f" ] && left+=("$f")
done
check "nothing is left after purge${left:+ (left: ${left[*]})}" test ${#left[@]} -eq 0
gone() { local p; for p in "${PKGS[@]}"; do ! present "$p" || return 1; done; }
check "dpkg knows none of the three packages any more" gone
check "the system user plughost is kept after purge, as Debian does for system users" \
        quiet getent passwd plughost

finish
