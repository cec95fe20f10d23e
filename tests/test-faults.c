/* Faults against the real plughostd: plugins that fail, hang or crash the
 * process, plugin and state files that change or cannot be written, and
 * too few file descriptors. Each test asserts what the faulty party gets
 * and that the daemon keeps serving everyone else. Runs as root: the
 * daemon is also run as uid 65534, and in a private mount namespace. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "daemon-util.h"
#include "testutil.h"

#define NOBODY 65534
/* How long a test waits for something the daemon does by itself (a scan,
 * a restore, a death). */
#define WAIT_MS 5000
/* How soon a read must be answered while plugin code is stuck. */
#define PROMPT_MS 500

static du_daemon d;

static void teardown(void)
{
        du_stop(&d);
}

/* ---- time, processes ---- */

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
}

/* Waits up to ms for the daemon to end; returns its wait status, or -1 if
 * it still runs. Forgets its pid once it ended. */
static int wait_exit(int ms)
{
        long long deadline = now_ms() + ms;
        int status = 0;
        pid_t r;

        ck_assert_int_gt(d.pid, 0);
        while ((r = waitpid(d.pid, &status, WNOHANG)) == 0 && now_ms() < deadline)
                nap_ms(5);
        if (r != d.pid)
                return -1;
        d.pid = 0;
        return status;
}

/* utime + stime of a process, in clock ticks. */
static long long cpu_ticks(pid_t pid)
{
        char path[64], buf[4096], *p;
        unsigned long long utime, stime;
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* The name may hold spaces: fields count from after its ')'. */
        p = strrchr(buf, ')');
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                &utime, &stime), 2);
        return (long long)(utime + stime);
}

/* ---- starting the daemon with a fault ---- */

typedef struct run_opts {
        bool as_nobody;                 /* uid and gid 65534, through setpriv */
        rlim_t nofile;                  /* RLIMIT_NOFILE; 0: inherited */
        const char *tmpfs_size;         /* a private tmpfs this big on the state dir */
} run_opts;

/* What a daemon running as nobody needs: a way to the socket and plugins,
 * a socket directory and a state directory of its own. Plugin files stay
 * root's, which the policy trusts. */
static void prepare_nobody(void)
{
        char *run = tu_path(d.dir, "run");

        ck_assert_int_eq(chmod(d.dir, 0755), 0);
        ck_assert(mkdir(run, 0755) == 0 || errno == EEXIST);
        ck_assert_int_eq(chown(run, NOBODY, NOBODY), 0);
        ck_assert(mkdir(d.state, 0750) == 0 || errno == EEXIST);
        ck_assert_int_eq(chown(d.state, NOBODY, NOBODY), 0);
        if (!strstr(d.socket, "/run/")) {
                free(d.socket);
                d.socket = tu_path(run, "sock");
        }
        free(run);
}

static void dump_log(void)
{
        char *argv[] = { "/bin/cat", d.log, NULL }, *out;

        tu_run(argv, &out);
        fprintf(stderr, "---- %s ----\n%s", d.log, out);
        free(out);
}

/* In the child, before exec: the fault. Exits 125 when it cannot be set. */
static void child_setup(const run_opts *o)
{
        if (o->nofile) {
                struct rlimit rl = { o->nofile, o->nofile };

                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        _exit(125);
        }
        if (o->tmpfs_size) {
                char opts[64];

                snprintf(opts, sizeof(opts), "size=%s,mode=0750", o->tmpfs_size);
                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                    mount("tmpfs", d.state, "tmpfs", 0, opts) < 0)
                        _exit(125);
        }
}

