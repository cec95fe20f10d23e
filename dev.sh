#!/usr/bin/env bash
# The two Quick start commands of README.md, on a fresh Debian 12 machine as root:
#   ./dev.sh run    install what is missing, build, run plughostd on run/ in the checkout
#                   (./dev.sh run -- ARGS passes ARGS to plughostd: --log-level debug,
#                   --config FILE)
#   ./dev.sh test   install what is missing, build, run the whole test suite,
#                   then the package test
#   ./dev.sh package  build the Debian packages from a copy of the checkout,
#                   install, check, run, lint and purge them (tests/package-test.sh)
# Builds live in build/ (normal, -Werror), build-asan/ (ASan+UBSan),
# build-tsan/ (TSan, for the threaded suites in TSAN_TESTS) and build-fuzz/
# (clang, libFuzzer: each fuzzer runs FUZZ_SECONDS, 60 by default).
set -euo pipefail
cd "$(dirname "$0")"
top=$PWD
# configure refuses such a source directory ("unsafe srcdir value"), and the
# paths the build writes into its Makefiles and pkg-config file would split.
case $top in
*[[:space:]]*)
        echo "dev.sh: the checkout's path has a space in it ($top); move it to a path without" >&2
        exit 1 ;;
esac

PACKAGES=(gcc make binutils autoconf automake libtool pkg-config
          libuv1-dev libjansson-dev check libinih-dev nettle-dev libbsd-dev libseccomp-dev systemd socat
          clang libclang-rt-14-dev prometheus
          build-essential dpkg-dev debhelper lintian git)

# The threaded parts under TSan: the instance cache, the daemon's
# isolation suite (the worker handles' locks and pool jobs), and its
# lifecycle suite (a TSan-built plughostd; tests/tsan.supp says why libuv's
# descriptor reuse is suppressed), and the plugin pool's own suite.
TSAN_TESTS="tests/test-cache tests/test-lifecycle tests/test-isolate tests/test-pool"
# The libFuzzer targets `make fuzz-check` runs, and how long each one runs.
FUZZERS="fuzz-scan fuzz-meta fuzz-protocol"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

log() { printf '==> %s\n' "$*"; }

