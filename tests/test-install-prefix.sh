#!/bin/bash
# `./configure --prefix=DIR && make install` writes nothing outside DIR,
# and only --prefix=/usr (or --with-X=DIR) takes the machine's systemd
# directories. As root, configure and install run as nobody, who may write
# DIR and nothing else the install could touch: the kernel refuses the rest.
set -u
# Sub-makes of their own, not jobs of the make check that runs this.
unset MAKEFLAGS MFLAGS MAKELEVEL
: "${PH_SRCDIR:?run from make check}"
name=test-install-prefix
fail() { echo "FAIL: $name: $*"; exit 1; }

tmp=$(mktemp -d /tmp/ph-install-prefix.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
src=$PH_SRCDIR

as_user() { "$@"; }
if [ "$(id -u)" -eq 0 ]; then
        chown 65534:65534 "$tmp"
        as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
        # A checkout nobody may not read (under /root, say) is copied, without
        # its build trees.
        if ! as_user test -r "$src/configure" || ! as_user test -x "$src"; then
                mkdir "$tmp/src"
                tar -C "$src" --exclude='./build*' --exclude=./run --exclude=./.git -cf - . |
                        tar -C "$tmp/src" -xf - || fail "copying the source tree"
                chown -R 65534:65534 "$tmp/src"
                src=$tmp/src
        fi
fi

# Prints the values make gives VARS in build dir DIR, one a line.
make_vars() {
        local dir=$1 v; shift
        {
                printf 'ph-print-vars:\n'
                for v in "$@"; do printf '\t@echo "ph-var: $(%s)"\n' "$v"; done
        } >"$tmp/print.mk"
        make -s -C "$dir" -f Makefile -f "$tmp/print.mk" ph-print-vars | sed -n 's/^ph-var: //p'
}
DIRS="bindir sbindir libdir includedir pkglibexecdir mandir docdir systemdsystemunitdir sysusersdir
      tmpfilesdir bashcompletiondir"

# 1. A prefix of one's own: configure, then install everything that needs
# no compiler (every data file, every directory install-exec fills).
prefix=$tmp/prefix
as_user mkdir "$tmp/b" "$tmp/b-usr" || fail "mkdir"
(cd "$tmp/b" && as_user "$src/configure" -q --prefix="$prefix" >configure.out 2>&1) ||
        { tail -n 20 "$tmp/b/configure.out"; fail "configure --prefix=$prefix failed"; }
# Meanwhile, a system prefix, configured only (nothing is installed).
(cd "$tmp/b-usr" && as_user "$src/configure" -q --prefix=/usr --with-tmpfilesdir=/opt/tmpfiles \
        >configure.out 2>&1) &
usr_pid=$!

for v in $(make_vars "$tmp/b" $DIRS); do
        case $v in
        "$prefix"/*) ;;
        *) fail "configure --prefix=$prefix put an install directory outside it: $v" ;;
        esac
done
if ! as_user make -s -C "$tmp/b" installdirs install-data >"$tmp/install.out" 2>&1; then
        tail -n 20 "$tmp/install.out"
        fail "make install-data as a user who may write only $prefix failed"
fi
for f in lib/systemd/system/plughostd.service lib/systemd/system/plughostd.socket \
         lib/systemd/system/plughost-metrics.service lib/systemd/system/plughost-metrics.timer \
         lib/sysusers.d/plughost.conf lib/tmpfiles.d/plughost.conf lib/pkgconfig/plughost.pc \
         share/man/man8/plughostd.8 share/man/man1/plughostctl.1 include/plughost/plugin.h; do
        [ -f "$prefix/$f" ] || fail "make install did not install $prefix/$f"
done
for d in bin sbin lib libexec/plughost; do
        [ -d "$prefix/$d" ] || fail "make installdirs did not make $prefix/$d"
done
grep -q "^ExecStart=$prefix/sbin/plughostd\$" "$prefix/lib/systemd/system/plughostd.service" ||
        fail "the installed unit does not start $prefix/sbin/plughostd"
grep -q "^ExecStart=$prefix/bin/plughostctl metrics " "$prefix/lib/systemd/system/plughost-metrics.service" ||
        fail "the installed plughost-metrics.service does not run $prefix/bin/plughostctl"
# Installed, not enabled: nothing links the timer into timers.target.
[ -z "$(find "$prefix" -name '*.wants' 2>/dev/null)" ] || fail "make install enabled a unit"

# 2. --prefix=/usr: systemd.pc's directories, unless --with-X=DIR says otherwise.
wait "$usr_pid" || { tail -n 20 "$tmp/b-usr/configure.out"; fail "configure --prefix=/usr failed"; }
got=$(make_vars "$tmp/b-usr" systemdsystemunitdir sysusersdir tmpfilesdir | tr '\n' ' ')
want_unit=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null)
want_sysusers=$(pkg-config --variable=sysusersdir systemd 2>/dev/null)
want="${want_unit:-/usr/lib/systemd/system} ${want_sysusers:-/usr/lib/sysusers.d} /opt/tmpfiles "
[ "$got" = "$want" ] || fail "configure --prefix=/usr --with-tmpfilesdir=/opt/tmpfiles chose '$got', not '$want'"

echo "PASS: $name: make install stays in $prefix; --prefix=/usr uses $want"