/* A connection, or NULL while nobody listens on the socket. */
static du_conn *try_connect(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        du_conn *c;
        int fd;

        ck_assert_uint_lt(strlen(d.socket), sizeof(sa.sun_path));
        strcpy(sa.sun_path, d.socket);
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

/* du_start with a fault; returns once the daemon answers a Status. */
static void start_with(const run_opts *o)
{
        char exe[4096], *argv[24];
        long long deadline;
        pid_t parent = getpid();
        int n = 0, status;

        snprintf(exe, sizeof(exe), "%s/plughostd", getenv("PH_BUILDDIR"));
        if (o->as_nobody)
                prepare_nobody();
        if (o->tmpfs_size)
                ck_assert(mkdir(d.state, 0750) == 0 || errno == EEXIST);
        if (o->as_nobody) {
                argv[n++] = "/usr/bin/setpriv";
                argv[n++] = "--reuid=65534";
                argv[n++] = "--regid=65534";
                argv[n++] = "--clear-groups";
                /* A credential change clears PR_SET_PDEATHSIG: set it again. */
                argv[n++] = "--pdeathsig=KILL";
        }
        argv[n++] = exe;
        argv[n++] = "-p";
        argv[n++] = d.plugins;
        argv[n++] = "-s";
        argv[n++] = d.socket;
        argv[n++] = "-S";
        argv[n++] = d.state;
        argv[n++] = "-c";
        argv[n++] = d.config;
        argv[n++] = "-l";
        argv[n++] = "info";
        argv[n] = NULL;

        d.pid = fork();
        ck_assert_int_ge(d.pid, 0);
        if (d.pid == 0) {
                int fd = open(d.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                child_setup(o);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                execv(argv[0], argv);
                _exit(127);
        }
        deadline = now_ms() + DU_TIMEOUT_MS;
        for (;;) {
                du_conn *c;

                if ((c = try_connect())) {
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
                nap_ms(5);
        }
}

/* ---- requests ---- */

/* The reply's parameters, asserting it is not an error (borrowed). */
static json_t *ok(json_t *reply)
{
        char *text = json_dumps(reply, JSON_COMPACT);

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

static char *call_json(const char *name, const char *method, const char *params)
{
        char *json;

        ck_assert_int_ge(asprintf(&json, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"%s\","
                                         "\"method\":\"%s\"%s%s}}", name, method,
                                  params ? ",\"parameters\":" : "", params ? params : ""), 0);
        return json;
}

static json_t *call(const char *name, const char *method, const char *params)
{
        char *json = call_json(name, method, params);
        json_t *r = du_request(&d, json);

        free(json);
        return r;
}

static void call_send(du_conn *c, const char *name, const char *method, const char *params)
{
        char *json = call_json(name, method, params);

        du_send(c, json);
        free(json);
}

/* Asserts name answers Version with version. */
static void assert_version(const char *name, const char *version)
{
        json_t *r = call(name, "Version", NULL);

        ck_assert_str_eq(du_str(ok(r), "result.version"), version);
        json_decref(r);
}

/* Info's parameters, or NULL when there is no such plugin. */
static json_t *info(const char *name)
{
        json_t *r = du_requestf(&d, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"%s\"}}",
                                name), *p;

        if (du_error(r)) {
                expect_error(r, "io.plughost.NoSuchPlugin");
                json_decref(r);
                return NULL;
        }
        p = json_incref(du_params(r));
        json_decref(r);
        return p;
}

static bool has_state(const char *name, const char *state)
{
        json_t *i = info(name);
        bool yes = i && strcmp(du_str(i, "plugin.state"), state) == 0;

        json_decref(i);
        return yes;
}

static void assert_state_within(const char *name, const char *state, int ms)
{
        long long deadline = now_ms() + ms;

        while (!has_state(name, state)) {
                json_t *i = info(name);
                char *text = i ? json_dumps(json_object_get(i, "plugin"), JSON_COMPACT) : strdup("none");

                json_decref(i);
                if (now_ms() > deadline) {
                        dump_log();
                        ck_abort_msg("%s is not %s after %d ms: %s", name, state, ms, text);
                }
                free(text);
                nap_ms(10);
        }
}

/* Whether List names the plugin; whether it rejects a file ending in /base. */
static bool listed(const char *name, const char *rejected_base)
{
        json_t *r = du_request(&d, "{\"method\":\"io.plughost.List\"}"), *item;
        bool found = false;
        size_t i;

        if (name)
                json_array_foreach(json_object_get(ok(r), "plugins"), i, item)
                        found |= strcmp(du_str(item, "name"), name) == 0;
        if (rejected_base)
                json_array_foreach(json_object_get(ok(r), "rejected"), i, item) {
                        const char *file = du_str(item, "file"), *slash = strrchr(file, '/');

                        found |= slash && strcmp(slash + 1, rejected_base) == 0;
                }
        json_decref(r);
        return found;
}

static size_t n_listed(void)
{
        json_t *r = du_request(&d, "{\"method\":\"io.plughost.List\"}");
        size_t n = json_array_size(json_object_get(ok(r), "plugins"));

        json_decref(r);
        return n;
}

/* Asserts a Status round trip on a new connection takes less than ms. */
static void assert_status_within(int ms)
{
        long long t0 = now_ms();

        du_assert_serving(&d);
        ck_assert_msg(now_ms() - t0 < ms, "Status took %lld ms", now_ms() - t0);
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

static void assert_log_within(const char *text, int ms)
{
        long long deadline = now_ms() + ms;

        while (!log_has(text)) {
                if (now_ms() > deadline) {
                        dump_log();
                        ck_abort_msg("the log lacks '%s'", text);
                }
                nap_ms(10);
        }
}

static char *plugin_path(const char *file)
{
        return tu_path(d.plugins, file);
}

/* ---- plugin faults ---- */

/* Init fails: LoadFailed with the plugin's message, each time, for Load
 * and for Call; the other plugins serve. */
START_TEST(test_init_fails)
{
        json_t *r, *i;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("init-fail.so"), "init-fail.so");
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_start(&d);
        for (int round = 0; round < 2; round++) {
                r = load("initfail");
                expect_error(r, "io.plughost.LoadFailed");
                ck_assert_str_eq(du_str(du_params(r), "name"), "initfail");
                ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"),
                                             "init failed: refusing to start"));
                json_decref(r);
        }
        r = call("initfail", "Version", NULL);
        expect_error(r, "io.plughost.LoadFailed");
        json_decref(r);
        i = info("initfail");
        ck_assert_str_eq(du_str(i, "plugin.state"), "failed");
        ck_assert_ptr_nonnull(strstr(du_str(i, "plugin.lastError"), "refusing to start"));
        json_decref(i);
        assert_version("counted", "1.0.0");
        du_assert_serving(&d);
}
END_TEST

/* Call fails: CallFailed with the errno and the plugin's message; the
 * plugin stays loaded and its next call is answered. */
START_TEST(test_call_fails)
{
        json_t *r;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_start(&d);
        r = call("counted", "Fail", "{\"why\":\"asked\"}");
        expect_error(r, "io.plughost.CallFailed");
        ck_assert_str_eq(du_str(du_params(r), "name"), "counted");
        ck_assert_str_eq(du_str(du_params(r), "method"), "Fail");
        ck_assert_int_eq(du_int(du_params(r), "errno"), EINVAL);
        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"), "failing as asked"));
        json_decref(r);
        r = call("counted", "NoSuchMethod", NULL);
        expect_error(r, "io.plughost.CallFailed");
        ck_assert_int_eq(du_int(du_params(r), "errno"), EOPNOTSUPP);
        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"), "no method NoSuchMethod"));
        json_decref(r);
        ck_assert(has_state("counted", "loaded"));
        assert_version("counted", "1.0.0");
        r = info("counted");
        ck_assert_int_eq(du_int(r, "counters.callsFailed"), 2);
        json_decref(r);
        du_assert_serving(&d);
}
END_TEST

/* A call past CallTimeoutSec: Timeout on time, while reads and other
 * calls (the same plugin's too) are answered; the connection serves on. */
START_TEST(test_call_deadline)
{
        du_conn *slow, *other;
        long long t0, took;
        json_t *r;

        du_init(&d);
        du_write_config(&d, "[Daemon]\nCallTimeoutSec=0.3\n");
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_fixture("parallel.so"), "parallel.so");
        du_start(&d);
        load_ok("counted");
        load_ok("parallel");

        slow = du_connect(&d);
        other = du_connect(&d);
        t0 = now_ms();
        call_send(slow, "counted", "Sleep", "{\"ms\":2000}");
        du_send(other, "{\"method\":\"io.plughost.List\"}");
        du_send(other, "{\"method\":\"io.plughost.Status\"}");
        call_send(other, "parallel", "Version", NULL);
        call_send(other, "counted", "Version", NULL);
        for (int i = 0; i < 4; i++) {
                r = du_recv(other);
                ck_assert_ptr_nonnull(r);
                ok(r);
                json_decref(r);
        }
        /* All answered while the Sleep still runs. */
        ck_assert_int_lt(now_ms() - t0, 2000);

        r = du_recv(slow);
        took = now_ms() - t0;
        ck_assert_ptr_nonnull(r);
        expect_error(r, "io.plughost.Timeout");
        ck_assert_str_eq(du_str(du_params(r), "name"), "counted");
        ck_assert_str_eq(du_str(du_params(r), "method"), "Sleep");
        ck_assert_double_eq_tol(json_real_value(json_object_get(du_params(r), "seconds")), 0.3, 1e-9);
        json_decref(r);
        ck_assert_msg(took >= 250 && took < 1000, "Timeout after %lld ms, not ~300", took);

        /* The same connection is served again. */
        du_send(slow, "{\"method\":\"io.plughost.Status\"}");
        r = du_recv(slow);
        ck_assert_ptr_nonnull(r);
        ok(r);
        json_decref(r);
        du_close(slow);
        du_close(other);
        assert_version("parallel", "1.0.0");
}
END_TEST

/* Calls that never return, on more connections than there are plugin
 * threads: each gets Timeout; scans go on; other plugins get Timeout or
 * Busy, never silence; reads are prompt; SIGTERM still ends the daemon,
 * cleanly, once the stop's drain deadline has passed. */
START_TEST(test_hung_calls)
{
        enum { HUNG = 4 };
        du_conn *c[HUNG];
        long long t0;
        int status;
        json_t *r;

        du_init(&d);
        /* One plugin may take both threads here (by default it gets half:
         * test-limits checks that). */
        du_write_config(&d, "[Daemon]\nWorkers=2\nCallTimeoutSec=1\n[Policy]\nMaxCallsPerPlugin=2\n");
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_fixture("parallel.so"), "parallel.so");
        du_start(&d);
        load_ok("counted");
        load_ok("parallel");

        t0 = now_ms();
        for (int i = 0; i < HUNG; i++) {
                c[i] = du_connect(&d);
                call_send(c[i], "counted", "Sleep", "{\"ms\":100000000}");
        }
        assert_status_within(PROMPT_MS);
        for (int i = 0; i < HUNG; i++) {
                r = du_recv(c[i]);
                ck_assert_ptr_nonnull(r);
                expect_error(r, "io.plughost.Timeout");
                json_decref(r);
        }
        ck_assert_msg(now_ms() - t0 < 3000, "the hung calls were answered after %lld ms", now_ms() - t0);
        assert_status_within(PROMPT_MS);

        /* Both plugin threads are stuck: other plugins wait for one. */
        t0 = now_ms();
        r = call("parallel", "Version", NULL);
        ck_assert_msg(du_error(r) && (strcmp(du_error(r), "io.plughost.Timeout") == 0 ||
                                      strcmp(du_error(r), "io.plughost.Busy") == 0),
                      "parallel answered %s", du_error(r) ? du_error(r) : "a result");
        json_decref(r);
        ck_assert_int_lt(now_ms() - t0, 3000);

        /* Scans do not need a plugin thread. */
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        t0 = now_ms();
        while (!listed("hello", NULL)) {
                ck_assert_msg(now_ms() - t0 < WAIT_MS, "hello.so was never listed");
                nap_ms(10);
        }
        r = load("hello");
        ck_assert_msg(du_error(r) && (strcmp(du_error(r), "io.plughost.Timeout") == 0 ||
                                      strcmp(du_error(r), "io.plughost.Busy") == 0),
                      "loading hello answered %s", du_error(r) ? du_error(r) : "a result");
        json_decref(r);
        assert_status_within(PROMPT_MS);
        r = du_request(&d, "{\"method\":\"io.plughost.Status\"}");
        ck_assert_int_eq(du_int(ok(r), "counters.callsInFlight"), 2);
        json_decref(r);

        for (int i = 0; i < HUNG; i++)
                du_close(c[i]);
        /* The stop waits for the stuck calls until its deadline, then ends. */
        t0 = now_ms();
        ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
        status = wait_exit(15000);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                dump_log();
        ck_assert_msg(status != -1, "plughostd still runs 15 s after SIGTERM");
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "plughostd ended with status 0x%x",
                      status);
        /* The log names what was stuck. */
        ck_assert(log_has("call counted.Sleep stuck in plugin code"));
        fprintf(stderr, "test_hung_calls: exit %lld ms after SIGTERM\n", now_ms() - t0);
}
END_TEST

