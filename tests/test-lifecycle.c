/* Regression tests of plugin lifecycle bugs in plughostd: loads joined,
 * timed out, unloaded or replaced while they run; reloads and stops while
 * plugin code runs; the watcher's renames and overflows; reaping; the reply
 * path; the state directory. Each test starts the real daemon (as
 * test-watch and test-faults do) with the configurable fixture plugin
 * tests/fixtures/behave.c, drives it from outside, and asserts what the
 * fixed daemon must do. test_bugNN_* are the bugs of the issue (each fails
 * on the code it was written against; bug06 only under ASan, where the use
 * after free is in our code); test_found_* are bugs test_stress and runs
 * with poisoned freed memory found on the way; test_attack_NN_* are the
 * findings of a black-box attack (each fails on 2c690fe, before 36b7636).
 * test_stress runs random operations for PH_STRESS_SECONDS (60;
 * PH_STRESS_SEED repeats a run) and checks the daemon's invariants after
 * every step.
 *
 * Runs as root (it stops the daemon with SIGSTOP, lowers its fd limit, and
 * reads /proc). Every wait polls against a deadline; the fixture's own
 * delays stand for slow plugin code. One TCase per test, so one can be run
 * alone: CK_RUN_CASE=bug05 tests/test-lifecycle. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/sockios.h>
#include <time.h>
#include <unistd.h>

#include "daemon-util.h"
#include "daemon-util2.h"
#include "testutil.h"

/* How long something the daemon does by itself may take. */
#define WAIT_MS 5000
/* Slack on top of a deadline the daemon promises (CallTimeoutSec=, ...). */
#define SLACK_MS 2000
/* The daemon's stop drain (STOP_DRAIN_MS in daemon/main.c). */
#define DRAIN_MS 10000

static du_daemon d;
static char *markers;           /* d.dir/markers: behave's live instances */
static char *go;                /* d.dir/go: initWaitFile / untilFile */
static char *flag;              /* d.dir/flag: initRequireFile */

static long long now_ms(void)
{
        return du2_now_ms();
}

static int rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        (void)st;
        (void)type;
        (void)ftw;
        return remove(path);
}

/* Check runs no teardown after a failed test (it ends the test process),
 * and most of these tests fail until their bug is fixed: a process of its
 * own removes the test's directory once the test process is gone (and its
 * daemon, killed by PR_SET_PDEATHSIG). PH_KEEP_TMP=1 keeps it. */
static void janitor(const char *dir)
{
        int p[2];
        pid_t pid;

        if (getenv("PH_KEEP_TMP"))
                return;
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char c;

                setsid();       /* outside the test's process group */
                close(p[1]);
                while (read(p[0], &c, 1) < 0 && errno == EINTR)
                        ;
                /* The daemon may still be dying: try for a few seconds. */
                for (int i = 0; i < 50 && access(dir, F_OK) == 0; i++) {
                        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
                        if (access(dir, F_OK) == 0)
                                du2_nap_ms(100);
                }
                _exit(0);
        }
        close(p[0]);    /* p[1] stays open until the test process ends */
}

static void setup(void)
{
        du_init(&d);
        janitor(d.dir);
        markers = tu_path(d.dir, "markers");
        go = tu_path(d.dir, "go");
        flag = tu_path(d.dir, "flag");
        ck_assert_int_eq(mkdir(markers, 0755), 0);
}

static void touch(const char *path)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

        ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
        close(fd);
}

static void teardown(void)
{
        /* Whatever still waits for the go file returns, so the stop is quick. */
        if (d.dir)
                touch(go);
        du_stop(&d);
        free(markers);
        free(go);
        free(flag);
        markers = go = flag = NULL;
}

/* ---- the configuration file ---- */

static char cfg_text[16384];
static size_t cfg_len;

static void cfg_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void cfg_add(const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(cfg_text + cfg_len, sizeof(cfg_text) - cfg_len, fmt, ap);
        va_end(ap);
        ck_assert(n >= 0 && (size_t)n < sizeof(cfg_text) - cfg_len);
        cfg_len += (size_t)n;
}

/* Starts a configuration with these [Daemon] lines ("" for none). */
static void cfg_begin(const char *daemon_lines)
{
        cfg_len = 0;
        cfg_text[0] = '\0';
        cfg_add("[Daemon]\n%s", daemon_lines);
}

/* A [Plugin NAME] section whose Config= is the object of the members
 * given, one per line: "\"k\":v" strings, NULL-terminated. Each goes on an
 * indented continuation line, so no line nears the 199-character limit. */
static void cfg_plugin(const char *name, ...)
{
        const char *member;
        bool first = true;
        va_list ap;

        cfg_add("[Plugin %s]\nConfig={", name);
        va_start(ap, name);
        while ((member = va_arg(ap, const char *))) {
                ck_assert_uint_lt(strlen(member), 190);
                cfg_add("%s\n  %s", first ? "" : ",", member);
                first = false;
        }
        va_end(ap);
        cfg_add("}\n");
}

static void cfg_write(void)
{
        du_write_config(&d, cfg_text);
}

/* "\"key\":\"value\"", from a small ring of buffers. */
static const char *kv(const char *key, const char *value)
{
        static char ring[8][1024];
        static unsigned next;
        char *s = ring[next++ % 8];

        snprintf(s, sizeof(ring[0]), "\"%s\":\"%s\"", key, value);
        return s;
}

static const char *kvi(const char *key, long value)
{
        static char ring[8][128];
        static unsigned next;
        char *s = ring[next++ % 8];

        snprintf(s, sizeof(ring[0]), "\"%s\":%ld", key, value);
        return s;
}

/* ---- starting the daemon in other ways than du_start ---- */

typedef struct start_opts {
        const char *cwd;                /* chdir there first */
        bool relative;                  /* -s sock -S state, relative to cwd */
        const char *notify;             /* $NOTIFY_SOCKET */
        bool no_wait;                   /* return at once, not once it answers */
        const char *log_level;          /* -l; "info" when NULL */
        bool poison_freed;              /* fill freed memory (glibc and ASan) */
} start_opts;

static void dump_log(void)
{
        size_t size;
        unsigned char *log = tu_read_file(d.log, &size);

        fprintf(stderr, "---- %s ----\n%.*s", d.log, (int)size, (char *)log);
        free(log);
}

static du_conn *try_connect(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        du_conn *c;
        int fd;

        ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                return NULL;
        }
        c = calloc(1, sizeof(*c));
        ck_assert_ptr_nonnull(c);
        c->fd = fd;
        return c;
}

static void start_with(const start_opts *o)
{
        char exe[4096];
        pid_t parent = getpid();
        long long deadline;
        int status;

        snprintf(exe, sizeof(exe), "%s/plughostd", getenv("PH_BUILDDIR"));
        d.pid = fork();
        ck_assert_int_ge(d.pid, 0);
        if (d.pid == 0) {
                int fd = open(d.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                if (o->cwd && chdir(o->cwd) < 0)
                        _exit(126);
                if (o->notify)
                        setenv("NOTIFY_SOCKET", o->notify, 1);
                if (o->poison_freed) {
                        /* Freed memory filled with 0xa5, by glibc (tcache off:
                         * it skips the fill) and by ASan (whose checks do not
                         * cover the system's libuv). */
                        const char *asan = getenv("ASAN_OPTIONS");
                        char opts[1024];

                        snprintf(opts, sizeof(opts), "%s%smax_free_fill_size=65536:free_fill_byte=165",
                                 asan ? asan : "", asan && asan[0] ? ":" : "");
                        setenv("ASAN_OPTIONS", opts, 1);
                        setenv("MALLOC_PERTURB_", "165", 1);
                        setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);
                }
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                execl(exe, exe, "-p", d.plugins, "-s", o->relative ? "sock" : d.socket, "-S",
                      o->relative ? "state" : d.state, "-c", d.config, "-l",
                      o->log_level ? o->log_level : "info", (char *)NULL);
                _exit(127);
        }
        if (o->no_wait)
                return;
        deadline = now_ms() + DU_TIMEOUT_MS;
        for (;;) {
                du_conn *c = try_connect(d.socket);

                if (c) {
                        json_t *r;

                        du_send(c, "{\"method\":\"io.plughost.Status\"}");
                        r = du_recv(c);
                        du_close(c);
                        if (r && !du_error(r)) {
                                json_decref(r);
                                return;
                        }
                        json_decref(r);
                }
                if (waitpid(d.pid, &status, WNOHANG) == d.pid) {
                        d.pid = 0;
                        dump_log();
                        ck_abort_msg("plughostd exited during start-up (status 0x%x)", status);
                }
                ck_assert_msg(now_ms() < deadline, "plughostd did not start in time");
                du2_nap_ms(5);
        }
}

/* Fails the test (with the log) if the daemon is no longer running, or
 * stops running within grace_ms: a daemon that hung up on a client may be
 * dying (a sanitizer report takes a while to print). */
static void assert_alive_for(const char *when, int grace_ms)
{
        long long grace = now_ms() + grace_ms;
        int status;
        pid_t r;

        ck_assert_int_gt(d.pid, 0);
        while ((r = waitpid(d.pid, &status, WNOHANG)) == 0 && now_ms() < grace)
                du2_nap_ms(10);
        if (r == d.pid) {
                d.pid = 0;
                dump_log();
                ck_abort_msg("plughostd died %s: %s %d", when,
                             WIFSIGNALED(status) ? "signal" : "exit status",
                             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        }
}

static void assert_alive(const char *when)
{
        assert_alive_for(when, 0);
}

/* SIGTERM and the exit status, within ms (the test fails past it). */
static int stop_within(int ms)
{
        ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
        return du2_wait_exit(&d, ms);
}

static void assert_exit_0(int status)
{
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                dump_log();
        ck_assert_msg(WIFEXITED(status), "plughostd died of signal %d", WTERMSIG(status));
        ck_assert_msg(WEXITSTATUS(status) == 0, "plughostd exited with %d", WEXITSTATUS(status));
}

/* ---- requests ---- */

/* Reads what is there on c within ms; false on EOF, a reset or a timeout
 * (*timed_out tells which). */
static bool fill_within(du_conn *c, long long deadline, bool *timed_out)
{
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        long long left = deadline - now_ms();
        ssize_t n;
        int r;

        *timed_out = false;
        if (left <= 0) {
                *timed_out = true;
                return false;
        }
        do
                r = poll(&pfd, 1, (int)left);
        while (r < 0 && errno == EINTR);
        ck_assert_int_ge(r, 0);
        if (r == 0) {
                *timed_out = true;
                return false;
        }
        if (c->cap - c->len < 65536) {
                c->cap = c->cap ? c->cap * 2 : 131072;
                c->buf = realloc(c->buf, c->cap);
                ck_assert_ptr_nonnull(c->buf);
        }
        n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n < 0 && errno == ECONNRESET)
                return false;
        ck_assert_msg(n >= 0, "read: %s", strerror(errno));
        c->len += (size_t)n;
        return n > 0;
}

/* The next reply on c within ms, or NULL: then *closed says whether the
 * daemon hung up (else the time ran out). closed may be NULL. */
static json_t *recv_within(du_conn *c, int ms, bool *closed)
{
        long long deadline = now_ms() + ms;
        bool timed_out;

        if (closed)
                *closed = false;
        while (!(c->len && memchr(c->buf, '\0', c->len))) {
                if (!fill_within(c, deadline, &timed_out)) {
                        if (closed)
                                *closed = !timed_out;
                        return NULL;
                }
        }
        return du_recv(c);
}

/* Whether a whole reply is buffered on c already (poll would not say so). */
static bool has_message(const du_conn *c)
{
        return c->len && memchr(c->buf, '\0', c->len);
}

/* The reply's parameters, asserting it is not an error (borrowed). */
static json_t *ok(json_t *reply)
{
        char *text = json_dumps(reply, JSON_COMPACT);

        ck_assert_msg(reply != NULL, "no reply");
        ck_assert_msg(du_error(reply) == NULL, "error reply: %.400s", text);
        free(text);
        return du_params(reply);
}

static void expect_error(json_t *reply, const char *name)
{
        char *text = json_dumps(reply, JSON_COMPACT);

        ck_assert_msg(du_error(reply) && strcmp(du_error(reply), name) == 0, "expected %s, got %.400s",
                      name, text);
        free(text);
}

static void send_load(du_conn *c, const char *name)
{
        char *json;

        ck_assert_int_ge(asprintf(&json, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"%s\"}}",
                                  name), 0);
        du_send(c, json);
        free(json);
}

static json_t *load(const char *name)
{
        return du_requestf(&d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"%s\"}}", name);
}

static void load_ok(const char *name)
{
        json_t *r = load(name);

        ck_assert_str_eq(du_str(ok(r), "plugin.state"), "loaded");
        json_decref(r);
}

static void unload_ok(const char *name)
{
        json_t *r = du_requestf(&d, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"%s\"}}",
                                name);

        ok(r);
        json_decref(r);
}

static char *call_json(const char *name, const char *method, const char *params)
{
        char *json;

        ck_assert_int_ge(asprintf(&json, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"%s\","
                                         "\"method\":\"%s\"%s%s}}", name, method,
                                  params ? ",\"parameters\":" : "", params ? params : ""), 0);
        return json;
}

static void send_call(du_conn *c, const char *name, const char *method, const char *params)
{
        char *json = call_json(name, method, params);

        du_send(c, json);
        free(json);
}

static json_t *call(const char *name, const char *method, const char *params)
{
        char *json = call_json(name, method, params);
        json_t *r = du_request(&d, json);

        free(json);
        return r;
}

/* Info's plugin object as compact text, for messages (malloc'd). */
static char *plugin_text(const char *name)
{
        json_t *i = du2_info(&d, name);
        char *text = i ? json_dumps(json_object_get(i, "plugin"), JSON_COMPACT) : strdup("(none)");

        json_decref(i);
        return text;
}

static char *state_of(const char *name)
{
        json_t *i = du2_info(&d, name);
        char *s = strdup(i ? du_str(i, "plugin.state") : "(none)");

        json_decref(i);
        return s;
}