install_deps() {
        local missing=() p
        for p in "${PACKAGES[@]}" libsystemd-dev; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        log "installing: ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then
                echo "dev.sh: missing packages (${missing[*]}); run as root or install them" >&2
                exit 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        local pkgs=() 
        for p in "${missing[@]}"; do
                # Pinned to the installed libsystemd0, or apt upgrades systemd itself.
                if [ "$p" = libsystemd-dev ]; then
                        pkgs+=("libsystemd-dev=$(dpkg-query -W -f='${Version}' libsystemd0)")
                else
                        pkgs+=("$p")
                fi
        done
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

# build DIR [configure flags...]
build() {
        local dir=$1; shift
        [ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ] \
                || { log "autoreconf"; autoreconf -fi >/dev/null 2>&1 || autoreconf -fi; }
        mkdir -p "$dir"
        if [ ! -f "$dir/config.status" ] || [ "$dir/config.status" -ot configure ]; then
                log "configure $dir $*"
                (cd "$dir" && "$top/configure" -q "$@" >/dev/null)
        fi
        log "make $dir"
        make -C "$dir" -s -j"$(nproc)" >/dev/null
}

# Runs `make check` in a build dir, echoes Check's summary lines with the
# suite name, and adds the suite's figures to the totals.
passed=0 failed=0
check_dir() {
        local dir=$1 label=$2 log trs name line n f e
        shift 2
        rm -f "$dir"/tests/*.trs "$dir"/tests/*.log
        make -C "$dir" -s -j"$(nproc)" check "$@" >/dev/null 2>&1 || true
        for trs in "$dir"/tests/*.trs; do
                [ -e "$trs" ] || continue
                log=${trs%.trs}.log
                name=$(basename "${trs%.trs}")
                line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1 || true)
                if [ -n "$line" ]; then
                        echo "[$label] $name: $line"
                        n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
                        f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
                        e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
                        passed=$((passed + n - f - e))
                        failed=$((failed + f + e))
                        # On failure: Check's lines, and what a daemon said
                        # as it died (its error lines, a sanitizer's report).
                        if [ $((f + e)) -gt 0 ]; then
                                grep -E ':[FES]:|^SUMMARY: ' "$log" | sed "s/^/[$label]   /" || true
                                grep -E 'plughostd: err:|^<3>|ERROR: [A-Za-z]+Sanitizer|runtime error:' "$log" |
                                        head -n 20 | sed "s/^/[$label]   log: /" || true
                        fi
                        # A suite that crashed after its summary still fails.
                        if ! grep -q '^:test-result: PASS' "$trs" && [ $((f + e)) -eq 0 ]; then
                                echo "[$label] $name: exited non-zero"; failed=$((failed + 1))
                        fi
                elif grep -q '^:test-result: PASS' "$trs"; then
                        echo "[$label] $name: PASS"; passed=$((passed + 1))
                else
                        echo "[$label] $name: FAIL (no Check summary)"; tail -n 20 "$log" | sed "s/^/[$label]   /"
                        failed=$((failed + 1))
                fi
        done
}

# Runs `make fuzz-check` in a build dir and echoes its line for each fuzzer
# ("fuzz-scan: N runs in S s, no crash (...)"); each fuzzer counts as one test.
fuzz_dir() {
        local dir=$1 label=$2 out t line
        out=$(make -C "$dir" -s fuzz-check FUZZ_SECONDS="$FUZZ_SECONDS" 2>&1) || true
        for t in $FUZZERS; do
                line=$(grep -E "^$t: " <<<"$out" | tail -n 1 || true)
                if [[ $line == "$t: "*", no crash"* ]]; then
                        echo "[$label] $line"; passed=$((passed + 1))
                elif [ -n "$line" ]; then
                        # The FAIL line, then the report lines make indented under it.
                        echo "[$label] $line"
                        sed -n "/^$t: /,/^[^ ]/s/^  /[$label]   /p" <<<"$out"
                        failed=$((failed + 1))
                else
                        echo "[$label] $t: did not run"; tail -n 20 <<<"$out" | sed "s/^/[$label]   /"
                        failed=$((failed + 1))
                fi
        done
}

# The socket ./dev.sh run serves; connecting to it tells whether a daemon
# already listens there (a file with nobody behind it is left from a kill).
daemon_listens() {
        [ -S "$1" ] && socat -u OPEN:/dev/null "UNIX-CONNECT:$1" 2>/dev/null
}

# ./dev.sh run [-- PLUGHOSTD-ARGS...]: the arguments after -- go to plughostd
# after dev.sh's own, so that --config FILE replaces the generated one.
cmd_run() {
        if [ $# -gt 0 ]; then
                [ "$1" = -- ] || { echo "usage: $0 run [-- PLUGHOSTD-ARGS...]" >&2; exit 2; }
                shift
        fi
        install_deps
        # Before anything is built or copied: a second ./dev.sh run must
        # leave the first one's run/plugins alone.
        if daemon_listens "$top/run/plughost.sock"; then
                echo "dev.sh: another daemon listens on run/plughost.sock; stop it first (Ctrl-C in its terminal)" >&2
                exit 1
        fi
        build build --enable-werror
        mkdir -p run/plugins run/state
        # Atomic placement, as the daemon expects: copy to a dotfile, rename.
        # (A dotfile left by an interrupted copy is ignored, then replaced.)
        for so in build/docs/examples/*.so; do
                cp "$so" "run/plugins/.$(basename "$so")" &&
                        mv "run/plugins/.$(basename "$so")" "run/plugins/$(basename "$so")"
        done
        # The build tree's worker, for plugins run with Isolation=process.
        printf '[Daemon]\nWorkerPath=%s/build/plughost-worker\n# Isolation=process\n' "$top" \
                >run/plughostd.conf
        log "plughostd on run/plughost.sock with the plugins in run/plugins (Ctrl-C stops it)"
        log "to build plugins and call them from another terminal (docs/plugin-guide.md), paste:"
        printf '    export PKG_CONFIG_PATH=%q PATH=%q:"$PATH"\n' "$top/build" "$top/build"
        printf '    export PLUGHOST_SOCKET=%q\n' "$top/run/plughost.sock"
        log "then try: plughostctl list"
        exec build/plughostd --plugin-dir "$top/run/plugins" --socket "$top/run/plughost.sock" \
                --state-dir "$top/run/state" --config "$top/run/plughostd.conf" "$@"
}

# Runs tests/package-test.sh (as root: it installs and purges the Debian
# packages), echoes its lines under [package] and adds its "N passed,
# N failed" to the totals; a test that ends without that line failed.
package_test() {
        local log line n f
        log=$(mktemp /tmp/ph-package-log.XXXXXX)
        bash tests/package-test.sh 2>&1 | tee "$log" | sed -u 's/^/[package] /' || true
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
        rm -f "$log"
        if [ -n "$line" ]; then
                n=${line%% passed*}; f=${line#*passed, }; f=${f%% failed}
                passed=$((passed + n)); failed=$((failed + f))
        else
                echo "[package] ended without a summary"; failed=$((failed + 1))
        fi
}

cmd_package() {
        local start=$SECONDS
        install_deps
        package_test
        echo "package time: $((SECONDS - start)) s"
        echo "$passed passed, $failed failed"
        [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}

cmd_test() {
        local start=$SECONDS
        install_deps
        # test-metrics checks its text with promtool (package prometheus):
        # here a missing promtool fails the suite instead of skipping it.
        export PH_REQUIRE_PROMTOOL=1
        if ! build build --enable-werror; then
                echo "build failed"; echo "0 passed, 1 failed"; exit 1
        fi
        check_dir build gcc
        if build build-asan --enable-werror --enable-sanitizers; then
                check_dir build-asan asan
        else
                echo "[asan] build failed"; failed=$((failed + 1))
        fi
        # The threaded parts (the instance cache) once more under TSan.
        if build build-tsan --enable-werror --enable-tsan; then
                # TSan's bookkeeping makes each dlopen/dlclose slow: the
                # cache's stress case runs fewer operations there.
                PH_STRESS_OPS=${PH_STRESS_OPS_TSAN:-3000} PH_STRESS_SECONDS=${PH_STRESS_SECONDS_TSAN:-30} \
                TSAN_OPTIONS="suppressions=$top/tests/tsan.supp${TSAN_OPTIONS:+:$TSAN_OPTIONS}" \
                        check_dir build-tsan tsan "TESTS=$TSAN_TESTS"
        else
                echo "[tsan] build failed"; failed=$((failed + 1))
        fi
        # The parsers (ELF reader, metadata, Varlink framing and requests)
        # under libFuzzer, FUZZ_SECONDS each.
        if build build-fuzz CC=clang --enable-fuzzing; then
                fuzz_dir build-fuzz fuzz
        else
                echo "[fuzz] build failed"; failed=$((failed + 1))
        fi
        # Last: the Debian packages, built from a copy of the checkout,
        # installed, run and purged again.
        package_test
        echo "test time: $((SECONDS - start)) s"
        echo "$passed passed, $failed failed"
        [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}

case "${1:-}" in
run) shift; cmd_run "$@" ;;
test) cmd_test ;;
package) cmd_package ;;
*) echo "usage: $0 run [-- PLUGHOSTD-ARGS...] | test | package" >&2; exit 2 ;;
esac