/* ---- plugins that take the process down ---- */

/* Waits for the daemon to die of what a plugin did. */
static void assert_died(void)
{
        int status = wait_exit(WAIT_MS);

        ck_assert_msg(status != -1, "plughostd survived");
        ck_assert_msg(!WIFEXITED(status) || WEXITSTATUS(status) != 0,
                      "plughostd exited cleanly instead of dying");
}

/* A call crashes the process; restarted on the same state directory (as
 * systemd would), the daemon loads the same set again, the crashing
 * plugin included: it crashed in a call, not in its init. */
START_TEST(test_call_crashes_process)
{
        du_conn *c;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("call-crash.so"), "call-crash.so");
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        du_start(&d);
        load_ok("callcrash");
        load_ok("counted");
        assert_version("callcrash", "1.0.0");

        c = du_connect(&d);
        call_send(c, "callcrash", "Crash", NULL);
        ck_assert_ptr_null(du_recv(c));
        du_close(c);
        assert_died();

        du_start(&d);
        assert_state_within("counted", "loaded", WAIT_MS);
        assert_state_within("callcrash", "loaded", WAIT_MS);
        ck_assert(has_state("hello", "discovered"));
        assert_version("counted", "1.0.0");
        assert_version("callcrash", "1.0.0");
}
END_TEST