static long long counter_of(const char *name, const char *counter)
{
        json_t *i = du2_info(&d, name);
        char path[64];
        long long v;

        ck_assert_msg(i != NULL, "no plugin %s", name);
        snprintf(path, sizeof(path), "counters.%s", counter);
        v = du_int(i, path);
        json_decref(i);
        return v;
}

static bool wait_counter(const char *name, const char *counter, long long want, int ms)
{
        long long deadline = now_ms() + ms;

        while (counter_of(name, counter) != want) {
                if (now_ms() > deadline)
                        return false;
                du2_nap_ms(5);
        }
        return true;
}

/* ---- files ---- */

/* Entries of dir whose names start with prefix (all with ""). */
static int count_entries(const char *dir, const char *prefix)
{
        DIR *dp = opendir(dir);
        struct dirent *de;
        int n = 0;

        if (!dp)
                return 0;
        while ((de = readdir(dp)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
                    strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(dp);
        return n;
}

/* Live instances of a plugin ("behave-", "behave-2.0.0-", "second-"). */
static int live(const char *prefix)
{
        return count_entries(markers, prefix);
}

static bool wait_live(const char *prefix, int n, int ms)
{
        long long deadline = now_ms() + ms;

        while (live(prefix) != n) {
                if (now_ms() > deadline)
                        return false;
                du2_nap_ms(5);
        }
        return true;
}

/* The names in dir, as one string, for messages (static). */
static const char *list_dir(const char *dir)
{
        static char out[4096];
        DIR *dp = opendir(dir);
        struct dirent *de;
        size_t len = 0;

        out[0] = '\0';
        while (dp && (de = readdir(dp)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && len < sizeof(out) - 300)
                        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s ", de->d_name);
        if (dp)
                closedir(dp);
        return out;
}

static bool log_has(const char *text)
{
        size_t size;
        unsigned char *log = tu_read_file(d.log, &size);
        bool found;

        log[size] = '\0';
        found = strstr((char *)log, text) != NULL;
        free(log);
        return found;
}

static int log_count(const char *text)
{
        size_t size;
        unsigned char *log = tu_read_file(d.log, &size);
        int n = 0;

        log[size] = '\0';
        for (char *p = (char *)log; (p = strstr(p, text)); p += strlen(text))
                n++;
        free(log);
        return n;
}

/* SIGHUP, and waits until the reload is logged. */
static void reload(void)
{
        int before = log_count("reloaded:");
        long long deadline = now_ms() + WAIT_MS;

        ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
        while (log_count("reloaded:") <= before) {
                ck_assert_msg(now_ms() < deadline, "the reload was never logged");
                du2_nap_ms(5);
        }
}

static char *plugin_path(const char *file)
{
        return tu_path(d.plugins, file);
}

/* ==== 1: a Load joining a load that already timed out ==== */

/* The first Load times out while init still runs; a second Load of the
 * same version joins that load. It must be answered (Timeout at its own
 * deadline, or the outcome), and its connection must serve on. */
START_TEST(test_bug01_join_timed_out_load)
{
        du_conn *a, *b;
        long long t0, t1;
        json_t *r;

        cfg_begin("CallTimeoutSec=1\n");
        cfg_plugin("behave", kvi("initDelayMs", 2500), kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);

        a = du_connect(&d);
        t0 = now_ms();
        send_load(a, "behave");
        r = recv_within(a, 1000 + SLACK_MS, NULL);
        ck_assert_msg(r != NULL, "the first Load was not answered at its deadline");
        expect_error(r, "io.plughost.Timeout");
        json_decref(r);
        ck_assert_msg(now_ms() - t0 < 2000, "the first Load timed out after %lld ms", now_ms() - t0);
        ck_assert_msg(live("behave-") == 1, "init is not running any more: %s", list_dir(markers));

        /* init still runs: this Load joins the load that timed out. */
        b = du_connect(&d);
        t1 = now_ms();
        send_load(b, "behave");
        r = recv_within(b, 1000 + SLACK_MS, NULL);
        ck_assert_msg(r != NULL, "a Load that joined a timed-out load was not answered within %d ms",
                      1000 + SLACK_MS);
        ck_assert_msg(!du_error(r) || strcmp(du_error(r), "io.plughost.Timeout") == 0,
                      "the joining Load got %s", du_error(r));
        json_decref(r);
        fprintf(stderr, "test_bug01: joining Load answered after %lld ms\n", now_ms() - t1);

        du_send(b, "{\"method\":\"io.plughost.Status\"}");
        r = recv_within(b, SLACK_MS, NULL);
        ck_assert_msg(r != NULL, "a Status after the joining Load was not answered");
        ck_assert_str_eq(du_str(ok(r), "version"), PACKAGE_VERSION);
        json_decref(r);
        du_close(a);
        du_close(b);
}
END_TEST

/* ==== 2: Loads joining a load that nobody waits for have no deadline ==== */

/* Sends a Load on a new connection; it must get Timeout within the
 * deadline (CallTimeoutSec=1) plus slack. */
static void assert_joining_load_times_out(const char *origin)
{
        du_conn *c = du_connect(&d);
        long long t0 = now_ms();
        json_t *r;

        send_load(c, "behave");
        r = recv_within(c, 1000 + SLACK_MS, NULL);
        ck_assert_msg(r != NULL, "a Load joining the load started by %s got no answer within %d ms",
                      origin, 1000 + SLACK_MS);
        expect_error(r, "io.plughost.Timeout");
        json_decref(r);
        fprintf(stderr, "test_bug02 (%s): Timeout after %lld ms\n", origin, now_ms() - t0);
        du_close(c);
}

static void config_waiting_behave(void)
{
        cfg_begin("CallTimeoutSec=1\n");
        cfg_plugin("behave", kv("initWaitFile", go), kv("marker", markers), NULL);
        cfg_write();
}

/* A hot replace: behave 1.0.0 loaded, 2.0.0 renamed over it, whose init
 * hangs (until the go file appears). */
START_TEST(test_bug02_join_hot_replace)
{
        char *path = plugin_path("behave.so");
        du_conn *m;
        json_t *ev;

        config_waiting_behave();
        touch(go);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        ck_assert_int_eq(unlink(go), 0);
        m = du2_monitor(&d);
        du2_copy_over(tu_fixture("behave-v2.so"), path);
        ev = du2_wait_event(m, "changed", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no 'changed' event");
        json_decref(ev);
        ck_assert_msg(wait_live("behave-2.0.0-", 1, WAIT_MS), "the init of 2.0.0 never started");

        assert_joining_load_times_out("a hot replace");

        touch(go);
        ev = du2_wait_event(m, "loaded", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "2.0.0 was never loaded");
        json_decref(ev);
        du_close(m);
        free(path);
}
END_TEST

/* The restore at start of a plugin in state/loaded.json, whose init hangs. */
START_TEST(test_bug02_join_restore)
{
        char *json = tu_path(d.state, "loaded.json");
        static const char text[] = "{\"loaded\":[\"behave\"]}";

        config_waiting_behave();
        ck_assert_int_eq(mkdir(d.state, 0750), 0);
        tu_write_file(json, text, strlen(text));
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        ck_assert_msg(wait_live("behave-1.0.0-", 1, WAIT_MS), "the restore never started init");

        assert_joining_load_times_out("the restore at start");

        touch(go);
        ck_assert_msg(du2_wait_state(&d, "behave", "loaded", WAIT_MS), "behave never got loaded");
        free(json);
}
END_TEST

/* A oneway Load, whose init hangs. */
START_TEST(test_bug02_join_oneway)
{
        du_conn *c;

        config_waiting_behave();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        c = du_connect(&d);
        du_send(c, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"behave\"},\"oneway\":true}");
        ck_assert_msg(wait_live("behave-1.0.0-", 1, WAIT_MS), "the oneway Load never started init");

        assert_joining_load_times_out("a oneway Load");

        touch(go);
        ck_assert_msg(du2_wait_state(&d, "behave", "loaded", WAIT_MS), "behave never got loaded");
        du_close(c);
}
END_TEST

/* ==== 3: Unload while the plugin is loading ==== */

START_TEST(test_bug03_unload_while_loading)
{
        du_conn *a, *b;
        long long deadline;
        char *state, *text;
        json_t *r;

        cfg_begin("CallTimeoutSec=20\n");
        cfg_plugin("behave", kv("initWaitFile", go), kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);

        a = du_connect(&d);
        send_load(a, "behave");
        ck_assert_msg(wait_live("behave-", 1, WAIT_MS), "init never started");
        b = du_connect(&d);
        du_send(b, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"behave\"}}");
        r = recv_within(b, SLACK_MS, NULL);
        ck_assert_msg(r != NULL, "the Unload was not answered while init ran");
        ok(r);
        json_decref(r);

        /* init returns: the pending Load is answered once (an error is fine). */
        touch(go);
        r = recv_within(a, WAIT_MS, NULL);
        ck_assert_msg(r != NULL, "the pending Load was never answered");
        text = json_dumps(r, JSON_COMPACT);
        fprintf(stderr, "test_bug03: the pending Load got %.300s\n", text);
        free(text);
        json_decref(r);
        du_send(a, "{\"method\":\"io.plughost.Status\"}");
        r = recv_within(a, SLACK_MS, NULL);
        ck_assert_msg(r != NULL, "no reply to a Status after the Load");
        ck_assert_msg(json_object_get(du_params(r), "uptimeSeconds") != NULL,
                      "the Load was answered twice");
        json_decref(r);

        /* Unloaded means unloaded. */
        for (deadline = now_ms() + WAIT_MS;; du2_nap_ms(5)) {
                state = state_of("behave");
                if (strcmp(state, "loading") != 0)
                        break;
                ck_assert_msg(now_ms() < deadline, "behave stays 'loading'");
                free(state);
        }
        text = plugin_text("behave");
        ck_assert_msg(strcmp(state, "discovered") == 0,
                      "unloaded while loading, behave is '%s' once init returned: %s", state, text);
        free(text);
        free(state);
        ck_assert_int_eq(du2_status_int(&d, "loaded"), 0);
        ck_assert_msg(wait_live("behave-", 0, WAIT_MS), "an instance is still alive: %s",
                      list_dir(markers));
        du_close(a);
        du_close(b);
}
END_TEST

/* ==== 4: SIGHUP frees the configuration plugin threads read ==== */

/* Worker threads read the state directory path out of the running
 * configuration around every init (the quarantine marker); a reload frees
 * that configuration on the loop thread. SIGHUPs are sent as fast as the
 * daemon takes them while a slow init runs and 16 fast plugins are called
 * (which loads them) and unloaded over and over on as many connections.
 * Afterwards the daemon serves, wrote no marker anywhere but its state
 * directory (no "(null)" in its working directory, no failed marker write
 * in its log: today the freed path is often reused by the new
 * configuration's default socket path), left no state/loading/NAME behind,
 * and stops cleanly (ASan: no use after free). */
#define BUG04_PLUGINS 16
#define BUG04_MS 3000

START_TEST(test_bug04_sighup_during_init)
{
        char *cwd = tu_path(d.dir, "cwd"), *loading = tu_path(d.state, "loading"), *null_dir;
        du_conn *c[BUG04_PLUGINS], *slow;
        struct pollfd pfd[BUG04_PLUGINS];
        int pending[BUG04_PLUGINS] = { 0 }, cycles = 0, status;
        long long end, deadline;
        start_opts o = { 0 };
        pid_t hupper;
        json_t *r;

        ck_assert_int_eq(mkdir(cwd, 0755), 0);
        null_dir = tu_path(cwd, "(null)");
        cfg_begin("CallTimeoutSec=30\nWorkers=16\n");
        cfg_plugin("behave", kvi("initDelayMs", 1500), kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        for (int i = 0; i < BUG04_PLUGINS; i++) {
                char name[16], file[32], *path;

                snprintf(name, sizeof(name), "fast%02d", i);
                snprintf(file, sizeof(file), "%s.so", name);
                path = plugin_path(file);
                du2_copy_renamed(tu_fixture("behave-v1.so"), "behave", name, path);
                free(path);
        }
        o.cwd = cwd;
        o.log_level = "notice";         /* not a line per reload */
        start_with(&o);

        slow = du_connect(&d);
        send_load(slow, "behave");
        ck_assert_msg(wait_live("behave-", 1, WAIT_MS), "the slow init never started");

        /* A child sends the SIGHUPs, so the loads below go on meanwhile. */
        hupper = fork();
        ck_assert_int_ge(hupper, 0);
        if (hupper == 0) {
                long long stop = now_ms() + BUG04_MS;
                int n = 0;

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                while (now_ms() < stop && kill(d.pid, SIGHUP) == 0) {
                        n++;
                        du2_nap_ms(n % 4 ? 0 : 1);
                }
                _exit(n > 0 ? 0 : 1);
        }
        for (int i = 0; i < BUG04_PLUGINS; i++) {
                c[i] = du_connect(&d);
                pfd[i] = (struct pollfd){ .fd = c[i]->fd, .events = POLLIN };
        }
        end = now_ms() + BUG04_MS;
        for (;;) {
                bool busy = false;

                for (int i = 0; i < BUG04_PLUGINS; i++) {
                        char name[16], *unl;

                        if (pending[i] || now_ms() >= end)
                                continue;
                        snprintf(name, sizeof(name), "fast%02d", i);
                        /* A Call loads it without saving the loaded set. */
                        send_call(c[i], name, "Version", NULL);
                        ck_assert_int_ge(asprintf(&unl, "{\"method\":\"io.plughost.Unload\","
                                                        "\"parameters\":{\"name\":\"%s\"}}", name), 0);
                        du_send(c[i], unl);
                        free(unl);
                        pending[i] = 2;
                }
                for (int i = 0; i < BUG04_PLUGINS; i++)
                        busy |= pending[i] > 0;
                if (!busy)
                        break;
                ck_assert_int_ge(poll(pfd, BUG04_PLUGINS, WAIT_MS), 0);
                for (int i = 0; i < BUG04_PLUGINS; i++) {
                        if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) && !has_message(c[i]))
                                continue;
                        do {
                                r = recv_within(c[i], WAIT_MS, NULL);
                                if (!r)
                                        assert_alive_for("while reloading during inits", 1000);
                                ck_assert_msg(r != NULL, "connection %d: no reply during the reloads", i);
                                ok(r);
                                json_decref(r);
                                if (--pending[i] == 0)
                                        cycles++;
                        } while (pending[i] > 0 && has_message(c[i]));
                }
        }
        ck_assert_int_eq(waitpid(hupper, &status, 0), hupper);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the SIGHUP sender failed");
        assert_alive("after the SIGHUPs");
        fprintf(stderr, "test_bug04: %d load/unload cycles during %d s of SIGHUPs\n", cycles,
                BUG04_MS / 1000);

        r = recv_within(slow, WAIT_MS, NULL);
        ck_assert_msg(r != NULL, "the slow Load was never answered");
        ok(r);
        json_decref(r);
        du_assert_serving(&d);

        /* Every init is over: no quarantine marker may stay behind. */
        for (deadline = now_ms() + WAIT_MS; count_entries(loading, "") > 0; du2_nap_ms(10))
                ck_assert_msg(now_ms() < deadline, "state/loading keeps %s", list_dir(loading));
        ck_assert_msg(access(null_dir, F_OK) != 0, "a \"(null)\" directory appeared in the daemon's cwd");
        ck_assert_msg(count_entries(cwd, "") == 0, "the daemon wrote into its working directory: %s",
                      list_dir(cwd));
        if (log_has("state: "))
                dump_log();
        ck_assert_msg(!log_has("state: "), "a quarantine marker went to the wrong place (see the log)");
        assert_exit_0(stop_within(DU_TIMEOUT_MS));
        for (int i = 0; i < BUG04_PLUGINS; i++)
                du_close(c[i]);
        du_close(slow);
        free(null_dir);
        free(loading);
        free(cwd);
}
END_TEST

/* ==== 5: a reap asked for while a reap runs is dropped ==== */

/* behave's fini is slow; it is unloaded, and while its fini runs, second
 * is unloaded: second's fini must run once behave's is done, with nothing
 * else happening (no request at all is sent meanwhile). */
START_TEST(test_bug05_reap_while_reaping)
{
        long long t0;

        cfg_begin("");
        cfg_plugin("behave", kv("marker", markers), kvi("finiDelayMs", 1500), NULL);
        cfg_plugin("second", kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_add_plugin(&d, tu_fixture("second-v1.so"), "second.so");
        du_start(&d);
        load_ok("behave");
        load_ok("second");
        ck_assert_int_eq(live("behave-"), 1);
        ck_assert_int_eq(live("second-"), 1);

        unload_ok("behave");
        /* behave's fini has started (it renames its marker ...-fini first). */
        for (t0 = now_ms(); count_entries(markers, "behave-") != 1 || !strstr(list_dir(markers), "-fini");
             du2_nap_ms(2))
                ck_assert_msg(now_ms() - t0 < WAIT_MS, "behave's fini never started: %s",
                              list_dir(markers));
        unload_ok("second");

        /* Only the file system is watched from here on. */
        t0 = now_ms();
        ck_assert_msg(wait_live("second-", 0, 1500 + SLACK_MS),
                      "second's fini did not run within %d ms of its Unload (live: %s)",
                      1500 + SLACK_MS, list_dir(markers));
        fprintf(stderr, "test_bug05: second finalised %lld ms after its Unload\n", now_ms() - t0);
        ck_assert(wait_live("behave-", 0, WAIT_MS));
}
END_TEST

/* ==== 6: conn_flush goes on with a stream the flush itself freed ==== */

/* Reads one raw message; returns its length without the NUL. */
static size_t recv_raw_len(du_conn *c)
{
        long long deadline = now_ms() + WAIT_MS;
        bool timed_out;
        char *nul;
        size_t len;

        while (!(nul = c->len ? memchr(c->buf, '\0', c->len) : NULL))
                ck_assert_msg(fill_within(c, deadline, &timed_out), "no raw reply");
        len = (size_t)(nul - c->buf);
        memmove(c->buf, nul + 1, c->len - len - 1);
        c->len -= len + 1;
        return len;
}

/* Bytes waiting in c's receive queue, once they stop growing. */
static long inq_settled(du_conn *c)
{
        long long deadline = now_ms() + WAIT_MS, since = now_ms();
        int last = -1, n;

        for (;;) {
                ck_assert_int_eq(ioctl(c->fd, SIOCINQ, &n), 0);
                if (n != last) {
                        last = n;
                        since = now_ms();
                } else if (n > 0 && now_ms() - since >= 200) {
                        return n;
                }
                ck_assert_msg(now_ms() < deadline, "the receive queue never settled");
                du2_nap_ms(10);
        }
}

static void wait_daemon_calls(long long n)
{
        long long deadline = now_ms() + WAIT_MS;

        while (du2_status_int(&d, "counters.calls") < n) {
                ck_assert_msg(now_ms() < deadline, "the calls were never all answered");
                du2_nap_ms(5);
        }
}

#define BUG06_EVENTS 1200
#define BUG06_SLEEP_MS 3000
#define BUG06_QUEUE_MAX (8L << 20)      /* SERVER_WRITE_QUEUE_MAX */
#define BUG06_MARGIN (40L << 10)

/* A client that does not read has (8 MiB - 40 KiB) of replies waiting in
 * the daemon's write queue for it; then a Call (sleeping) and a Monitor on
 * the same connection; 1200 events queue behind the Call. When the Call
 * returns, one flush writes its reply and the queued events: the 8 MiB cap
 * closes the connection in the middle, which frees the stream the flush
 * is still reading. Expect: the daemon drops that client and serves on
 * (ASan today: heap-use-after-free in conn_flush). */
START_TEST(test_bug06_flush_closes_stream)
{
        char *stage = tu_path(d.dir, "stage"), req[512];
        long overhead, inq, sent, calls = 0;
        du_conn *x, *c, *m;
        int events = 0;
        long long t0, deadline, clients;
        bool closed = false;

        /* Room for what the setup fills; the events that queue behind the
         * Call are what goes over: the stream's own budget (1200 events of
         * ~220 bytes stay under 4 x MonitorBufferMax, which would drop the
         * stream before the flush this is about). */
        cfg_begin("CallTimeoutSec=30\nMaxBufferPerConnection=16M\nMonitorBufferMax=128K\n");
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        ck_assert_int_eq(mkdir(stage, 0755), 0);
        for (int i = 0; i < BUG06_EVENTS; i++) {
                char name[16], file[32], *path;

                snprintf(name, sizeof(name), "c%05d", i);
                snprintf(file, sizeof(file), "%s.so", name);
                path = tu_path(stage, file);
                du2_copy_renamed(tu_fixture("behave-v1.so"), "behave", name, path);
                free(path);
        }
        du_start(&d);
        load_ok("behave");

        /* The size of a Pad reply around its payload. */
        x = du_connect(&d);
        send_call(x, "behave", "Pad", "{\"bytes\":1000}");
        overhead = (long)recv_raw_len(x) - 1000 + 1;    /* and the NUL */
        du_close(x);
        calls++;

        /* Fill the kernel's buffer, then the daemon's write queue. */
        c = du_connect(&d);
        send_call(c, "behave", "Pad", "{\"bytes\":1000000}");
        sent = 1000000 + overhead;
        calls++;
        inq = inq_settled(c);
        while (sent - inq < BUG06_QUEUE_MAX - BUG06_MARGIN) {
                long bytes = BUG06_QUEUE_MAX - BUG06_MARGIN - (sent - inq) - overhead;

                if (bytes > 1000000)
                        bytes = 1000000;
                if (bytes < 0)
                        bytes = 0;
                snprintf(req, sizeof(req), "{\"bytes\":%ld}", bytes);
                send_call(c, "behave", "Pad", req);
                sent += bytes + overhead;
                calls++;
        }
        wait_daemon_calls(calls);
        fprintf(stderr, "test_bug06: %ld bytes queued in the daemon for the client\n", sent - inq);
        ck_assert_msg(!log_has("disconnecting client"), "setup: the client was dropped too early");

        /* The Call and the Monitor, read together. */
        {
                char *sleep_req = call_json("behave", "Sleep", "{\"ms\":3000}");
                static const char mon[] = "{\"method\":\"io.plughost.Monitor\",\"more\":true}";
                size_t a = strlen(sleep_req) + 1;
                char *both = malloc(a + sizeof(mon));

                ck_assert_ptr_nonnull(both);
                memcpy(both, sleep_req, a);
                memcpy(both + a, mon, sizeof(mon));
                t0 = now_ms();
                ck_assert(du_send_raw(c, both, a + sizeof(mon)));
                free(both);
                free(sleep_req);
        }
        deadline = now_ms() + WAIT_MS;
        while (du2_status_int(&d, "counters.callsInFlight") != 1)
                ck_assert_msg(now_ms() < deadline, "the Sleep never started");
        m = du2_monitor(&d);
        for (int i = 0; i < BUG06_EVENTS; i++) {
                char file[32], *from, *to;

                snprintf(file, sizeof(file), "c%05d.so", i);
                from = tu_path(stage, file);
                to = plugin_path(file);
                ck_assert_int_eq(rename(from, to), 0);
                free(from);
                free(to);
        }
        while (events < BUG06_EVENTS) {
                json_t *ev = du2_wait_event(m, "added", NULL, t0 + BUG06_SLEEP_MS - 300);

                if (!ev)
                        break;
                json_decref(ev);
                events++;
        }
        fprintf(stderr, "test_bug06: %d events queued behind the Call after %lld ms\n", events,
                now_ms() - t0);
        ck_assert_msg(events >= 700, "setup: only %d events before the Call returned", events);
        clients = du2_status_int(&d, "clients");

        /* The Call returns: the flush, and the daemon drops the client. */
        deadline = t0 + BUG06_SLEEP_MS + WAIT_MS;
        for (;;) {
                du_conn *probe;
                bool dropped;
                json_t *r;

                assert_alive("flushing a Monitor stream that filled the write queue");
                if (!(probe = try_connect(d.socket)))
                        assert_alive_for("flushing a Monitor stream that filled the write queue", 1000);
                ck_assert_ptr_nonnull(probe);
                du_send(probe, "{\"method\":\"io.plughost.Status\"}");
                r = recv_within(probe, WAIT_MS, NULL);
                if (!r)
                        assert_alive_for("flushing a Monitor stream that filled the write queue", 1000);
                ck_assert_msg(r != NULL, "no answer to a Status");
                dropped = du_int(ok(r), "clients") < clients;
                json_decref(r);
                du_close(probe);
                if (dropped)
                        break;
                ck_assert_msg(now_ms() < deadline, "the client that does not read was never dropped");
                du2_nap_ms(5);
        }
        assert_alive_for("after dropping a client in the middle of a flush", 500);
        du_assert_serving(&d);
        /* The client reads at last: what was written, then the end. */
        for (deadline = now_ms() + WAIT_MS; !closed;) {
                bool timed_out;

                c->len = 0;
                closed = !fill_within(c, deadline, &timed_out);
                ck_assert_msg(!timed_out, "the dropped connection was never closed");
        }
        du_close(c);
        du_close(m);
        assert_exit_0(stop_within(DU_TIMEOUT_MS));
        free(stage);
}
END_TEST

/* ==== 7: a rename inside a watched directory is one decision ==== */

/* behave is loaded from behave-1.so, which is renamed to behave.so: one
 * "changed" event (no "removed"), and calls answer all along. */
START_TEST(test_bug07_rename_in_dir)
{
        char *from = plugin_path("behave-1.so"), *to = plugin_path("behave.so");
        du_conn *m, *k;
        long long deadline;
        json_t *ev, *r;
        int calls = 0;

        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave-1.so");
        du_start(&d);
        load_ok("behave");
        m = du2_monitor(&d);
        k = du_connect(&d);
        ck_assert_int_eq(rename(from, to), 0);
        /* Calls meanwhile, until the new file serves. */
        for (deadline = now_ms() + WAIT_MS;; calls++) {
                json_t *info;
                bool done;

                r = du2_call(k, "behave", "Version");
                ck_assert_msg(!du_error(r), "call %d during the rename failed: %s: %s", calls, du_error(r),
                              du_str(du_params(r), "message"));
                json_decref(r);
                info = du2_info(&d, "behave");
                done = info && strstr(du_str(info, "plugin.file"), "/behave.so") &&
                       strcmp(du_str(info, "plugin.state"), "loaded") == 0;
                json_decref(info);
                if (done && calls >= 20)
                        break;
                ck_assert_msg(now_ms() < deadline, "behave.so never served behave");
        }
        ev = du2_wait_event(m, NULL, "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no event for the rename");
        ck_assert_msg(strcmp(du_str(ev, "kind"), "changed") == 0,
                      "the rename gave a '%s' event first, not 'changed'", du_str(ev, "kind"));
        json_decref(ev);
        while ((ev = du2_wait_event(m, NULL, "behave", now_ms() + 300))) {
                ck_assert_msg(strcmp(du_str(ev, "kind"), "removed") != 0, "a 'removed' event for the rename");
                json_decref(ev);
        }
        fprintf(stderr, "test_bug07: %d calls answered during the rename\n", calls);
        du_close(k);
        du_close(m);
        free(from);
        free(to);
}
END_TEST

/* ==== 8: after an inotify overflow, names stay "being written" ==== */

static long read_long_file(const char *path)
{
        FILE *f = fopen(path, "re");
        long v = -1;

        ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
        ck_assert_int_eq(fscanf(f, "%ld", &v), 1);
        fclose(f);
        return v;
}

/* late.so is open for writing (so the watcher holds it back) when the
 * event queue overflows; its writer closes it during the flood, so its
 * IN_CLOSE_WRITE is lost. The queue is flooded while the daemon is
 * stopped (SIGSTOP), with more events than max_queued_events. Then a
 * Rescan must see late.so. */
START_TEST(test_bug08_overflow_writing)
{
        char *late = plugin_path("late.so"), *fa_path = plugin_path(".flood-a"),
             *fb_path = plugin_path(".flood-b");
        long limit = read_long_file("/proc/sys/fs/inotify/max_queued_events");
        size_t size;
        unsigned char *data = tu_read_file(tu_fixture("behave-v1.so"), &size);
        int fd, fa, fb;
        json_t *r, *list;

        ck_assert_msg(limit > 0 && limit <= 4L << 20, "max_queued_events is %ld: too many to flood", limit);
        du_add_plugin(&d, tu_fixture("second-v1.so"), "second.so");
        du_start(&d);
        fd = open(late, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
        r = du_request(&d, "{\"method\":\"io.plughost.Rescan\"}");
        ok(r);
        json_decref(r);
        list = du2_list(&d);
        ck_assert_msg(!du2_find(list, "behave") && !du2_rejected_has(list, "late.so"),
                      "setup: late.so was scanned while open for writing");
        json_decref(list);

        fa = open(fa_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        fb = open(fb_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert(fa >= 0 && fb >= 0);
        ck_assert_int_eq(kill(d.pid, SIGSTOP), 0);
        /* Alternating names: inotify merges only repeats of the last event. */
        for (long i = 0; i < limit + 1000; i++)
                ck_assert_int_eq(write(i % 2 ? fa : fb, "x", 1), 1);
        ck_assert_int_eq(close(fd), 0);
        for (long i = 0; i < 1000; i++)
                ck_assert_int_eq(write(i % 2 ? fa : fb, "x", 1), 1);
        close(fa);
        close(fb);
        ck_assert_int_eq(kill(d.pid, SIGCONT), 0);
        /* The overflow must be read before the Rescan is asked for. */
        for (long long deadline = now_ms() + WAIT_MS; !log_has("overflow"); du2_nap_ms(10))
                ck_assert_msg(now_ms() < deadline, "setup: no inotify queue overflow was logged");

        r = du_request(&d, "{\"method\":\"io.plughost.Rescan\"}");
        ok(r);
        json_decref(r);
        list = du2_list(&d);
        ck_assert_msg(du2_find(list, "behave") != NULL,
                      "after the overflow, a Rescan still takes late.so (closed) for a file being written");
        json_decref(list);
        du_assert_serving(&d);
        free(data);
        free(late);
        free(fa_path);
        free(fb_path);
}
END_TEST

/* ==== 9: stop while a plugin thread is stuck in plugin code ==== */

/* A call sleeps for a minute; SIGTERM: the daemon exits 0 within the
 * drain plus slack, and its log names the stuck plugin. */
START_TEST(test_bug09_stop_stuck_plugin)
{
        size_t size;
        unsigned char *log;
        long long t0;
        bool named = false;
        du_conn *c;
        json_t *r;
        int status;

        cfg_begin("CallTimeoutSec=1\n");
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        c = du_connect(&d);
        send_call(c, "behave", "Sleep", "{\"ms\":60000}");
        r = recv_within(c, 1000 + SLACK_MS, NULL);
        ck_assert_ptr_nonnull(r);
        expect_error(r, "io.plughost.Timeout");
        json_decref(r);

        t0 = now_ms();
        status = stop_within(DRAIN_MS + 3000);
        fprintf(stderr, "test_bug09: exit %lld ms after SIGTERM\n", now_ms() - t0);
        assert_exit_0(status);
        log = tu_read_file(d.log, &size);
        log[size] = '\0';
        for (char *line = strtok((char *)log, "\n"); line; line = strtok(NULL, "\n"))
                named |= strstr(line, "stuck") && strstr(line, "behave");
        if (!named)
                dump_log();
        ck_assert_msg(named, "no log line names 'behave' as stuck");
        free(log);
        du_close(c);
}
END_TEST

/* ==== 10: free() right after uv_close() in the accept path ==== */

/* uv_pipe_open() on an accepted socket fails only if libuv still watches
 * that descriptor number: a rude plugin closes the daemon's inotify
 * descriptor, and the next connection gets its number. The daemon must
 * refuse that connection without freeing a handle libuv still holds. The
 * use after free is in libuv, which ASan does not instrument: the daemon
 * runs with freed memory poisoned (0xa5), so libuv's uv__finish_close
 * trips over the freed handle (an assertion, or a crash). The daemon is
 * killed at the end, not stopped: the stop has a use after free of its
 * own with poisoned memory (test_found_watch_free_at_stop). */
START_TEST(test_bug10_accept_pipe_open_fails)
{
        start_opts o = { .poison_freed = true };
        du_conn *held[64] = { NULL };
        bool dropped = false;
        json_t *r;
        int n;

        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        start_with(&o);
        load_ok("behave");
        du_assert_serving(&d);
        r = call("behave", "CloseInotify", NULL);
        ck_assert_int_ge(du_int(ok(r), "result.closed"), 1);
        json_decref(r);
        /* Connections take the lowest free numbers: keep them until one
         * lands on the closed one. */
        for (n = 0; n < 64 && !dropped; n++) {
                static const char status[] = "{\"method\":\"io.plughost.Status\"}";
                bool closed = false;

                held[n] = du_connect(&d);
                /* A refused connection may be gone before the request is sent. */
                r = du_send_raw(held[n], status, sizeof(status)) ? recv_within(held[n], WAIT_MS, &closed)
                                                                 : (closed = true, NULL);
                ck_assert_msg(r != NULL || closed, "connection %d: no answer, no close", n);
                dropped = r == NULL;
                json_decref(r);
        }
        ck_assert_msg(dropped, "setup: no connection landed on the inotify descriptor's number");
        fprintf(stderr, "test_bug10: connection %d was refused\n", n - 1);
        /* A few loop iterations later (the closing handles), still alive. */
        assert_alive_for("after refusing a connection it could not open", 500);
        for (int i = 0; i < n; i++)
                du_close(held[i]);
        du2_kill9(&d);
}
END_TEST

/* ==== 11: a failed init is remembered after its cause is gone ==== */

/* initFail in Config=: Load fails; Config= fixed and SIGHUP: the next Load
 * runs init again, and succeeds. */
START_TEST(test_bug11_config_fixed_sighup)
{
        json_t *r;

        cfg_begin("");
        cfg_plugin("behave", "\"initFail\":true", kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        r = load("behave");
        expect_error(r, "io.plughost.LoadFailed");
        json_decref(r);

        cfg_begin("");
        cfg_plugin("behave", "\"initFail\":false", kv("marker", markers), NULL);
        cfg_write();
        reload();
        r = load("behave");
        ck_assert_msg(!du_error(r), "Config= fixed and reloaded, Load still fails: %s: %s", du_error(r),
                      du_str(du_params(r), "message"));
        ck_assert_str_eq(du_str(du_params(r), "plugin.state"), "loaded");
        json_decref(r);
        ck_assert_int_eq(live("behave-"), 1);
}
END_TEST

/* initRequireFile missing: Load fails; the file created, Unload, Load: init
 * runs again, and succeeds. */
START_TEST(test_bug11_unload_retries)
{
        json_t *r;

        cfg_begin("");
        cfg_plugin("behave", kv("initRequireFile", flag), kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        r = load("behave");
        expect_error(r, "io.plughost.LoadFailed");
        json_decref(r);

        touch(flag);
        unload_ok("behave");
        r = load("behave");
        ck_assert_msg(!du_error(r), "the environment fixed and unloaded, Load still fails: %s: %s",
                      du_error(r), du_str(du_params(r), "message"));
        ck_assert_str_eq(du_str(du_params(r), "plugin.state"), "loaded");
        json_decref(r);
        ck_assert_int_eq(live("behave-"), 1);
}
END_TEST

/* ==== 12: a failed hot replace shows the version that does not serve ==== */

/* Asserts that p (a Plugin object) shows 1.0.0 serving and a pending 2.0.0
 * of generation gen in state pending_state. */
static void assert_serving_v1(json_t *p, long long gen, const char *pending_state, const char *where)
{
        char *text = json_dumps(p, JSON_COMPACT);
        json_t *pending = json_object_get(p, "pending");

        ck_assert_msg(strcmp(du_str(p, "version"), "1.0.0") == 0 && strcmp(du_str(p, "state"), "loaded") == 0,
                      "%s: not the serving version 1.0.0, loaded: %s", where, text);
        ck_assert_msg(json_is_object(pending), "%s: no 'pending' object: %s", where, text);
        ck_assert_msg(strcmp(du_str(pending, "version"), "2.0.0") == 0, "%s: pending: %s", where, text);
        ck_assert_msg(du_int(pending, "generation") == gen, "%s: pending generation (want %lld): %s", where,
                      gen, text);
        ck_assert_msg(strcmp(du_str(pending, "state"), pending_state) == 0, "%s: pending state (want %s): %s",
                      where, pending_state, text);
        if (strcmp(pending_state, "failed") == 0)
                ck_assert_msg(strlen(du_str(pending, "error")) > 0, "%s: pending error empty: %s", where, text);
        free(text);
}

START_TEST(test_bug12_failed_replace_info)
{
        char *path = plugin_path("behave.so");
        long long gen;
        json_t *ev, *info, *list, *r;
        du_conn *m;

        cfg_begin("");
        cfg_plugin("behave", kv("initWaitFile", go), kv("initRequireFile", flag), kv("marker", markers),
                   NULL);
        cfg_write();
        touch(go);
        touch(flag);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        ck_assert_int_eq(unlink(go), 0);
        ck_assert_int_eq(unlink(flag), 0);
        m = du2_monitor(&d);
        du2_copy_over(tu_fixture("behave-v2.so"), path);
        ev = du2_wait_event(m, "changed", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no 'changed' event");
        gen = du_int(ev, "generation");
        json_decref(ev);
        ck_assert_msg(wait_live("behave-2.0.0-", 1, WAIT_MS), "the init of 2.0.0 never started");

        /* 2.0.0 loading: 1.0.0 serves, and says so. */
        info = du2_info(&d, "behave");
        assert_serving_v1(json_object_get(info, "plugin"), gen, "loading", "Info while 2.0.0 loads");
        json_decref(info);

        /* 2.0.0 fails. */
        touch(go);
        ev = du2_wait_event(m, "failed", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no 'failed' event for 2.0.0");
        json_decref(ev);
        info = du2_info(&d, "behave");
        assert_serving_v1(json_object_get(info, "plugin"), gen, "failed", "Info after 2.0.0 failed");
        json_decref(info);
        list = du2_list(&d);
        assert_serving_v1(du2_find(list, "behave"), gen, "failed", "List after 2.0.0 failed");
        json_decref(list);
        r = call("behave", "Version", NULL);
        ck_assert_str_eq(du_str(ok(r), "result.version"), "1.0.0");
        json_decref(r);
        du_close(m);
        free(path);
}
END_TEST

/* ==== 13: callsInFlight goes negative ==== */

/* A call runs while its plugin's file is removed and added again: once it
 * returned, the plugin's callsInFlight is 0. */
START_TEST(test_bug13_calls_in_flight)
{
        char *path = plugin_path("behave.so");
        du_conn *a, *m;
        json_t *ev, *r;
        long long n;

        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        a = du_connect(&d);
        {
                char params[1200];

                snprintf(params, sizeof(params), "{\"untilFile\":\"%s\",\"ms\":20000}", go);
                send_call(a, "behave", "Sleep", params);
        }
        ck_assert_msg(wait_counter("behave", "callsInFlight", 1, WAIT_MS), "the call never started");
        m = du2_monitor(&d);
        ck_assert_int_eq(unlink(path), 0);
        ev = du2_wait_event(m, "removed", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no 'removed' event");
        json_decref(ev);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        ev = du2_wait_event(m, "added", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no 'added' event");
        json_decref(ev);

        touch(go);
        r = recv_within(a, WAIT_MS, NULL);
        ck_assert_msg(r != NULL, "the call was never answered");
        json_decref(r);
        n = counter_of("behave", "callsInFlight");
        ck_assert_msg(n == 0, "callsInFlight is %lld after the call returned", n);
        ck_assert_int_eq(du2_status_int(&d, "counters.callsInFlight"), 0);
        du_close(a);
        du_close(m);
        free(path);
}
END_TEST

/* ==== 14: Rescan that could not open the directory answers success ==== */

/* The lowest descriptor number the process does not use. */
static int lowest_free_fd(pid_t pid)
{
        char dir[64];
        bool used[65536] = { false };
        DIR *dp;
        struct dirent *de;
        int n;

        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
        dp = opendir(dir);
        ck_assert_ptr_nonnull(dp);
        while ((de = readdir(dp)))
                if (de->d_name[0] != '.' && (n = atoi(de->d_name)) >= 0 && n < 65536)
                        used[n] = true;
        closedir(dp);
        for (n = 0; n < 65536 && used[n]; n++)
                ;
        return n;
}

/* The daemon's RLIMIT_NOFILE lowered (as prlimit --pid does) so that it
 * cannot open a descriptor: a Rescan must answer an error. */
START_TEST(test_bug14_rescan_emfile)
{
        struct rlimit before, starved;
        char *text;
        du_conn *c;
        json_t *r;

        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        c = du_connect(&d);
        du_send(c, "{\"method\":\"io.plughost.Status\"}");
        r = recv_within(c, WAIT_MS, NULL);
        ok(r);
        json_decref(r);

        ck_assert_int_eq(prlimit(d.pid, RLIMIT_NOFILE, NULL, &before), 0);
        starved = (struct rlimit){ (rlim_t)lowest_free_fd(d.pid), before.rlim_max };
        ck_assert_int_eq(prlimit(d.pid, RLIMIT_NOFILE, &starved, NULL), 0);
        du_send(c, "{\"method\":\"io.plughost.Rescan\"}");
        r = recv_within(c, WAIT_MS, NULL);
        /* The limit back before any assertion. */
        ck_assert_int_eq(prlimit(d.pid, RLIMIT_NOFILE, &before, NULL), 0);
        ck_assert_msg(r != NULL, "the Rescan was not answered");
        text = json_dumps(r, JSON_COMPACT);
        ck_assert_msg(du_error(r) || log_has("Too many open files"),
                      "setup: the scan could open the directory (%s)", text);
        ck_assert_msg(du_error(r) && strncmp(du_error(r), "io.plughost.", 12) == 0,
                      "a Rescan that could not open the directory answered %s", text);
        free(text);
        json_decref(r);
        du_close(c);
        du_assert_serving(&d);
}
END_TEST

/* ==== 15: relative --socket and --state-dir, and a plugin that chdir()s ==== */

START_TEST(test_bug15_relative_paths_chdir)
{
        char *elsewhere = tu_path(d.dir, "elsewhere"), *decoy = tu_path(elsewhere, "sock"),
             *json = tu_path(d.state, "loaded.json"), *loading = tu_path(d.state, "loading");
        start_opts o = { .relative = true };
        json_error_t jerr;
        json_t *j;
        char *text;

        ck_assert_int_eq(mkdir(elsewhere, 0755), 0);
        /* A file where the socket would be if "sock" meant elsewhere/sock. */
        touch(decoy);
        cfg_begin("");
        cfg_plugin("behave", kv("chdir", elsewhere), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_add_plugin(&d, tu_fixture("second-v1.so"), "second.so");
        o.cwd = d.dir;
        start_with(&o);
        load_ok("behave");      /* its init moved the daemon to elsewhere/ */
        load_ok("second");

        j = json_load_file(json, 0, &jerr);
        ck_assert_msg(j != NULL, "no %s: %s", json, jerr.text);
        text = json_dumps(j, JSON_COMPACT);
        ck_assert_msg(strstr(text, "\"behave\"") && strstr(text, "\"second\""),
                      "the loaded set in the state directory is %s", text);
        free(text);
        json_decref(j);
        ck_assert_msg(count_entries(loading, "") == 0, "state/loading keeps %s", list_dir(loading));

        assert_exit_0(stop_within(DU_TIMEOUT_MS));
        ck_assert_msg(access(d.socket, F_OK) != 0, "the socket file is left after the stop");
        ck_assert_msg(access(decoy, F_OK) == 0, "the stop unlinked elsewhere/sock");
        free(elsewhere);
        free(decoy);
        free(json);
        free(loading);
}
END_TEST

/* ==== 16: temporary files of an interrupted write stay forever ==== */

/* What a kill -9 in the middle of the atomic writes of daemon/state.c
 * leaves: .loaded.json.XXXXXX in the state directory, .NAME.XXXXXX in
 * state/loading. They are removed at start. */
START_TEST(test_bug16_stale_temporaries)
{
        char *loading = tu_path(d.state, "loading"), *t1 = tu_path(d.state, ".loaded.json.q7Rk2Z"),
             *t2 = tu_path(loading, ".behave.Xc81pA");
        long long deadline;

        ck_assert_int_eq(mkdir(d.state, 0750), 0);
        ck_assert_int_eq(mkdir(loading, 0750), 0);
        tu_write_file(t1, "{\"loaded\":[", 11);
        tu_write_file(t2, "", 0);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        for (deadline = now_ms() + WAIT_MS; access(t1, F_OK) == 0 || access(t2, F_OK) == 0;
             du2_nap_ms(10)) {
                if (now_ms() < deadline)
                        continue;
                fprintf(stderr, "test_bug16: state/ holds %s\n", list_dir(d.state));
                ck_assert_msg(false, "stale temporaries left: state/loading/ holds %s", list_dir(loading));
        }
        load_ok("behave");
        free(loading);
        free(t1);
        free(t2);
}
END_TEST

/* ==== 17: READY=1 after STOPPING=1 ==== */

static bool sigterm_caught(pid_t pid)
{
        char path[64], line[256], exe[4096];
        unsigned long long caught = 0;
        ssize_t n;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
        n = readlink(path, exe, sizeof(exe) - 1);
        if (n <= 0)
                return false;
        exe[n] = '\0';
        if (!strstr(exe, "plughostd"))
                return false;   /* still libtool's wrapper script */
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        /* Caught (a handler) or blocked, to be read from a signalfd: either
         * way a SIGTERM now is the daemon's, not the default action's. */
        while (fgets(line, sizeof(line), f)) {
                unsigned long long v;

                if (sscanf(line, "SigCgt: %llx", &v) == 1 || sscanf(line, "SigBlk: %llx", &v) == 1)
                        caught |= v;
        }
        fclose(f);
        return caught & (1ull << (SIGTERM - 1));
}

#define BUG17_FILES 40000

/* The first scan is slow (40,000 files); SIGTERM comes before it is done
 * (once the daemon handles SIGTERM). systemd must not hear READY=1 after
 * STOPPING=1. */
START_TEST(test_bug17_ready_after_stopping)
{
        char *notify = tu_path(d.dir, "notify"), *one = tu_path(d.dir, "one"), msg[4096];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        start_opts o = { .no_wait = true };
        bool stopping = false, ready_after = false;
        int nfd, status = 0;
        long long deadline;
        pid_t r = 0;

        tu_write_file(one, "x", 1);
        for (int i = 0; i < BUG17_FILES; i++) {
                char name[32], *path;

                snprintf(name, sizeof(name), "f%06d", i);
                path = plugin_path(name);
                ck_assert_int_eq(link(one, path), 0);
                free(path);
        }
        nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(nfd, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify);
        ck_assert_int_eq(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        o.notify = notify;
        start_with(&o);
        for (deadline = now_ms() + DU_TIMEOUT_MS; !sigterm_caught(d.pid); du2_nap_ms(1))
                ck_assert_msg(now_ms() < deadline, "plughostd never set up its signal handlers");
        /* Nothing was said yet: the first scan runs. */
        ck_assert_msg(recv(nfd, msg, sizeof(msg), MSG_DONTWAIT) < 0,
                      "setup: the first scan was done before SIGTERM");
        ck_assert_int_eq(kill(d.pid, SIGTERM), 0);

        for (deadline = now_ms() + DU_TIMEOUT_MS; r == 0;) {
                struct pollfd p = { .fd = nfd, .events = POLLIN };

                r = waitpid(d.pid, &status, WNOHANG);
                while (poll(&p, 1, r ? 0 : 20) == 1) {
                        ssize_t n = recv(nfd, msg, sizeof(msg) - 1, 0);

                        ck_assert_int_gt(n, 0);
                        msg[n] = '\0';
                        if (strstr(msg, "STOPPING=1"))
                                stopping = true;
                        else if (stopping && strstr(msg, "READY=1"))
                                ready_after = true;
                }
                ck_assert_msg(r != 0 || now_ms() < deadline, "plughostd did not stop");
        }
        d.pid = 0;
        ck_assert_msg(stopping, "no STOPPING=1");
        ck_assert_msg(!ready_after, "READY=1 after STOPPING=1");
        assert_exit_0(status);
        close(nfd);
        free(notify);
        free(one);
}
END_TEST

/* ==== found by test_stress and the poisoned runs (not in the issue) ==== */

/* F1: ph_watch_free() closes the watcher's retry timer, then its poll
 * handle, whose close callback frees the watcher; libuv closes handles
 * last in, first out, so it then finishes closing the retry timer inside
 * the freed watcher. With freed memory poisoned, every SIGTERM aborts in
 * uv__finish_close. Expect: a clean stop. */
START_TEST(test_found_watch_free_at_stop)
{
        start_opts o = { .poison_freed = true };

        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        start_with(&o);
        load_ok("behave");
        du_assert_serving(&d);
        assert_exit_0(stop_within(DU_TIMEOUT_MS));
}
END_TEST

/* F2: a Call loads a plugin nobody Loaded; its file is replaced while init
 * runs. The new version is not loaded (the plugin is neither loaded nor
 * wanted), and the old load's outcome is dropped as stale: the plugin
 * stays "loading" for good, while the cache keeps the old version's
 * instance. Expect: once the call is answered and nothing runs, the
 * plugin is not "loading", and what it says agrees with what is alive
 * ("loaded" with an instance, or no instance left). */
/* A Load waits in the pool's queue (one worker thread, busy with a
 * call) when its plugin's file is deleted: the removal takes the load
 * back before it starts. Expect: the Load is answered (the plugin is
 * gone) and the daemon serves on. (The stress run found a crash here:
 * the take-back finished the load while the plugin was half removed.) */
START_TEST(test_removed_with_queued_load)
{
        char *path = plugin_path("second.so");
        long long deadline;
        du_conn *busy, *c;
        json_t *r;

        cfg_begin("Workers=1\nCallTimeoutSec=30\n");
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_add_plugin(&d, tu_fixture("second-v1.so"), "second.so");
        du_start(&d);
        load_ok("behave");
        busy = du_connect(&d);
        send_call(busy, "behave", "Sleep", "{\"ms\":3000}");
        for (deadline = now_ms() + WAIT_MS; du2_status_int(&d, "counters.callsInFlight") != 1;)
                ck_assert_msg(now_ms() < deadline, "the Sleep never started");
        c = du_connect(&d);
        du_send(c, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"second\"}}");
        du2_nap_ms(200);        /* the Load is queued behind the Sleep */
        ck_assert_int_eq(unlink(path), 0);
        r = recv_within(c, WAIT_MS, NULL);
        assert_alive_for("removing a plugin whose load was queued", 500);
        ck_assert_msg(r != NULL, "the Load was never answered");
        ck_assert_msg(du_error(r) != NULL, "the Load of a removed plugin succeeded");
        json_decref(r);
        du_assert_serving(&d);
        r = recv_within(busy, WAIT_MS, NULL);
        ck_assert_msg(r && !du_error(r), "the Sleep failed");
        json_decref(r);
        du_close(c);
        du_close(busy);
        free(path);
}
END_TEST

START_TEST(test_found_stuck_loading)
{
        char *path = plugin_path("behave.so"), *state = NULL, *text;
        long long deadline;
        du_conn *c, *m;
        json_t *ev, *r;

        cfg_begin("CallTimeoutSec=10\n");
        cfg_plugin("behave", kv("initWaitFile", go), kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        m = du2_monitor(&d);
        c = du_connect(&d);
        send_call(c, "behave", "Version", NULL);
        ck_assert_msg(wait_live("behave-1.0.0-", 1, WAIT_MS), "init never started");
        du2_copy_over(tu_fixture("behave-v2.so"), path);
        ev = du2_wait_event(m, "changed", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no 'changed' event");
        json_decref(ev);
        touch(go);
        r = recv_within(c, WAIT_MS, NULL);
        ck_assert_msg(r != NULL, "the call was never answered");
        json_decref(r);
        ck_assert_int_eq(du2_status_int(&d, "counters.callsInFlight"), 0);
        for (deadline = now_ms() + WAIT_MS;; du2_nap_ms(10)) {
                free(state);
                state = state_of("behave");
                if (strcmp(state, "loading") != 0 || now_ms() > deadline)
                        break;
        }
        text = plugin_text("behave");
        ck_assert_msg(strcmp(state, "loading") != 0, "behave stays 'loading' with nothing running: %s", text);
        if (strcmp(state, "loaded") == 0)
                ck_assert_msg(live("behave-") >= 1, "behave is loaded, and nothing is alive: %s", text);
        else
                ck_assert_msg(wait_live("behave-", 0, WAIT_MS), "behave is %s, and %s is still alive",
                              state, list_dir(markers));
        free(text);
        free(state);
        du_close(c);
        du_close(m);
        free(path);
}
END_TEST

/* ==== the black-box attack (fixed in 36b7636) ==== */

/* The times s occurs in text. */
static int occurrences(const char *text, const char *s)
{
        int n = 0;

        for (const char *p = text; (p = strstr(p, s)); p += strlen(s))
                n++;
        return n;
}

/* The times text occurs in the file at path (0 if it does not exist). */
static int file_count(const char *path, const char *text)
{
        size_t size;
        unsigned char *data;
        int n;

        if (access(path, F_OK) != 0)
                return 0;
        data = tu_read_file(path, &size);
        data[size] = '\0';
        n = occurrences((char *)data, text);
        free(data);
        return n;
}

static bool file_has(const char *path, const char *text)
{
        return file_count(path, text) > 0;
}

static bool wait_file_has(const char *path, const char *text, int ms)
{
        long long deadline = now_ms() + ms;

        while (!file_has(path, text)) {
                if (now_ms() > deadline)
                        return false;
                du2_nap_ms(5);
        }
        return true;
}

/* Whether one line of the daemon's log holds both a and b. */
static bool log_line_has(const char *a, const char *b)
{
        size_t size;
        unsigned char *log = tu_read_file(d.log, &size);
        bool found = false;

        log[size] = '\0';
        for (char *line = strtok((char *)log, "\n"); line && !found; line = strtok(NULL, "\n"))
                found = strstr(line, a) && strstr(line, b);
        free(log);
        return found;
}

/* The error reply's message (borrowed). */
static const char *message_of(json_t *reply)
{
        json_t *m = json_object_get(du_params(reply), "message");

        return json_is_string(m) ? json_string_value(m) : "(no message)";
}

/* Holds the only plugin thread (Workers=1): second.Sleep until the go
 * file exists, on a connection of its own, once it runs (calls is
 * second's callLog). */
static du_conn *hold_thread(const char *calls)
{
        du_conn *s = du_connect(&d);
        char params[1200];

        snprintf(params, sizeof(params), "{\"untilFile\":\"%s\",\"ms\":20000}", go);
        send_call(s, "second", "Sleep", params);
        ck_assert_msg(wait_file_has(calls, "second Sleep\n", WAIT_MS), "second.Sleep never started");
        return s;
}

/* Lets the thread go: the Sleep returns, and then a call of second, queued
 * behind whatever waited for the thread, has run too. */
static void release_thread(du_conn *s)
{
        json_t *r;

        touch(go);
        r = recv_within(s, WAIT_MS, NULL);
        ck_assert_msg(r != NULL, "second.Sleep was not answered once the go file existed");
        ok(r);
        json_decref(r);
        send_call(s, "second", "Version", NULL);
        r = recv_within(s, WAIT_MS, NULL);
        ck_assert_msg(r != NULL, "second.Version was not answered");
        ok(r);
        json_decref(r);
}

/* 1: Workers=1 is busy with second.Sleep; a Load of behave waits for the
 * thread, and behave is unloaded. The Unload is answered, the Load gets
 * LoadFailed, and once the thread is free, behave's init never runs: no
 * instance, "discovered", and the next Load runs init. */
START_TEST(test_attack_01_unload_queued_load)
{
        char *calls = tu_path(d.dir, "calls.log"), *state, *text;
        du_conn *s, *a;
        json_t *r;

        cfg_begin("Workers=1\nCallTimeoutSec=10\n");
        cfg_plugin("behave", kv("marker", markers), kv("callLog", calls), NULL);
        cfg_plugin("second", kv("marker", markers), kv("callLog", calls), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_add_plugin(&d, tu_fixture("second-v1.so"), "second.so");
        du_start(&d);
        load_ok("second");
        s = hold_thread(calls);

        a = du_connect(&d);
        send_load(a, "behave");
        ck_assert_msg(du2_wait_state(&d, "behave", "loading", WAIT_MS), "the Load never got queued");
        unload_ok("behave");
        r = recv_within(a, SLACK_MS, NULL);
        ck_assert_msg(r != NULL, "the queued Load was not answered after the Unload");
        expect_error(r, "io.plughost.LoadFailed");
        json_decref(r);

        /* The thread is free, and what waited for it has run. */
        release_thread(s);
        ck_assert_msg(!file_has(calls, "behave init"),
                      "the init of a load the Unload took back before it got a thread ran later");
        text = plugin_text("behave");
        ck_assert_msg(wait_live("behave-", 0, SLACK_MS),
                      "behave was unloaded before its load got a thread, and an instance is alive: %s (%s)",
                      list_dir(markers), text);
        free(text);
        state = state_of("behave");
        ck_assert_msg(strcmp(state, "discovered") == 0, "behave is '%s' after the Unload", state);
        free(state);
        load_ok("behave");
        ck_assert_msg(file_count(calls, "behave init\n") == 1 && live("behave-") == 1,
                      "the next Load did not run init once: %s", list_dir(markers));
        du_close(a);
        du_close(s);
        free(calls);
}
END_TEST

/* 2: behave's fini hangs; second, loaded and unloaded meanwhile, is still
 * finalised within a few seconds. */
START_TEST(test_attack_02_fini_hangs_others_finalise)
{
        long long t0;

        cfg_begin("");
        cfg_plugin("behave", kv("marker", markers), kv("finiWaitFile", go), NULL);
        cfg_plugin("second", kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_add_plugin(&d, tu_fixture("second-v1.so"), "second.so");
        du_start(&d);
        load_ok("behave");
        unload_ok("behave");
        for (t0 = now_ms(); !strstr(list_dir(markers), "behave-1.0.0-") || !strstr(list_dir(markers), "-fini");
             du2_nap_ms(5))
                ck_assert_msg(now_ms() - t0 < WAIT_MS, "behave's fini never started: %s", list_dir(markers));

        load_ok("second");
        ck_assert_int_eq(live("second-"), 1);
        unload_ok("second");
        ck_assert_msg(wait_live("second-", 0, 3000),
                      "with behave's fini hanging, second's fini did not run within 3 s of its Unload: %s",
                      list_dir(markers));
        touch(go);
        ck_assert(wait_live("behave-", 0, WAIT_MS));
}
END_TEST

/* 3: SIGTERM with a plugin loaded whose fini hangs: exit 0 within the drain
 * plus slack, and the log names the hung finalising. */
START_TEST(test_attack_03_stop_fini_hangs)
{
        char *never = tu_path(d.dir, "never");
        long long t0;
        int status;

        cfg_begin("");
        cfg_plugin("behave", kv("marker", markers), kv("finiWaitFile", never), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        t0 = now_ms();
        status = stop_within(DRAIN_MS + 2 * SLACK_MS);
        fprintf(stderr, "test_attack_03: exit %lld ms after SIGTERM\n", now_ms() - t0);
        assert_exit_0(status);
        if (!log_line_has("stopping anyway", "fini"))
                dump_log();
        ck_assert_msg(log_line_has("stopping anyway", "fini"), "the log does not name the hung fini");
        free(never);
}
END_TEST

/* 4: init fails with initFail, and while it runs a reload fixes Config=.
 * The Load that waited gets LoadFailed (the old Config=); then behave,
 * which a client loaded, is loaded again by itself, and a Load succeeds. */
START_TEST(test_attack_04_config_fixed_during_failing_init)
{
        du_conn *a;
        char *text;
        json_t *r;

        cfg_begin("CallTimeoutSec=10\n");
        cfg_plugin("behave", "\"initFail\":true", kv("initWaitFile", go), kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        a = du_connect(&d);
        send_load(a, "behave");
        ck_assert_msg(wait_live("behave-", 1, WAIT_MS), "init never started");

        cfg_begin("CallTimeoutSec=10\n");
        cfg_plugin("behave", "\"initFail\":false", kv("initWaitFile", go), kv("marker", markers), NULL);
        cfg_write();
        reload();
        touch(go);
        r = recv_within(a, WAIT_MS, NULL);
        ck_assert_msg(r != NULL, "the Load was never answered");
        expect_error(r, "io.plughost.LoadFailed");
        json_decref(r);

        text = plugin_text("behave");
        ck_assert_msg(du2_wait_state(&d, "behave", "loaded", WAIT_MS),
                      "Config= fixed while init failed: behave, loaded by a client, was not loaded again: %s",
                      text);
        free(text);
        r = load("behave");
        ck_assert_msg(!du_error(r), "Config= fixed while init failed, Load still fails: %s: %s", du_error(r),
                      message_of(r));
        json_decref(r);
        ck_assert_int_eq(live("behave-"), 1);
        du_close(a);
}
END_TEST

/* 5: SIGTERM while a healthy init runs longer than the drain: after the
 * stop and a restart on the same state directory, behave is not
 * quarantined and loads. */
START_TEST(test_attack_05_stop_slow_init_no_quarantine)
{
        char *state;
        du_conn *a;
        json_t *r;

        cfg_begin("");
        cfg_plugin("behave", kv("initWaitFile", go), kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        a = du_connect(&d);
        send_load(a, "behave");
        ck_assert_msg(wait_live("behave-", 1, WAIT_MS), "init never started");
        assert_exit_0(stop_within(DRAIN_MS + 2 * SLACK_MS));
        du_close(a);

        touch(go);
        du_start(&d);
        state = state_of("behave");
        ck_assert_msg(strcmp(state, "quarantined") != 0, "a slow init at a stop left behave quarantined");
        free(state);
        r = load("behave");
        ck_assert_msg(!du_error(r), "after a stop during a slow init, Load fails: %s: %s", du_error(r),
                      message_of(r));
        ck_assert_str_eq(du_str(du_params(r), "plugin.state"), "loaded");
        json_decref(r);
}
END_TEST

/* Waits for the next event of kind for behave; asserts its version and
 * generation. */
static void expect_event(du_conn *m, const char *kind, const char *version, long long gen, const char *what)
{
        json_t *ev = du2_wait_event(m, kind, "behave", now_ms() + WAIT_MS);
        char *text;

        ck_assert_msg(ev != NULL, "no '%s' event", kind);
        text = json_dumps(ev, JSON_COMPACT);
        ck_assert_msg(json_is_string(json_object_get(ev, "version")) &&
                      strcmp(du_str(ev, "version"), version) == 0 &&
                      json_integer_value(json_object_get(ev, "generation")) == gen,
                      "%s: want version %s, generation %lld: %s", what, version, gen, text);
        free(text);
        json_decref(ev);
}

/* 6: behave 1.0.0 serves; 2.0.0 replaces it and fails. "changed" and
 * "failed" name 2.0.0 (its generation); "unloaded", after Unload, names
 * the 1.0.0 that served, with its generation. */
START_TEST(test_attack_06_event_versions)
{
        char *path = plugin_path("behave.so");
        long long gen1, gen2;
        json_t *info;
        du_conn *m;

        cfg_begin("");
        cfg_plugin("behave", kv("initRequireFile", flag), kv("marker", markers), NULL);
        cfg_write();
        touch(flag);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        info = du2_info(&d, "behave");
        gen1 = du_int(info, "plugin.generation");
        json_decref(info);
        ck_assert_int_eq(unlink(flag), 0);
        m = du2_monitor(&d);
        du2_copy_over(tu_fixture("behave-v2.so"), path);
        /* The new file's generation, from Info (the pending version). */
        for (long long deadline = now_ms() + WAIT_MS;; du2_nap_ms(5)) {
                json_t *pending;

                info = du2_info(&d, "behave");
                pending = json_object_get(json_object_get(info, "plugin"), "pending");
                if (json_is_object(pending) && strcmp(du_str(pending, "state"), "failed") == 0) {
                        gen2 = du_int(pending, "generation");
                        json_decref(info);
                        break;
                }
                json_decref(info);
                ck_assert_msg(now_ms() < deadline, "2.0.0 never failed");
        }
        ck_assert_int_gt(gen2, gen1);
        expect_event(m, "changed", "2.0.0", gen2, "'changed' of a hot replace");
        expect_event(m, "failed", "2.0.0", gen2, "'failed' of a hot replace");
        unload_ok("behave");
        expect_event(m, "unloaded", "1.0.0", gen1, "'unloaded' after the failed replace");
        du_close(m);
        free(path);
}
END_TEST

/* 7: "unloads" counts every instance that stopped serving: 1 after one hot
 * replace (Info and Status), 2 once the file is removed too (Status). */
START_TEST(test_attack_07_unloads_counter)
{
        char *path = plugin_path("behave.so");
        du_conn *m;
        json_t *ev;

        cfg_begin("");
        cfg_plugin("behave", kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        m = du2_monitor(&d);
        du2_copy_over(tu_fixture("behave-v2.so"), path);
        ev = du2_wait_event(m, "loaded", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "2.0.0 was never loaded");
        json_decref(ev);
        ck_assert_msg(counter_of("behave", "unloads") == 1, "after a hot replace, Info says unloads %lld",
                      counter_of("behave", "unloads"));
        ck_assert_msg(du2_status_int(&d, "counters.unloads") == 1,
                      "after a hot replace, Status says unloads %lld", du2_status_int(&d, "counters.unloads"));
        ck_assert_int_eq(unlink(path), 0);
        ev = du2_wait_event(m, "removed", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no 'removed' event");
        json_decref(ev);
        ck_assert_msg(du2_status_int(&d, "counters.unloads") == 2,
                      "after a hot replace and a removal, Status says unloads %lld",
                      du2_status_int(&d, "counters.unloads"));
        du_close(m);
        free(path);
}
END_TEST

/* 8: Workers=1 is busy; calls of behave and of chmodo wait for the thread;
 * behave.so is removed and chmodo.so made writable by others (untrusted).
 * Both calls are answered NoSuchPlugin at once, and neither runs. */
START_TEST(test_attack_08_queued_call_plugin_removed)
{
        char *calls = tu_path(d.dir, "calls.log"), *gone = plugin_path("behave.so"),
             *open_to_all = plugin_path("chmodo.so");
        du_conn *s, *a, *b;
        json_t *r;

        cfg_begin("Workers=1\nCallTimeoutSec=10\n");
        cfg_plugin("behave", kv("marker", markers), kv("callLog", calls), NULL);
        cfg_plugin("chmodo", kv("marker", markers), kv("callLog", calls), NULL);
        cfg_plugin("second", kv("marker", markers), kv("callLog", calls), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du2_copy_renamed(tu_fixture("behave-v1.so"), "behave", "chmodo", open_to_all);
        du_add_plugin(&d, tu_fixture("second-v1.so"), "second.so");
        du_start(&d);
        load_ok("behave");
        load_ok("chmodo");
        load_ok("second");
        s = hold_thread(calls);

        a = du_connect(&d);
        b = du_connect(&d);
        send_call(a, "behave", "Echo", NULL);
        send_call(b, "chmodo", "Echo", NULL);
        ck_assert_msg(wait_counter("behave", "callsInFlight", 1, WAIT_MS), "the call of behave never queued");
        ck_assert_msg(wait_counter("chmodo", "callsInFlight", 1, WAIT_MS), "the call of chmodo never queued");
        ck_assert_int_eq(unlink(gone), 0);
        ck_assert_int_eq(chmod(open_to_all, 0646), 0);

        r = recv_within(a, SLACK_MS, NULL);
        ck_assert_msg(r != NULL, "a call waiting for a thread was not answered when its plugin was removed");
        expect_error(r, "io.plughost.NoSuchPlugin");
        json_decref(r);
        r = recv_within(b, SLACK_MS, NULL);
        ck_assert_msg(r != NULL,
                      "a call waiting for a thread was not answered when its plugin became untrusted");
        expect_error(r, "io.plughost.NoSuchPlugin");
        json_decref(r);

        release_thread(s);
        ck_assert_msg(!file_has(calls, "behave Echo"), "the call of the removed behave ran");
        ck_assert_msg(!file_has(calls, "chmodo Echo"), "the call of the untrusted chmodo ran");
        du_close(a);
        du_close(b);
        du_close(s);
        free(calls);
        free(gone);
        free(open_to_all);
}
END_TEST

/* 9: a corrupt state/loaded.json (garbage, then {"loaded":5}) is logged
 * at start, by name. */
START_TEST(test_attack_09_corrupt_loaded_json)
{
        char *json = tu_path(d.state, "loaded.json");
        static const char garbage[] = "garbage", five[] = "{\"loaded\":5}";

        ck_assert_int_eq(mkdir(d.state, 0750), 0);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        tu_write_file(json, garbage, strlen(garbage));
        du_start(&d);
        du_assert_serving(&d);
        if (!log_line_has("warning", "loaded.json"))
                dump_log();
        ck_assert_msg(log_line_has("warning", "loaded.json"), "a loaded.json of garbage was not logged");
        assert_exit_0(stop_within(DU_TIMEOUT_MS));

        ck_assert_int_eq(unlink(d.log), 0);
        tu_write_file(json, five, strlen(five));
        du_start(&d);
        du_assert_serving(&d);
        if (!log_line_has("warning", "loaded.json"))
                dump_log();
        ck_assert_msg(log_line_has("warning", "loaded.json"),
                      "a loaded.json of {\"loaded\":5} was not logged");
        free(json);
}
END_TEST

/* 10: LoadFailed names the plugin once: the failing Load, and the Load the
 * remembered failure answers. */
START_TEST(test_attack_10_load_failed_names_once)
{
        json_t *r;

        cfg_begin("");
        cfg_plugin("behave", kv("initRequireFile", flag), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        for (int i = 0; i < 2; i++) {
                r = load("behave");
                expect_error(r, "io.plughost.LoadFailed");
                fprintf(stderr, "test_attack_10: %s\n", message_of(r));
                /* The plugin's own message names it too ("behave 1.0.0: ..."). */
                ck_assert_msg(occurrences(message_of(r), "behave: ") == 1,
                              "Load %d: LoadFailed names the plugin more than once: %s", i + 1, message_of(r));
                json_decref(r);
        }
}
END_TEST

/* 11: a result that is JSON but not an object: null is no result (the
 * reply's result is null), 42 and "x" are CallFailed, "not an object". */
START_TEST(test_attack_11_result_not_object)
{
        static const char *const refused[] = { "{\"value\":42}", "{\"value\":\"x\"}" };
        json_t *r, *result;

        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        r = call("behave", "Return", "{\"value\":null}");
        ck_assert_msg(!du_error(r), "a result of null was refused: %s: %s", du_error(r), message_of(r));
        result = json_object_get(du_params(r), "result");
        ck_assert_msg(json_is_null(result), "a result of null is not answered as a null result");
        json_decref(r);
        for (size_t i = 0; i < 2; i++) {
                r = call("behave", "Return", refused[i]);
                expect_error(r, "io.plughost.CallFailed");
                ck_assert_msg(strstr(message_of(r), "not an object"), "%s: %s", refused[i], message_of(r));
                json_decref(r);
        }
}
END_TEST

/* 12 (found while writing the above): a stop must let fini run, on the
 * pool, within the drain. The stop's first check came before the
 * finalising job was queued, so the daemon exited at once with fini not
 * run (and leaked the job record under ASan). Expect: exit 0, every
 * instance finalised (no marker left), the healthy 300 ms fini included. */
START_TEST(test_attack_12_stop_runs_fini)
{
        int status;

        cfg_begin("");
        cfg_plugin("behave", kv("marker", markers), kvi("finiDelayMs", 300), NULL);
        cfg_plugin("second", kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_add_plugin(&d, tu_fixture("second-v1.so"), "second.so");
        du_start(&d);
        load_ok("behave");
        load_ok("second");
        status = stop_within(DRAIN_MS + 2 * SLACK_MS);
        assert_exit_0(status);
        ck_assert_msg(live("") == 0, "fini did not complete at the stop: %s", list_dir(markers));
}
END_TEST

/* 13 (found by test-watch, intermittently): a stop while a Load waits for
 * an init took the Load's waiter for a call's and crashed (strdup of its
 * method, NULL). Expect: the init returns during the drain, the Load is
 * answered LoadFailed, the daemon exits 0 with no instance alive. */
/* 14: behave 1.0.0 (a.so) serves; 2.0.0 (b.so) takes the name and is
 * loaded; b.so is deleted. a.so, scanned long before, takes the name back
 * and is loaded at once: the deleted file's code does not go on serving. */
START_TEST(test_attack_14_shadowed_file_takes_back)
{
        char *b = plugin_path("b.so");
        json_t *ev, *info;
        du_conn *m;

        cfg_begin("");
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "a.so");
        du_start(&d);
        load_ok("behave");
        m = du2_monitor(&d);
        du_add_plugin(&d, tu_fixture("behave-v2.so"), "b.so");
        ev = du2_wait_event(m, "loaded", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev && strcmp(du_str(ev, "version"), "2.0.0") == 0, "2.0.0 was not loaded");
        json_decref(ev);
        ck_assert_int_eq(unlink(b), 0);
        ev = du2_wait_event(m, "loaded", "behave", now_ms() + WAIT_MS);
        ck_assert_msg(ev && strcmp(du_str(ev, "version"), "1.0.0") == 0,
                      "1.0.0 was not loaded back when b.so was deleted");
        json_decref(ev);
        info = du2_info(&d, "behave");
        ck_assert_str_eq(du_str(info, "plugin.version"), "1.0.0");
        ck_assert_msg(strstr(du_str(info, "plugin.file"), "/a.so"), "serves %s", du_str(info, "plugin.file"));
        ck_assert_str_eq(du_str(info, "plugin.state"), "loaded");
        json_decref(info);
        du_close(m);
        free(b);
}
END_TEST

/* 15: a plugin whose fini hangs, loaded and unloaded again and again (by
 * any client allowed to Unload): each unload's finalising must not take
 * another plugin thread, or a few cycles hold every thread and every
 * plugin's calls time out. With Workers=4, after 8 cycles another plugin
 * still loads and answers. */
START_TEST(test_attack_15_fini_hangs_cycles)
{
        json_t *r;

        cfg_begin("Workers=4\nCallTimeoutSec=5\n");
        cfg_plugin("behave", kv("marker", markers), kv("finiWaitFile", go), NULL);
        cfg_plugin("second", kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_add_plugin(&d, tu_fixture("second-v1.so"), "second.so");
        du_start(&d);
        for (int i = 0; i < 8; i++) {
                load_ok("behave");
                unload_ok("behave");
        }
        du2_nap_ms(300);        /* the reaps of the last unloads start */
        r = call("second", "Echo", "{}");
        ck_assert_msg(!du_error(r), "second's call with behave's finis hanging: %s", du_error(r));
        json_decref(r);
        touch(go);
        ck_assert_msg(wait_live("behave-", 0, WAIT_MS), "behave's instances were never all finalised: %s",
                      list_dir(markers));
}
END_TEST

START_TEST(test_attack_13_stop_during_load)
{
        du_conn *c;
        json_t *r;
        int status;

        cfg_begin("CallTimeoutSec=30\n");
        cfg_plugin("behave", kv("initWaitFile", go), kv("marker", markers), NULL);
        cfg_write();
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        c = du_connect(&d);
        send_load(c, "behave");
        ck_assert_msg(wait_live("behave-", 1, WAIT_MS), "init never started");
        ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
        du2_nap_ms(200);
        touch(go);
        r = recv_within(c, WAIT_MS, NULL);
        ck_assert_msg(r != NULL, "the Load was not answered at the stop");
        ck_assert_str_eq(du_error(r), "io.plughost.LoadFailed");
        json_decref(r);
        du_close(c);
        status = du2_wait_exit(&d, DRAIN_MS + 2 * SLACK_MS);
        assert_exit_0(status);
        ck_assert_msg(live("") == 0, "an instance is alive after the stop: %s", list_dir(markers));
}
END_TEST

/* ==== stress: random operations, invariants after every step ==== */

#define ST_CONNS 4
#define ST_TIMEOUT_MS 1000              /* CallTimeoutSec=1 */
#define ST_QMAX 64

typedef enum st_kind { ST_LOAD, ST_UNLOAD, ST_ECHO, ST_SLEEP, ST_STATUS, ST_LIST, ST_RESCAN } st_kind;

static const char *const st_kind_names[] = { "Load", "Unload", "Call Echo", "Call Sleep", "Status", "List",
                                             "Rescan" };

typedef struct st_req {
        st_kind kind;
        const char *plugin;
        long tag;
        long long sent_ms;
} st_req;

typedef struct st_conn {
        du_conn *c;
        st_req q[ST_QMAX];              /* requests awaiting their reply, in order */
        unsigned head, n;
} st_conn;

typedef struct st_plugin {
        const char *name;
        const char *file;
        bool present;                   /* its file is in the plugin directory */
        bool removable;
} st_plugin;

static st_plugin st_plugins[] = {
        { "behave", "behave.so", true, false },  /* replaced by rename, 1.0.0 <-> 2.0.0 */
        { "second", "second.so", true, true },
        { "slowin", "slowin.so", true, false },  /* init takes 300 ms (CallTimeoutSec=1) */
        { "slowbb", "slowbb.so", true, true },   /* init takes 1300 ms: its loads time out */
        { "failin", "failin.so", true, false },  /* init fails */
        { "norm01", "norm01.so", true, true },
        { "norm02", "norm02.so", true, true },
};
#define ST_N_PLUGINS (sizeof(st_plugins) / sizeof(st_plugins[0]))

static st_conn st_conns[ST_CONNS];
static char st_history[64][160];
static unsigned st_n_history;
static long st_step;

static void st_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void st_note(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(st_history[st_n_history++ % 64], sizeof(st_history[0]), fmt, ap);
        va_end(ap);
}

/* The last operations, for a failure message. */
static void st_dump_history(void)
{
        unsigned first = st_n_history > 64 ? st_n_history - 64 : 0;

        fprintf(stderr, "test_stress: the last operations (step %ld):\n", st_step);
        for (unsigned i = first; i < st_n_history; i++)
                fprintf(stderr, "  %s\n", st_history[i % 64]);
}

#define st_assert(cond, ...) do {                                               \
                if (!(cond)) {                                                  \
                        st_dump_history();                                      \
                        ck_abort_msg(__VA_ARGS__);                              \
                }                                                               \
        } while (0)

/* Makes file of plugin name in the plugin directory (a renamed copy of
 * behave 1.0.0, or second's own file). */
static void st_add_file(const st_plugin *p)
{
        char *path = plugin_path(p->file), *tmp;

        if (strcmp(p->name, "second") == 0) {
                du_add_plugin(&d, tu_fixture("second-v1.so"), p->file);
        } else if (strcmp(p->name, "behave") == 0) {
                du_add_plugin(&d, tu_fixture("behave-v1.so"), p->file);
        } else {
                ck_assert_int_ge(asprintf(&tmp, "%s/.%s.new", d.plugins, p->file), 0);
                du2_copy_renamed(tu_fixture("behave-v1.so"), "behave", p->name, tmp);
                ck_assert_int_eq(rename(tmp, path), 0);
                free(tmp);
        }
        free(path);
}

static void st_send(st_kind kind, const char *plugin)
{
        st_conn *sc = &st_conns[random() % ST_CONNS];
        st_req *q;
        char *json = NULL, params[256];

        if (sc->n == ST_QMAX)
                return;
        q = &sc->q[(sc->head + sc->n) % ST_QMAX];
        *q = (st_req){ kind, plugin, random() % 1000000, now_ms() };
        switch (kind) {
        case ST_LOAD:
        case ST_UNLOAD:
                ck_assert_int_ge(asprintf(&json, "{\"method\":\"io.plughost.%s\",\"parameters\":{\"name\":\"%s\"}}",
                                          kind == ST_LOAD ? "Load" : "Unload", plugin), 0);
                break;
        case ST_ECHO:
                snprintf(params, sizeof(params), "{\"tag\":%ld}", q->tag);
                json = call_json(plugin, "Echo", params);
                break;
        case ST_SLEEP:
                snprintf(params, sizeof(params), "{\"ms\":%ld}", 20 + q->tag % 400);
                json = call_json(plugin, "Sleep", params);
                break;
        case ST_STATUS:
                json = strdup("{\"method\":\"io.plughost.Status\"}");
                break;
        case ST_LIST:
                json = strdup("{\"method\":\"io.plughost.List\"}");
                break;
        case ST_RESCAN:
                json = strdup("{\"method\":\"io.plughost.Rescan\"}");
                break;
        }
        ck_assert_ptr_nonnull(json);
        if (!du_send_raw(sc->c, json, strlen(json) + 1)) {
                /* Dying, or hung up on us: say which, with the log. */
                int e = errno;

                st_dump_history();
                assert_alive_for("during the stress run (a send failed)", 2000);
                dump_log();
                ck_abort_msg("the daemon hung up on stress connection %d (%s)", (int)(sc - st_conns),
                             strerror(e));
        }
        free(json);
        sc->n++;
        st_note("conn %d: %s %s", (int)(sc - st_conns), st_kind_names[kind], plugin ? plugin : "");
}

/* Checks that reply answers q. */
static void st_check_reply(const st_req *q, json_t *r, int conn)
{
        const char *err = du_error(r);
        char *text = json_dumps(r, JSON_COMPACT);
        json_t *p = du_params(r);
        bool fits;

        if (err) {
                /* Errors a plugin operation may get in this mix; never CallFailed
                 * (Echo and Sleep do not fail) nor PermissionDenied. */
                fits = (q->kind == ST_LOAD || q->kind == ST_ECHO || q->kind == ST_SLEEP) &&
                       (strcmp(err, "io.plughost.LoadFailed") == 0 || strcmp(err, "io.plughost.Timeout") == 0 ||
                        strcmp(err, "io.plughost.NoSuchPlugin") == 0 || strcmp(err, "io.plughost.Busy") == 0);
                fits |= q->kind == ST_UNLOAD && strcmp(err, "io.plughost.NoSuchPlugin") == 0;
                fits |= q->kind == ST_RESCAN && strcmp(err, "io.plughost.Busy") == 0;
        } else if ((q->kind == ST_LOAD || q->kind == ST_ECHO || q->kind == ST_SLEEP) &&
                   strcmp(q->plugin, "failin") == 0) {
                fits = false;           /* its init always fails */
        } else {
                switch (q->kind) {
                case ST_LOAD:
                        fits = strcmp(du_str(p, "plugin.name"), q->plugin) == 0;
                        break;
                case ST_UNLOAD:
                        fits = json_object_size(p) == 0;
                        break;
                case ST_ECHO:
                        fits = json_integer_value(json_object_get(json_object_get(
                                json_object_get(p, "result"), "echo"), "tag")) == q->tag;
                        break;
                case ST_SLEEP:
                        fits = json_is_true(json_object_get(json_object_get(p, "result"), "slept"));
                        break;
                case ST_STATUS:
                        fits = json_object_get(p, "uptimeSeconds") != NULL;
                        break;
                case ST_LIST:
                        fits = json_is_array(json_object_get(p, "plugins"));
                        break;
                case ST_RESCAN:
                        fits = json_object_get(p, "added") != NULL;
                        break;
                default:
                        fits = false;
                }
        }
        st_assert(fits, "conn %d: %s %s (tag %ld) was answered %.300s", conn, st_kind_names[q->kind],
                  q->plugin ? q->plugin : "", q->tag, text);
        free(text);
}

/* Reads every reply there is; with wait, until every request is answered
 * (each within its deadline). */
static void st_collect(bool wait)
{
        for (;;) {
                struct pollfd pfd[ST_CONNS];
                bool pending = false;
                int r;

                for (int i = 0; i < ST_CONNS; i++) {
                        pfd[i] = (struct pollfd){ .fd = st_conns[i].c->fd, .events = POLLIN };
                        pending |= st_conns[i].n > 0;
                }
                r = poll(pfd, ST_CONNS, wait && pending ? 50 : 0);
                ck_assert_int_ge(r, 0);
                for (int i = 0; i < ST_CONNS; i++) {
                        st_conn *sc = &st_conns[i];
                        bool closed;
                        json_t *reply;

                        while ((r > 0 && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) ||
                               has_message(sc->c)) {
                                pfd[i].revents = 0;
                                reply = recv_within(sc->c, WAIT_MS, &closed);
                                if (!reply)
                                        assert_alive_for("during the stress run", 1000);
                                st_assert(reply != NULL, "conn %d: %s", i,
                                          closed ? "the daemon hung up" : "a partial reply");
                                st_assert(sc->n > 0, "conn %d: a reply nobody asked for", i);
                                st_check_reply(&sc->q[sc->head], reply, i);
                                json_decref(reply);
                                sc->head = (sc->head + 1) % ST_QMAX;
                                sc->n--;
                        }
                        /* Every request has CallTimeoutSec=1 at most, plus queueing. */
                        if (sc->n > 0) {
                                const st_req *q = &sc->q[sc->head];

                                if (now_ms() - q->sent_ms > ST_TIMEOUT_MS + 4000)
                                        assert_alive_for("while requests were waiting", 1000);
                                st_assert(now_ms() - q->sent_ms <= ST_TIMEOUT_MS + 4000,
                                          "conn %d: %s %s (tag %ld) not answered after %lld ms", i,
                                          st_kind_names[q->kind], q->plugin ? q->plugin : "", q->tag,
                                          now_ms() - q->sent_ms);
                        }
                }
                if (!wait || !pending)
                        return;
        }
}

/* Waits until nothing runs: no plugin loading, no call in flight. */
static void st_settle(void)
{
        long long deadline = now_ms() + 3000;

        for (;;) {
                json_t *list = du2_list(&d), *p;
                long long calls = du2_status_int(&d, "counters.callsInFlight");
                char loading[256] = "";
                size_t i;

                json_array_foreach(json_object_get(list, "plugins"), i, p)
                        if (strcmp(du_str(p, "state"), "loading") == 0 && strlen(loading) < 180)
                                snprintf(loading + strlen(loading), sizeof(loading) - strlen(loading),
                                         " %s (generation %lld)", du_str(p, "name"),
                                         du_int(p, "generation"));
                json_decref(list);
                if (calls == 0 && !loading[0])
                        return;
                st_assert(now_ms() < deadline, "the daemon never settled: %lld calls in flight; loading:%s",
                          calls, loading[0] ? loading : " none");
                du2_nap_ms(10);
        }
}

/* List against the markers: a plugin that is not loaded has no live
 * instance (once the reaps are done), a loaded one has one at least. */
static void st_check_alive(void)
{
        long long deadline = now_ms() + 3000;

        for (;;) {
                json_t *list = du2_list(&d);
                char bad[512] = "";

                for (size_t k = 0; k < ST_N_PLUGINS && !bad[0]; k++) {
                        const char *name = st_plugins[k].name;
                        json_t *p = du2_find(list, name);
                        const char *state = p ? du_str(p, "state") : "(gone)";
                        char prefix[32];
                        int n;

                        snprintf(prefix, sizeof(prefix), "%s-", name);
                        n = live(prefix);
                        if (strcmp(state, "loaded") == 0 && n == 0)
                                snprintf(bad, sizeof(bad), "%s is loaded with no live instance", name);
                        else if (strcmp(state, "loaded") != 0 && n > 0)
                                snprintf(bad, sizeof(bad), "%s is %s with %d live instances (%s)", name,
                                         state, n, list_dir(markers));
                        else if (p) {
                                json_t *info = du2_info(&d, name);
                                long long calls = info ? du_int(info, "counters.callsInFlight") : 0;

                                json_decref(info);
                                if (calls != 0)
                                        snprintf(bad, sizeof(bad), "%s has %lld calls in flight once settled",
                                                 name, calls);
                        }
                }
                json_decref(list);
                if (!bad[0])
                        return;
                /* A retired instance takes its reap to go. */
                st_assert(now_ms() < deadline, "List disagrees with what is alive: %s", bad);
                du2_nap_ms(20);
        }
}

static int fd_count(pid_t pid)
{
        char dir[64];

        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
        return count_entries(dir, "");
}

/* Whether the daemon runs with ASan (whose quarantine holds freed memory,
 * 256 MB by default, so its RSS grows by design). */
static bool daemon_has_asan(pid_t pid)
{
        char path[64], line[4096];
        bool asan = false;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        while (!asan && fgets(line, sizeof(line), f))
                asan = strstr(line, "libasan") != NULL;
        fclose(f);
        return asan;
}

START_TEST(test_stress)
{
        const char *env = getenv("PH_STRESS_SECONDS"), *seed_env = getenv("PH_STRESS_SEED");
        long seconds = env ? strtol(env, NULL, 10) : 60;
        unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
        int fds0, fds1, behave_v = 1;
        long rss0, rss1, ops = 0, reloads = 0, replaces = 0, removes = 0;
        long long end;
        char *behave_path = plugin_path("behave.so");

        fprintf(stderr, "test_stress: %ld s, seed %u (PH_STRESS_SEED)\n", seconds, seed);
        srandom(seed);
        cfg_begin("CallTimeoutSec=1\nWorkers=8\n");
        cfg_plugin("behave", kv("marker", markers), NULL);
        cfg_plugin("second", kv("marker", markers), NULL);
        cfg_plugin("slowin", kv("marker", markers), kvi("initDelayMs", 300), NULL);
        cfg_plugin("slowbb", kv("marker", markers), kvi("initDelayMs", 1300), NULL);
        cfg_plugin("failin", kv("marker", markers), "\"initFail\":true", NULL);
        cfg_plugin("norm01", kv("marker", markers), NULL);
        cfg_plugin("norm02", kv("marker", markers), kvi("finiDelayMs", 50), NULL);
        cfg_write();
        for (size_t k = 0; k < ST_N_PLUGINS; k++)
                st_add_file(&st_plugins[k]);
        du_start(&d);
        for (int i = 0; i < ST_CONNS; i++)
                st_conns[i] = (st_conn){ .c = du_connect(&d) };
        /* A round of every plugin first, so that lazily made things exist. */
        for (size_t k = 0; k < ST_N_PLUGINS; k++) {
                json_decref(load(st_plugins[k].name));
                st_settle();
                unload_ok(st_plugins[k].name);
        }
        ck_assert(wait_live("", 0, WAIT_MS));
        du_assert_serving(&d);
        fds0 = fd_count(d.pid);
        rss0 = du_rss_kb(d.pid);

        for (end = now_ms() + seconds * 1000; now_ms() < end; st_step++) {
                int burst = 1 + (int)(random() % 8);

                for (int i = 0; i < burst; i++) {
                        st_plugin *p = &st_plugins[random() % ST_N_PLUGINS];
                        long what = random() % 100;

                        if (what < 22)
                                st_send(ST_LOAD, p->name);
                        else if (what < 38)
                                st_send(ST_UNLOAD, p->name);
                        else if (what < 58)
                                st_send(ST_ECHO, p->name);
                        else if (what < 68)
                                st_send(ST_SLEEP, p->name);
                        else if (what < 73)
                                st_send(random() % 2 ? ST_STATUS : ST_LIST, NULL);
                        else if (what < 75)
                                st_send(ST_RESCAN, NULL);
                        else if (what < 82) {
                                behave_v = 3 - behave_v;
                                du2_copy_over(tu_fixture(behave_v == 1 ? "behave-v1.so" : "behave-v2.so"),
                                              behave_path);
                                st_note("replace behave.so by %d.0.0", behave_v);
                                replaces++;
                        } else if (what < 92) {
                                if (!p->removable)
                                        continue;
                                if (p->present) {
                                        char *path = plugin_path(p->file);

                                        ck_assert_int_eq(unlink(path), 0);
                                        free(path);
                                        st_note("remove %s", p->file);
                                        removes++;
                                } else {
                                        st_add_file(p);
                                        st_note("add %s", p->file);
                                }
                                p->present = !p->present;
                        } else if (what < 95) {
                                ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
                                st_note("SIGHUP");
                                reloads++;
                        } else {
                                st_collect(false);
                        }
                        ops++;
                        if (random() % 3 == 0)
                                du2_nap_ms(random() % 30);
                }
                /* The step's checks. */
                st_collect(true);
                assert_alive("during the stress run");
                st_settle();
                st_check_alive();
                for (int i = 0; i < ST_CONNS; i++)
                        st_send(ST_STATUS, NULL);
                st_collect(true);
        }
        fprintf(stderr, "test_stress: %ld steps, %ld operations, %ld replaces, %ld removes, %ld SIGHUPs\n",
                st_step, ops, replaces, removes, reloads);

        /* Everything unloaded and reaped: back to the start. */
        for (size_t k = 0; k < ST_N_PLUGINS; k++) {
                if (!st_plugins[k].present)
                        st_add_file(&st_plugins[k]);
                st_plugins[k].present = true;
        }
        for (long long deadline = now_ms() + WAIT_MS; du2_status_int(&d, "plugins") != ST_N_PLUGINS;
             du2_nap_ms(10))
                ck_assert_msg(now_ms() < deadline, "not every plugin is back");
        st_settle();
        for (size_t k = 0; k < ST_N_PLUGINS; k++)
                unload_ok(st_plugins[k].name);
        st_settle();
        st_assert(wait_live("", 0, WAIT_MS), "instances outlive their Unload: %s", list_dir(markers));
        du_assert_serving(&d);
        fds1 = fd_count(d.pid);
        rss1 = du_rss_kb(d.pid);
        fprintf(stderr, "test_stress: fds %d -> %d, RSS %ld -> %ld kB\n", fds0, fds1, rss0, rss1);
        st_assert(fds1 <= fds0 + 4, "the daemon's descriptors grew from %d to %d", fds0, fds1);
        st_assert(rss1 <= rss0 + (daemon_has_asan(d.pid) ? 400L << 10 : 64L << 10),
                  "the daemon's RSS grew from %ld to %ld kB", rss0, rss1);
        for (int i = 0; i < ST_CONNS; i++)
                du_close(st_conns[i].c);
        free(behave_path);
}
END_TEST

/* ---- the suite ---- */

static void add_case(Suite *s, const char *name, const TTest *test, int timeout)
{
        TCase *tc = tcase_create(name);

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, timeout);
        tcase_add_test(tc, test);
        suite_add_tcase(s, tc);
}

int main(void)
{
        Suite *s = suite_create("lifecycle");
        const char *env = getenv("PH_STRESS_SECONDS");
        long stress = env ? strtol(env, NULL, 10) : 60;

        if (geteuid() != 0) {
                /* SIGSTOP, prlimit and /proc of the daemon need root: say so, do not pass. */
                fprintf(stderr, "test-lifecycle must run as root\n");
                return 99;
        }
        add_case(s, "bug01", test_bug01_join_timed_out_load, 60);
        add_case(s, "bug02_hot_replace", test_bug02_join_hot_replace, 60);
        add_case(s, "bug02_restore", test_bug02_join_restore, 60);
        add_case(s, "bug02_oneway", test_bug02_join_oneway, 60);
        add_case(s, "bug03", test_bug03_unload_while_loading, 60);
        add_case(s, "bug04", test_bug04_sighup_during_init, 90);
        add_case(s, "bug05", test_bug05_reap_while_reaping, 60);
        add_case(s, "bug06", test_bug06_flush_closes_stream, 90);
        add_case(s, "bug07", test_bug07_rename_in_dir, 60);
        add_case(s, "bug08", test_bug08_overflow_writing, 60);
        add_case(s, "bug09", test_bug09_stop_stuck_plugin, 60);
        add_case(s, "bug10", test_bug10_accept_pipe_open_fails, 60);
        add_case(s, "bug11_config", test_bug11_config_fixed_sighup, 60);
        add_case(s, "bug11_unload", test_bug11_unload_retries, 60);
        add_case(s, "bug12", test_bug12_failed_replace_info, 60);
        add_case(s, "bug13", test_bug13_calls_in_flight, 60);
        add_case(s, "bug14", test_bug14_rescan_emfile, 60);
        add_case(s, "bug15", test_bug15_relative_paths_chdir, 60);
        add_case(s, "bug16", test_bug16_stale_temporaries, 60);
        add_case(s, "bug17", test_bug17_ready_after_stopping, 180);
        add_case(s, "found_watch_free_at_stop", test_found_watch_free_at_stop, 60);
        add_case(s, "found_stuck_loading", test_found_stuck_loading, 60);
        add_case(s, "removed_with_queued_load", test_removed_with_queued_load, 60);
        add_case(s, "attack_01_unload_queued_load", test_attack_01_unload_queued_load, 60);
        add_case(s, "attack_02_fini_hangs", test_attack_02_fini_hangs_others_finalise, 60);
        add_case(s, "attack_03_stop_fini_hangs", test_attack_03_stop_fini_hangs, 60);
        add_case(s, "attack_04_config_fixed_during_init", test_attack_04_config_fixed_during_failing_init, 60);
        add_case(s, "attack_05_stop_slow_init", test_attack_05_stop_slow_init_no_quarantine, 60);
        add_case(s, "attack_06_event_versions", test_attack_06_event_versions, 60);
        add_case(s, "attack_07_unloads_counter", test_attack_07_unloads_counter, 60);
        add_case(s, "attack_08_queued_call_removed", test_attack_08_queued_call_plugin_removed, 60);
        add_case(s, "attack_09_corrupt_loaded_json", test_attack_09_corrupt_loaded_json, 60);
        add_case(s, "attack_10_load_failed_name", test_attack_10_load_failed_names_once, 60);
        add_case(s, "attack_11_result_not_object", test_attack_11_result_not_object, 60);
        add_case(s, "attack_12_stop_runs_fini", test_attack_12_stop_runs_fini, 60);
        add_case(s, "attack_13_stop_during_load", test_attack_13_stop_during_load, 60);
        add_case(s, "attack_14_shadowed_file_takes_back", test_attack_14_shadowed_file_takes_back, 60);
        add_case(s, "attack_15_fini_hangs_cycles", test_attack_15_fini_hangs_cycles, 90);
        add_case(s, "stress", test_stress, (int)stress + 120);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
