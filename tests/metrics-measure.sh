#!/bin/bash
# The cost of io.plughost.Metrics with many plugins (issue 16): makes N
# copies of one small plugin with their names patched (as scale-measure.sh
# does), starts plughostd on them and prints, for one Metrics reply: its
# round trip (p50, p99 over 200) and size, with every plugin discovered,
# then after LOADED of them were loaded and called once (the per-plugin
# list then holds them, up to its cap); and a Status's round trip on
# another connection while one client keeps 128 Metrics requests in
# flight (what hammering costs everyone else). Figures, not pass/fail; not
# part of `make check`. Needs cc and python3.
#
#   tests/metrics-measure.sh [-b BUILDDIR] [-l LOADED] N...
#
# Example: tests/metrics-measure.sh -l 20000 20000
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(dirname "$here")
builddir=$srcdir/build
loaded=
while getopts b:l: opt; do
        case $opt in
        b) builddir=$(cd "$OPTARG" && pwd) ;;
        l) loaded=$OPTARG ;;
        *) sed -n '2,15p' "$0"; exit 2 ;;
        esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- 20000

daemon=$builddir/.libs/plughostd
[ -x "$daemon" ] || daemon=$builddir/plughostd
[ -x "$daemon" ] || { echo "no plughostd in $builddir: build it first" >&2; exit 1; }
scratch=$(mktemp -d /tmp/metrics-measure.XXXXXX)
chmod 755 "$scratch"
trap 'rm -rf "$scratch"' EXIT

cat > "$scratch/plugin.c" <<'EOF'
#include <plughost/plugin.h>

static int m_call(void *self, const char *method, const char *params_json, char **ret_result_json)
{
        (void)self;
        (void)method;
        (void)params_json;
        *ret_result_json = 0;
        return 0;
}

PLUGHOST_PLUGIN("{\"name\":\"p000000\",\"version\":\"1.0.0\","
                "\"interfaces\":[\"org.example.Bench\"]}",
                .call = m_call);
EOF
${CC:-cc} -O2 -fPIC -shared -I"$srcdir/lib" -o "$scratch/plugin.so" "$scratch/plugin.c"
echo "plughostd: $daemon"
echo "machine:   $(nproc) cores, $(uname -r)"
export LD_LIBRARY_PATH=$builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
python3 - "$daemon" "$scratch" "${loaded:-}" "$@" <<'EOF'
import json, os, socket, statistics, subprocess, sys, threading, time

daemon, scratch, loaded_arg, counts = sys.argv[1], sys.argv[2], sys.argv[3], [int(a) for a in sys.argv[4:]]
img = bytearray(open(os.path.join(scratch, "plugin.so"), "rb").read())
key = b'"name":"p000000"'
off = img.find(key) + len(b'"name":"')
METRICS = b'{"method":"io.plughost.Metrics"}\0'
STATUS = b'{"method":"io.plughost.Status"}\0'

class Conn:
        def __init__(self, path):
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                self.buf = b""
        def recv(self):
                while b"\0" not in self.buf:
                        chunk = self.s.recv(1 << 20)
                        if not chunk:
                                raise ConnectionError("closed")
                        self.buf += chunk
                msg, _, self.buf = self.buf.partition(b"\0")
                return msg
        def ask(self, req):
                self.s.sendall(req)
                return self.recv()

def rtts(c, req, n):
        lat, size = [], 0
        for _ in range(n):
                t = time.perf_counter_ns()
                size = len(c.ask(req))
                lat.append((time.perf_counter_ns() - t) / 1e6)
        lat.sort()
        return statistics.median(lat), lat[int(len(lat) * 0.99)], size

def show(what, c):
        p50, p99, size = rtts(c, METRICS, 200)
        m = json.loads(c.ask(METRICS))["parameters"]
        print("  %-34s Metrics p50 %7.2f ms  p99 %7.2f ms  %8d bytes  listed %5d  omitted %6d" %
              (what, p50, p99, size, len(m["pluginCounters"]), m["pluginsOmitted"]))
        s50, s99, _ = rtts(c, STATUS, 200)
        print("  %-34s Status  p50 %7.2f ms  p99 %7.2f ms" % ("", s50, s99))

cut = [0]

def hammer(path, stop):
        # 128 in flight; a client the daemon cuts for the replies it holds
        # (MaxBufferPerConnection=) comes back at once.
        while not stop.is_set():
                try:
                        c = Conn(path)
                        for _ in range(128):
                                c.s.sendall(METRICS)
                        while not stop.is_set():
                                c.recv()
                                c.s.sendall(METRICS)
                except (ConnectionError, BrokenPipeError):
                        cut[0] += 1

for n in counts:
        d = os.path.join(scratch, str(n))
        os.makedirs(d)
        os.chmod(d, 0o755)
        for i in range(n):
                img[off:off + 7] = b"p%06d" % i
                with open(os.path.join(d, "p%06d.so" % i), "wb") as f:
                        f.write(img)
        sock, conf = os.path.join(scratch, "s%d.sock" % n), os.path.join(scratch, "empty.conf")
        open(conf, "w").close()
        proc = subprocess.Popen([daemon, "-c", conf, "-p", d, "-s", sock, "-S", os.path.join(scratch, "st%d" % n)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
                t0 = time.monotonic()
                while True:
                        try:
                                c = Conn(sock)
                                if json.loads(c.ask(STATUS))["parameters"]["plugins"] == n:
                                        break
                        except (FileNotFoundError, ConnectionRefusedError, ConnectionError):
                                pass
                        if time.monotonic() - t0 > 300:
                                raise RuntimeError("not ready")
                        time.sleep(0.05)
                print("\nN=%d plugins" % n)
                show("all discovered", c)
                k = int(loaded_arg) if loaded_arg else n
                t = time.monotonic()
                for base in range(0, k, 1000):
                        batch = range(base, min(k, base + 1000))
                        for i in batch:
                                c.s.sendall(b'{"method":"io.plughost.Call","parameters":{"name":"p%06d","method":"x"}}\0' % i)
                        for i in batch:
                                c.recv()
                print("  (%d plugins loaded and called once in %.1f s)" % (k, time.monotonic() - t))
                show("%d loaded and called" % k, c)
                stop = threading.Event()
                th = threading.Thread(target=hammer, args=(sock, stop))
                th.start()
                time.sleep(0.5)
                s50, s99, _ = rtts(c, STATUS, 200)
                stop.set()
                th.join()
                print("  %-34s Status  p50 %7.2f ms  p99 %7.2f ms  (the hammering client cut %d times)" %
                      ("while another keeps 128 Metrics", s50, s99, cut[0]))
        finally:
                proc.terminate()
                proc.wait(60)
EOF