/* Init kills the process: after the restart the plugin is quarantined (not
 * loaded again, so no crash loop) and the rest of the loaded set is back. */
START_TEST(test_init_kills_quarantine)
{
        json_t *r;
        du_conn *c;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("init-kills.so"), "init-kills.so");
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_start(&d);
        load_ok("counted");
        c = du_connect(&d);
        du_send(c, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"initkills\"}}");
        ck_assert_ptr_null(du_recv(c));
        du_close(c);
        assert_died();

        du_start(&d);
        assert_state_within("initkills", "quarantined", WAIT_MS);
        assert_state_within("counted", "loaded", WAIT_MS);
        r = load("initkills");
        expect_error(r, "io.plughost.LoadFailed");
        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"), "quarantined"));
        json_decref(r);
        assert_version("counted", "1.0.0");
        ck_assert_int_eq(waitpid(d.pid, NULL, WNOHANG), 0);
        du_assert_serving(&d);
}
END_TEST

/* ---- in-process plugins: the crash line, signals and the socket ---- */

/* Lines of the daemon's log that hold text. */
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

/* Waits for the daemon to die of sig, and asserts its log holds one crash
 * line, the one that starts with line. In an ASan build ASan reports a
 * SIGSEGV itself (the crash handler chains to it) and exits 1. */
static void assert_crash_line(int sig, const char *line)
{
        int status = wait_exit(WAIT_MS);
        bool asan = log_has("ERROR: AddressSanitizer");

        ck_assert_msg(status != -1, "plughostd survived");
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == sig) &&
            !(asan && sig == SIGSEGV && WIFEXITED(status) && WEXITSTATUS(status) != 0)) {
                dump_log();
                ck_abort_msg("plughostd ended with status 0x%x, not signal %d", status, sig);
        }
        if (log_count("plughostd: fatal: ") != 1 || !log_has(line) ||
            !log_has("; the daemon stops\n")) {
                dump_log();
                ck_abort_msg("the log lacks one crash line '%s...'", line);
        }
}

/* Sends a request whose plugin code kills the daemon: no answer comes. */
static void send_fatal(const char *json)
{
        du_conn *c = du_connect(&d);

        du_send(c, json);
        ck_assert_ptr_null(du_recv(c));
        du_close(c);
}

/* A call that faults: the daemon dies of SIGSEGV, and the one line it
 * writes first names the plugin and the method. */
START_TEST(test_call_segv_line)
{
        char *json;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        json = call_json("behave", "Segv", NULL);
        send_fatal(json);
        free(json);
        assert_crash_line(SIGSEGV, "plughostd: fatal: signal 11 (SIGSEGV) in plugin behave, "
                                   "call \"Segv\" (thread ");
}
END_TEST

/* The same for abort(): SIGABRT, named as such. */
START_TEST(test_call_abort_line)
{
        char *json;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        json = call_json("behave", "Abort", NULL);
        send_fatal(json);
        free(json);
        assert_crash_line(SIGABRT, "plughostd: fatal: signal 6 (SIGABRT) in plugin behave, "
                                   "call \"Abort\" (thread ");
}
END_TEST

/* An init that faults: the line says init. */
START_TEST(test_init_segv_line)
{
        du_init(&d);
        du_write_config(&d, "[Plugin behave]\nConfig={\"initCrash\":\"segv\"}\n");
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        send_fatal("{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"behave\"}}");
        assert_crash_line(SIGSEGV, "plughostd: fatal: signal 11 (SIGSEGV) in plugin behave, init (thread ");
}
END_TEST

/* The other signals that kill: a trap (int3), and ones a plugin raises
 * (SIGUSR1, the first real-time signal) get the line too, and the daemon
 * still dies of them. */
START_TEST(test_call_trap_line)
{
        char *json;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        json = call_json("behave", "Trap", NULL);
        send_fatal(json);
        free(json);
        assert_crash_line(SIGTRAP, "plughostd: fatal: signal 5 (SIGTRAP) in plugin behave, "
                                   "call \"Trap\" (thread ");
}
END_TEST

static void raise_line(int sig, const char *name)
{
        char params[64], line[256], *json;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        load_ok("behave");
        snprintf(params, sizeof(params), "{\"signal\":%d}", sig);
        json = call_json("behave", "Raise", params);
        send_fatal(json);
        free(json);
        snprintf(line, sizeof(line), "plughostd: fatal: signal %d (%s) in plugin behave, call \"Raise\" "
                 "(thread ", sig, name);
        assert_crash_line(sig, line);
}

START_TEST(test_call_usr1_line)
{
        raise_line(SIGUSR1, "SIGUSR1");
}
END_TEST

START_TEST(test_call_rtmin_line)
{
        raise_line(SIGRTMIN, "SIGRTMIN+0");
}
END_TEST

/* A plugin takes SIGTERM (a handler of its own, or SIG_IGN): SIGTERM
 * still stops the daemon, cleanly and soon. */
static void sigterm_taken(const char *params)
{
        int status;
        json_t *r;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        r = call("behave", "Sigterm", params);
        ok(r);
        json_decref(r);
        ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
        status = wait_exit(WAIT_MS);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                dump_log();
        ck_assert_msg(status != -1, "plughostd still runs %d ms after SIGTERM", WAIT_MS);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "plughostd ended with status 0x%x",
                      status);
        ck_assert(log_has("Terminated: stopping"));
}

