#!/bin/bash
# The units `make install DESTDIR=...` installs pass systemd-analyze verify
# as they are, with the man pages they name (Documentation=man:...) found
# where the same install put them: MANPATH is the installed mandir, nothing
# copied from the source tree.
set -u
# Sub-makes of their own, not jobs of the make check that runs this.
unset MAKEFLAGS MFLAGS MAKELEVEL
: "${PH_BUILDDIR:?run from make check}"
name=test-install-verify
fail() { echo "FAIL: $name: $*"; exit 1; }

tmp=$(mktemp -d /tmp/ph-install-verify.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root

printf 'ph-print-vars:\n\t@echo "ph-var: $(systemdsystemunitdir)"\n\t@echo "ph-var: $(mandir)"\n' >"$tmp/print.mk"
{ read -r unitdir; read -r mandir; } < <(make -s -C "$PH_BUILDDIR" -f Makefile -f "$tmp/print.mk" \
        ph-print-vars | sed -n 's/^ph-var: //p')
[ -n "${mandir:-}" ] || fail "could not read the build's install directories"

if ! make -s -C "$PH_BUILDDIR" install DESTDIR="$root" >"$tmp/install.out" 2>&1; then
        tail -n 20 "$tmp/install.out"; fail "make install DESTDIR=$root failed"
fi
for f in "$unitdir/plughostd.service" "$unitdir/plughostd.socket" \
         "$unitdir/plughost-metrics.service" "$unitdir/plughost-metrics.timer" \
         "$mandir/man8/plughostd.8" "$mandir/man1/plughostctl.1"; do
        [ -f "$root$f" ] || fail "make install did not install $f"
done

# A staged install names its final paths: ExecStart= is $sbindir/plughostd,
# which is in $root until the staging is moved into place. The units are
# verified as installed but for that one prefix, in a directory of their own.
printf 'ph-print-vars:\n\t@echo "ph-var: $(sbindir)"\n' >"$tmp/print.mk"
sbindir=$(make -s -C "$PH_BUILDDIR" -f Makefile -f "$tmp/print.mk" ph-print-vars | sed -n 's/^ph-var: //p')
grep -qx "ExecStart=$sbindir/plughostd" "$root$unitdir/plughostd.service" ||
        fail "the installed unit does not start $sbindir/plughostd"
[ -x "$root$sbindir/plughostd" ] || fail "make install did not install $sbindir/plughostd"
printf 'ph-print-vars:\n\t@echo "ph-var: $(bindir)"\n' >"$tmp/print.mk"
bindir=$(make -s -C "$PH_BUILDDIR" -f Makefile -f "$tmp/print.mk" ph-print-vars | sed -n 's/^ph-var: //p')
grep -q "^ExecStart=$bindir/plughostctl metrics " "$root$unitdir/plughost-metrics.service" ||
        fail "the installed plughost-metrics.service does not run $bindir/plughostctl"
mkdir "$tmp/units"
sed "s|^ExecStart=$sbindir/|ExecStart=$root$sbindir/|" "$root$unitdir/plughostd.service" \
        >"$tmp/units/plughostd.service"
cp "$root$unitdir/plughostd.socket" "$root$unitdir/plughost-metrics.timer" "$tmp/units/"
sed "s|^ExecStart=$bindir/|ExecStart=$root$bindir/|" "$root$unitdir/plughost-metrics.service" \
        >"$tmp/units/plughost-metrics.service"
verify() {
        (cd "$tmp/units" && MANPATH="$root$mandir" systemd-analyze verify plughostd.socket plughostd.service \
                plughost-metrics.service plughost-metrics.timer 2>&1)
}
out=$(verify)
rc=$?
[ "$rc" -eq 0 ] && [ -z "$out" ] || fail "systemd-analyze verify (exit $rc) said: $out"

# Nor is MANPATH needed by whoever has the prefix's bin/ on PATH: man-db
# looks in ../share/man of each PATH directory.
out=$(cd "$tmp/units" && env -u MANPATH PATH="$root$bindir:$PATH" \
        systemd-analyze verify plughostd.socket plughostd.service 2>&1)
[ -z "$out" ] || fail "with $bindir on PATH and no MANPATH, systemd-analyze verify said: $out"

# The check can fail: without the installed page, verify misses plughostd(8).
rm -f "$root$mandir/man8/plughostd.8"
out=$(verify)
case $out in
*"plughostd(8)"*) ;;
*) fail "systemd-analyze verify did not miss a removed plughostd(8): '$out'" ;;
esac

echo "PASS: $name: the installed units verify clean with the installed man pages"
