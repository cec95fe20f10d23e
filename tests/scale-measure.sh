#!/bin/bash
# Start-up of plughostd with many plugins in ONE directory (issue 15): makes
# N copies of one small plugin, each with its own name patched into its note
# (as bench-daemon does), starts the daemon on them, and prints the time from
# fork+exec until Status counts every plugin, VmRSS and VmHWM then, and the
# Status round trip (p50, p99) with every plugin registered, after one
# untimed start that warms the page cache. Not part of
# `make check`: figures, not pass/fail. Needs cc and python3.
#
#   tests/scale-measure.sh [-b BUILDDIR] [-r RUNS] [-k] N...
#
#   -b BUILDDIR  the build tree (default: build/ beside this script's tests/)
#   -r RUNS      start-ups per N (default 3)
#   -k           keep the scratch directory (its path is printed); with
#                SCALE_DIR=DIR set, plugin copies already in DIR/N are reused
#
# Example: tests/scale-measure.sh 10000 100000
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(dirname "$here")
builddir=$srcdir/build
runs=3
keep=
while getopts b:r:k opt; do
        case $opt in
        b) builddir=$(cd "$OPTARG" && pwd) ;;
        r) runs=$OPTARG ;;
        k) keep=1 ;;
        *) sed -n '2,15p' "$0"; exit 2 ;;
        esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- 10000 100000

daemon=$builddir/.libs/plughostd
[ -x "$daemon" ] || daemon=$builddir/plughostd
[ -x "$daemon" ] || { echo "no plughostd in $builddir: build it first" >&2; exit 1; }

if [ -n "${SCALE_DIR:-}" ]; then
        scratch=$SCALE_DIR
        mkdir -p "$scratch"
        keep=1
else
        scratch=$(mktemp -d /tmp/scale-measure.XXXXXX)
fi
chmod 755 "$scratch"
cleanup() {
        [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null || true
        [ -n "$keep" ] || rm -rf "$scratch"
}
trap cleanup EXIT

cat > "$scratch/plugin.c" <<'EOF'
#include <plughost/plugin.h>

static int scale_call(void *self, const char *method, const char *params_json,
                      char **ret_result_json)
{
        (void)self;
        (void)method;
        (void)params_json;
        *ret_result_json = 0;
        return 0;
}

PLUGHOST_PLUGIN("{\"name\":\"p000000\",\"version\":\"1.0.0\","
                "\"interfaces\":[\"org.example.Bench\"],"
                "\"description\":\"A plugin for scale-measure.\"}",
                .call = scale_call);
EOF
${CC:-cc} -O2 -fPIC -shared -I"$srcdir/lib" -o "$scratch/plugin.so" "$scratch/plugin.c"

echo "plughostd: $daemon"
echo "scratch:   $scratch"
echo "machine:   $(nproc) cores, $(uname -r)"

export LD_LIBRARY_PATH=$builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
exec 3>&1
python3 - "$daemon" "$scratch" "$runs" "$@" <<'EOF'
import json, os, socket, statistics, subprocess, sys, time

daemon, scratch, runs, counts = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(a) for a in sys.argv[4:]]
img = bytearray(open(os.path.join(scratch, "plugin.so"), "rb").read())
key = b'"name":"p000000"'
off = img.find(key)
assert off >= 0 and img.find(key, off + 1) < 0, "the name must appear once"
off += len(b'"name":"')
STATUS = b'{"method":"io.plughost.Status"}\0'

def copies(n):
        d = os.path.join(scratch, str(n))
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        have = len(os.listdir(d))
        if have == n:
                return d, 0.0
        t = time.monotonic()
        for i in range(n):
                name = b"p%06d" % i
                img[off:off + 7] = name
                p = os.path.join(d, name.decode() + ".so")
                with open(p, "wb") as f:
                        f.write(img)
                os.chmod(p, 0o755)
        return d, time.monotonic() - t

def exchange(s):
        s.sendall(STATUS)
        buf = b""
        while not buf.endswith(b"\0"):
                chunk = s.recv(65536)
                if not chunk:
                        raise ConnectionError("closed")
                buf += chunk
        return json.loads(buf[:-1])["parameters"]

def mem(pid):
        m = {}
        with open("/proc/%d/status" % pid) as f:
                for line in f:
                        k, _, v = line.partition(":")
                        if k in ("VmRSS", "VmHWM"):
                                m[k] = int(v.split()[0])
        return m

def run(d, n, tag, rtt):
        sock = os.path.join(scratch, tag + ".sock")
        state = os.path.join(scratch, tag + ".state")
        conf = os.path.join(scratch, "empty.conf")
        log = os.path.join(scratch, tag + ".log")
        open(conf, "w").close()
        for p in (sock,):
                if os.path.exists(p):
                        os.unlink(p)
        t0 = time.monotonic()
        proc = subprocess.Popen([daemon, "-c", conf, "-p", d, "-s", sock, "-S", state],
                                stdin=subprocess.DEVNULL, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        s, ready, plugins, polls = None, None, -1, 0
        try:
                while time.monotonic() - t0 < 120:
                        if proc.poll() is not None:
                                raise RuntimeError("plughostd ended: %s" % proc.returncode)
                        try:
                                if s is None:
                                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                                        s.connect(sock)
                                st = exchange(s)
                                polls += 1
                                plugins = st.get("plugins", -1)
                                if plugins == n:
                                        ready = time.monotonic() - t0
                                        break
                        except (FileNotFoundError, ConnectionRefusedError, ConnectionError):
                                if s:
                                        s.close()
                                s = None
                        time.sleep(0.001)
                m = mem(proc.pid)
                lat = []
                if ready is not None and rtt:
                        for i in range(rtt + 200):
                                t = time.perf_counter_ns()
                                exchange(s)
                                if i >= 200:
                                        lat.append((time.perf_counter_ns() - t) / 1000)
                return ready, m, plugins, lat, log
        finally:
                if s:
                        s.close()
                proc.terminate()
                proc.wait(30)

for n in counts:
        d, made = copies(n)
        print("\nN=%d plugins in %s%s" % (n, d, " (written in %.1f s)" % made if made else " (reused)"))
        print("   %-4s %12s %12s %12s %12s %12s %10s" % ("run", "READY ms", "VmRSS KiB", "VmHWM KiB", "Status p50", "Status p99", "log lines"))
        # An untimed start first: the files' pages in the page cache, as in
        # every later run (a cold cache measures the disk).
        run(d, n, "n%d-warm" % n, 0)
        readies = []
        for r in range(runs):
                ready, m, plugins, lat, log = run(d, n, "n%d-%d" % (n, r), 2000 if r == runs - 1 else 0)
                if ready is None:
                        print("   %-4d not ready (last Status: %d plugins)" % (r + 1, plugins))
                        continue
                readies.append(ready * 1000)
                p50 = "%.1f us" % statistics.median(lat) if lat else "-"
                p99 = "%.1f us" % sorted(lat)[int(len(lat) * 0.99)] if lat else "-"
                nlines = sum(1 for _ in open(log, errors="replace"))
                print("   %-4d %12.1f %12d %12d %12s %12s %10d" % (r + 1, ready * 1000, m["VmRSS"], m["VmHWM"], p50, p99, nlines))
        if readies:
                print("   median READY %.1f ms" % statistics.median(readies))
EOF