START_TEST(test_sigterm_plugin_handler)
{
        sigterm_taken(NULL);
}
END_TEST

START_TEST(test_sigterm_plugin_ignores)
{
        sigterm_taken("{\"ignore\":true}");
}
END_TEST

/* A plugin ignores SIGTERM and unblocks it on a thread of its own, where
 * the kernel delivers it: within a second the daemon puts its handler
 * back, with a warning, and a single SIGTERM after that stops it. */
START_TEST(test_sigterm_plugin_thread)
{
        int status;
        json_t *r;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        r = call("behave", "SigtermThread", NULL);
        ok(r);
        json_decref(r);
        nap_ms(1500);
        ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
        status = wait_exit(WAIT_MS);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                dump_log();
        ck_assert_msg(status != -1, "plughostd still runs %d ms after SIGTERM", WAIT_MS);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "plughostd ended with status 0x%x",
                      status);
        ck_assert(log_has("Terminated: stopping"));
        ck_assert(log_has("the disposition of SIGTERM was changed to SIG_IGN, by plugin code: restored"));
}
END_TEST

/* Waits for the daemon to exit with EXIT_FAILURE within 3 s, logging why. */
static void assert_exit_failure(const char *what, const char *log_text)
{
        long long t0 = now_ms();
        int status = wait_exit(3000);

        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != EXIT_FAILURE)
                dump_log();
        ck_assert_msg(status != -1, "plughostd still runs 3 s after %s", what);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == EXIT_FAILURE,
                      "plughostd ended with status 0x%x", status);
        ck_assert_msg(log_has(log_text), "the log lacks '%s'", log_text);
        fprintf(stderr, "%s: exit %lld ms after\n", what, now_ms() - t0);
}

/* A plugin closes (or dup2s over, or shuts down) the listening socket:
 * the daemon says so and exits with a failure within a few seconds, for
 * systemd to restart it. */
static void listen_lost(const char *method, const char *params, const char *count)
{
        json_t *r;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        r = call("behave", method, params);
        ck_assert_int_ge(du_int(ok(r), count), 1);
        json_decref(r);
        assert_exit_failure(method, "the listening socket was lost");
}

START_TEST(test_listen_closed)
{
        listen_lost("CloseListen", NULL, "result.closed");
}
END_TEST

START_TEST(test_listen_dup2)
{
        listen_lost("CloseListen", "{\"dup2\":true}", "result.closed");
}
END_TEST

START_TEST(test_listen_shutdown)
{
        listen_lost("ShutdownListen", NULL, "result.shut");
}
END_TEST

/* The socket file the daemon made is removed: nobody can connect, so it
 * exits with a failure, to be restarted and make it again. */
START_TEST(test_socket_unlinked)
{
        du_init(&d);
        du_start(&d);
        ck_assert_int_eq(unlink(d.socket), 0);
        assert_exit_failure("unlink", "was removed or replaced");
        ck_assert(log_has(d.socket));
}
END_TEST

/* ---- file faults ---- */

/* Truncated in place after the scan (no writer closed it, so no event):
 * Load fails cleanly with LoadFailed, never a crash; a whole file renamed
 * over it loads. */
START_TEST(test_truncated_after_scan)
{
        struct stat st;
        char *path = NULL, *path0 = NULL;
        json_t *r, *i;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_example("upper.so"), "upper.so");
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        du_start(&d);
        ck_assert(listed("counted", NULL) && listed("upper", NULL));

        path = plugin_path("counted.so");
        path0 = plugin_path("upper.so");
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(truncate(path, st.st_size / 2), 0);
        ck_assert_int_eq(truncate(path0, 0), 0);

        r = load("counted");
        expect_error(r, "io.plughost.LoadFailed");
        ck_assert_str_ne(du_str(du_params(r), "message"), "");
        json_decref(r);
        r = call("upper", "Upper", "{\"text\":\"x\"}");
        expect_error(r, "io.plughost.LoadFailed");
        json_decref(r);
        i = info("counted");
        ck_assert_str_eq(du_str(i, "plugin.state"), "failed");
        json_decref(i);
        load_ok("hello");
        du_assert_serving(&d);

        /* A whole file again: a new version, loaded since a client wants it. */
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        assert_state_within("counted", "loaded", WAIT_MS);
        assert_version("counted", "1.0.0");
        free(path);
        free(path0);
}
END_TEST

/* Another version renamed over the file just before Load: the Load is
 * answered (either version, or a clean error) and the new version ends
 * up listed, loaded and answering. */
START_TEST(test_replaced_before_load)
{
        char *path, *tmp;
        json_t *r, *i;
        du_conn *c;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_start(&d);
        ck_assert(listed("counted", NULL));
        path = plugin_path("counted.so");
        tmp = plugin_path(".counted.so.new");
        tu_copy_file(tu_fixture("counted-v2.so"), tmp);
        c = du_connect(&d);

        ck_assert_int_eq(rename(tmp, path), 0);
        du_send(c, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"counted\"}}");
        r = du_recv(c);
        ck_assert_ptr_nonnull(r);
        ck_assert_msg(!du_error(r) || strcmp(du_error(r), "io.plughost.LoadFailed") == 0 ||
                      strcmp(du_error(r), "io.plughost.Busy") == 0, "Load answered %s", du_error(r));
        json_decref(r);
        du_close(c);

        for (long long deadline = now_ms() + WAIT_MS;; nap_ms(10)) {
                i = info("counted");
                if (strcmp(du_str(i, "plugin.version"), "2.0.0") == 0 &&
                    strcmp(du_str(i, "plugin.state"), "loaded") == 0)
                        break;
                json_decref(i);
                ck_assert_msg(now_ms() < deadline, "version 2 never got loaded");
        }
        json_decref(i);
        assert_version("counted", "2.0.0");
        du_assert_serving(&d);
        free(path);
        free(tmp);
}
END_TEST

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

/* The plugin directory deleted: its plugins leave, calls get NoSuchPlugin;
 * recreated: they come back, the one a client loaded loaded again. */
START_TEST(test_dir_deleted_recreated)
{
        long long deadline;
        json_t *r;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        du_start(&d);
        load_ok("counted");

        ck_assert_int_eq(nftw(d.plugins, rm_cb, 16, FTW_DEPTH | FTW_PHYS), 0);
        for (deadline = now_ms() + WAIT_MS; n_listed() > 0; nap_ms(10))
                ck_assert_msg(now_ms() < deadline, "the plugins outlived their directory");
        r = call("counted", "Version", NULL);
        expect_error(r, "io.plughost.NoSuchPlugin");
        json_decref(r);
        du_assert_serving(&d);

        ck_assert_int_eq(mkdir(d.plugins, 0755), 0);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        assert_state_within("counted", "loaded", WAIT_MS);
        assert_state_within("hello", "discovered", WAIT_MS);
        assert_version("counted", "1.0.0");
}
END_TEST

/* As uid 65534, a plugin file made unreadable leaves the list (rejected);
 * the directory made unreadable keeps what is known, a Load then fails
 * cleanly and a Rescan says why; readable again, both load. */
START_TEST(test_unreadable)
{
        run_opts o = { .as_nobody = true };
        long long deadline;
        char *path;
        json_t *r;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        du_add_plugin(&d, tu_example("upper.so"), "upper.so");
        start_with(&o);
        ck_assert(listed("counted", NULL));

        path = plugin_path("counted.so");
        ck_assert_int_eq(chmod(path, 0), 0);
        for (deadline = now_ms() + WAIT_MS; listed("counted", NULL) || !listed(NULL, "counted.so");
             nap_ms(10))
                ck_assert_msg(now_ms() < deadline, "an unreadable counted.so is still listed");
        r = load("counted");
        expect_error(r, "io.plughost.NoSuchPlugin");
        json_decref(r);
        load_ok("hello");
        ck_assert_int_eq(chmod(path, 0644), 0);
        for (deadline = now_ms() + WAIT_MS; !listed("counted", NULL); nap_ms(10))
                ck_assert_msg(now_ms() < deadline, "a readable counted.so is not listed again");
        load_ok("counted");

        ck_assert_int_eq(chmod(d.plugins, 0), 0);
        r = load("upper");
        expect_error(r, "io.plughost.LoadFailed");
        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"), "Permission denied"));
        json_decref(r);
        /* Rescan says it could not read the directory; what was known stays. */
        r = du_request(&d, "{\"method\":\"io.plughost.Rescan\"}");
        expect_error(r, "io.plughost.ScanFailed");
        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"), "Permission denied"));
        json_decref(r);
        ck_assert(listed("counted", NULL) && listed("hello", NULL) && listed("upper", NULL));
        assert_version("counted", "1.0.0");
        du_assert_serving(&d);

        ck_assert_int_eq(chmod(d.plugins, 0755), 0);
        load_ok("upper");
        free(path);
}
END_TEST

/* The state directory read-only to the daemon (uid 65534, mode 0500): Load
 * works and answers; the log says the loaded set could not be saved. */
START_TEST(test_state_read_only)
{
        run_opts o = { .as_nobody = true };
        char *file;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        prepare_nobody();
        ck_assert_int_eq(chmod(d.state, 0500), 0);
        start_with(&o);
        load_ok("counted");
        assert_version("counted", "1.0.0");
        assert_log_within("cannot save the loaded set", WAIT_MS);
        file = tu_path(d.state, "loaded.json");
        ck_assert_int_ne(access(file, F_OK), 0);
        du_assert_serving(&d);
        free(file);
}
END_TEST

/* The "loaded" list of a loaded.json, as one string "a,b,c". */
static char *loaded_set(const char *path)
{
        json_error_t err;
        json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &err), *v;
        char *s = calloc(1, 4096);
        size_t i;

        ck_assert_msg(j != NULL, "%s does not parse: %s", path, err.text);
        ck_assert(json_is_array(json_object_get(j, "loaded")));
        json_array_foreach(json_object_get(j, "loaded"), i, v) {
                if (i)
                        strcat(s, ",");
                strncat(s, json_string_value(v), 4000 - strlen(s));
        }
        json_decref(j);
        return s;
}

static void assert_loaded_set(const char *path, const char *want)
{
        char *have = loaded_set(path);

        ck_assert_str_eq(have, want);
        free(have);
}

/* No temporary file of a failed save is left in dir. */
static void assert_no_temporaries(const char *dir)
{
        char *argv[] = { "/bin/ls", "-A", (char *)dir, NULL }, *out;

        ck_assert_int_eq(tu_run(argv, &out), 0);
        ck_assert_msg(!strstr(out, ".loaded.json."), "a temporary file is left: %s", out);
        free(out);
}

/* Whether this process may mount a tmpfs in a new mount namespace. */
static bool can_mount_tmpfs(void)
{
        char *dir = tu_tmpdir();
        int status;
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
                      mount("tmpfs", dir, "tmpfs", 0, "size=16k") == 0 ? 0 : 1);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        tu_tmpdir_free(dir);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A full disk (a 16 kB tmpfs on the state directory, in the daemon's own
 * mount namespace, reached through /proc/PID/root): Load still answers,
 * the previous loaded.json stays whole, no temporary file is left; with
 * room again, the next save works. */
START_TEST(test_state_disk_full)
{
        run_opts o = { .tmpfs_size = "16k" };
        char *state, *json, *filler, buf[4096];
        int fd;
        ssize_t n;
        bool full = false;

        if (!can_mount_tmpfs()) {
                fprintf(stderr, "test_state_disk_full: cannot mount a tmpfs here; "
                                "test_state_file_too_big covers the failing save\n");
                return;
        }
        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_fixture("parallel.so"), "parallel.so");
        du_add_plugin(&d, tu_fixture("serial.so"), "serial.so");
        start_with(&o);
        ck_assert_int_ge(asprintf(&state, "/proc/%d/root%s", (int)d.pid, d.state), 0);
        json = tu_path(state, "loaded.json");
        filler = tu_path(state, "filler");
        load_ok("counted");
        assert_loaded_set(json, "counted");

        fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        memset(buf, 'x', sizeof(buf));
        for (int i = 0; i < 64 && !full; i++) {
                n = write(fd, buf, sizeof(buf));
                full = n < 0 && errno == ENOSPC;
        }
        close(fd);
        ck_assert_msg(full, "the state tmpfs never filled up");

        load_ok("parallel");
        assert_version("parallel", "1.0.0");
        assert_log_within("No space left on device", WAIT_MS);
        assert_loaded_set(json, "counted");
        assert_no_temporaries(state);
        du_assert_serving(&d);

        ck_assert_int_eq(unlink(filler), 0);
        load_ok("serial");
        assert_loaded_set(json, "counted,parallel,serial");
        free(state);
        free(json);
        free(filler);
}
END_TEST

/* RLIMIT_FSIZE below the size of the next loaded.json (as LimitFSIZE= would
 * set): writes fail with EFBIG and raise SIGXFSZ, which must not kill the
 * daemon; loaded.json stays whole and Load answers. The limit is set on
 * the running daemon: the plugins are copied into memfds, which it limits
 * too, so they are loaded first. */
START_TEST(test_state_file_too_big)
{
        struct rlimit small, before;
        char *json;
        struct stat st;
        int status;
        du_conn *c;
        json_t *r;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_fixture("parallel.so"), "parallel.so");
        du_add_plugin(&d, tu_fixture("serial.so"), "serial.so");
        du_start(&d);
        json = tu_path(d.state, "loaded.json");
        load_ok("counted");
        /* Loaded by a call, so not in the loaded set yet. */
        assert_version("parallel", "1.0.0");
        assert_loaded_set(json, "counted");
        ck_assert_int_eq(stat(json, &st), 0);

        /* The soft limit only: raising it again needs no privilege. */
        ck_assert_int_eq(prlimit(d.pid, RLIMIT_FSIZE, NULL, &before), 0);
        small = (struct rlimit){ (rlim_t)st.st_size, before.rlim_max };
        ck_assert_int_eq(prlimit(d.pid, RLIMIT_FSIZE, &small, NULL), 0);
        c = du_connect(&d);
        du_send(c, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"parallel\"}}");
        r = du_recv(c);
        du_close(c);
        if (!r) {
                status = wait_exit(WAIT_MS);
                ck_abort_msg("plughostd died saving its state (status 0x%x, signal %d)", status,
                             status != -1 && WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
        ck_assert_str_eq(du_str(ok(r), "plugin.state"), "loaded");
        json_decref(r);
        assert_version("counted", "1.0.0");
        status = wait_exit(0);
        ck_assert_msg(status == -1, "plughostd died (status 0x%x, signal %d)", status,
                      WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        assert_loaded_set(json, "counted");
        assert_no_temporaries(d.state);

        ck_assert_int_eq(prlimit(d.pid, RLIMIT_FSIZE, &before, NULL), 0);
        load_ok("serial");
        assert_loaded_set(json, "counted,parallel,serial");
        free(json);
}
END_TEST

/* ---- resource faults ---- */

/* Reads the replies that are there on conns (NULL ones skipped) for ms;
 * marks each answered one; returns how many there are in all. */
static int collect_replies(du_conn **conns, bool *answered, int n, int ms)
{
        long long deadline = now_ms() + ms;
        struct pollfd *pfd = calloc((size_t)n, sizeof(*pfd));
        int total = 0;

        ck_assert_ptr_nonnull(pfd);
        for (;;) {
                int left = (int)(deadline - now_ms()), r;

                for (int i = 0; i < n; i++) {
                        pfd[i].fd = conns[i] && !answered[i] ? conns[i]->fd : -1;
                        pfd[i].events = POLLIN;
                        pfd[i].revents = 0;
                }
                r = poll(pfd, (nfds_t)n, left > 0 ? left : 0);
                ck_assert_int_ge(r, 0);
                if (r == 0)
                        break;
                for (int i = 0; i < n; i++) {
                        json_t *reply;

                        if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        reply = du_recv(conns[i]);
                        if (!reply) {
                                /* Refused (closed at accept): not served. */
                                du_close(conns[i]);
                                conns[i] = NULL;
                                continue;
                        }
                        ok(reply);
                        json_decref(reply);
                        answered[i] = true;
                }
        }
        for (int i = 0; i < n; i++)
                total += answered[i];
        free(pfd);
        return total;
}

/* RLIMIT_NOFILE 40 and 60 connections: the daemon takes its connection
 * limit from the descriptors it has (half of 40 here), serves that many,
 * refuses the others at once without spinning, keeps descriptors for its
 * own work (a Load still works), and serves new clients once the others
 * go. */
START_TEST(test_fds_exhausted)
{
        enum { N = 60 };
        run_opts o = { .nofile = 40 };
        du_conn *c[N];
        bool answered[N] = { false };
        long long t0, ticks;
        int served = -1, now;
        json_t *r;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        start_with(&o);
        for (int i = 0; i < N; i++) {
                static const char status[] = "{\"method\":\"io.plughost.Status\"}";

                c[i] = du_connect(&d);
                /* One past the limit may be refused (closed) before the
                 * request is out: that is an answer too (none). */
                du_send_raw(c[i], status, sizeof(status));
        }
        /* Wait until the count of answered connections settles. */
        for (t0 = now_ms(); (now = collect_replies(c, answered, N, 300)) != served; served = now)
                ck_assert_msg(now_ms() - t0 < WAIT_MS, "the answers never settled");
        ck_assert_msg(served > 0 && served <= 20, "%d of %d connections served with 40 fds", served, N);
        fprintf(stderr, "test_fds_exhausted: %d of %d connections served\n", served, N);
        assert_log_within("too many connections", WAIT_MS);

        ticks = cpu_ticks(d.pid);
        nap_ms(1000);
        ticks = cpu_ticks(d.pid) - ticks;
        ck_assert_msg(ticks <= sysconf(_SC_CLK_TCK) / 5, "the daemon used %lld ticks in a second", ticks);
        fprintf(stderr, "test_fds_exhausted: %lld clock ticks in 1 s while paused\n", ticks);
        ck_assert_int_eq(collect_replies(c, answered, N, 0), served);

        /* An accepted client asks for a load: the daemon kept the
         * descriptors it needs for it. */
        for (int i = 0; i < N; i++)
                if (answered[i]) {
                        du_send(c[i], "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"counted\"}}");
                        r = du_recv(c[i]);
                        ck_assert_ptr_nonnull(r);
                        ok(r);
                        json_decref(r);
                        break;
                }

        for (int i = 0; i < N; i++)
                du_close(c[i]);
        t0 = now_ms();
        for (;;) {
                du_conn *one = du_connect(&d);
                bool got = false;

                /* Refused (closed) while the others' closes are still on
                 * their way: try again. */
                if (du_send_raw(one, "{\"method\":\"io.plughost.Status\"}", 32) && !du_quiet(one, 100) &&
                    (r = du_recv(one))) {
                        ok(r);
                        json_decref(r);
                        got = true;
                }
                du_close(one);
                if (got)
                        break;
                ck_assert_msg(now_ms() - t0 < WAIT_MS, "no new connection served after the others left");
        }
        load_ok("counted");
        assert_version("counted", "1.0.0");
}
END_TEST

/* 500 connections at once, each with a request: all answered. */
START_TEST(test_many_connections)
{
        enum { N = 500 };
        du_conn **c = calloc(N, sizeof(*c));
        bool *answered = calloc(N, sizeof(bool));
        json_t *r;

        ck_assert(c && answered);
        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_start(&d);
        for (int i = 0; i < N; i++)
                c[i] = du_connect(&d);
        for (int i = 0; i < N; i++)
                du_send(c[i], i % 2 ? "{\"method\":\"io.plughost.Status\"}"
                                    : "{\"method\":\"io.plughost.List\"}");
        for (long long deadline = now_ms() + DU_TIMEOUT_MS; collect_replies(c, answered, N, 100) < N;)
                ck_assert_msg(now_ms() < deadline, "not every connection was answered");
        r = du_request(&d, "{\"method\":\"io.plughost.Status\"}");
        ck_assert_int_eq(du_int(ok(r), "clients"), N + 1);
        json_decref(r);
        for (int i = 0; i < N; i++)
                du_close(c[i]);
        assert_version("counted", "1.0.0");
        free(c);
        free(answered);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("faults");
        TCase *plugin = tcase_create("plugin"), *crash = tcase_create("crash"),
              *file = tcase_create("file"), *resource = tcase_create("resource"),
              *inproc = tcase_create("inproc");

        if (geteuid() != 0) {
                /* setpriv, chown, mounts and prlimit need root: say so, do not pass. */
                fprintf(stderr, "test-faults must run as root\n");
                return 99;
        }
        tcase_add_checked_fixture(plugin, NULL, teardown);
        tcase_set_timeout(plugin, 60);
        tcase_add_test(plugin, test_init_fails);
        tcase_add_test(plugin, test_call_fails);
        tcase_add_test(plugin, test_call_deadline);
        tcase_add_test(plugin, test_hung_calls);
        suite_add_tcase(s, plugin);

        tcase_add_checked_fixture(crash, NULL, teardown);
        tcase_set_timeout(crash, 60);
        tcase_add_test(crash, test_call_crashes_process);
        tcase_add_test(crash, test_init_kills_quarantine);
        tcase_add_test(crash, test_call_segv_line);
        tcase_add_test(crash, test_call_abort_line);
        tcase_add_test(crash, test_init_segv_line);
        tcase_add_test(crash, test_call_trap_line);
        tcase_add_test(crash, test_call_usr1_line);
        tcase_add_test(crash, test_call_rtmin_line);
        suite_add_tcase(s, crash);

        tcase_add_checked_fixture(inproc, NULL, teardown);
        tcase_set_timeout(inproc, 60);
        tcase_add_test(inproc, test_sigterm_plugin_handler);
        tcase_add_test(inproc, test_sigterm_plugin_ignores);
        tcase_add_test(inproc, test_listen_closed);
        tcase_add_test(inproc, test_sigterm_plugin_thread);
        tcase_add_test(inproc, test_listen_dup2);
        tcase_add_test(inproc, test_listen_shutdown);
        tcase_add_test(inproc, test_socket_unlinked);
        suite_add_tcase(s, inproc);

        tcase_add_checked_fixture(file, NULL, teardown);
        tcase_set_timeout(file, 60);
        tcase_add_test(file, test_truncated_after_scan);
        tcase_add_test(file, test_replaced_before_load);
        tcase_add_test(file, test_dir_deleted_recreated);
        tcase_add_test(file, test_unreadable);
        tcase_add_test(file, test_state_read_only);
        tcase_add_test(file, test_state_disk_full);
        tcase_add_test(file, test_state_file_too_big);
        suite_add_tcase(s, file);

        tcase_add_checked_fixture(resource, NULL, teardown);
        tcase_set_timeout(resource, 60);
        tcase_add_test(resource, test_fds_exhausted);
        tcase_add_test(resource, test_many_connections);
        suite_add_tcase(s, resource);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
