/* Isolated plugins (Isolation=process) against the real plughostd and
 * plughost-worker: a plugin that crashes, aborts, exits, hangs, leaves
 * threads, takes signals or closes descriptors, in init, a call or fini,
 * costs its own callers an error (PluginCrashed, Timeout, LoadFailed) and
 * nothing else; faults that repeat quarantine it until its file changes;
 * and the sandbox refuses what a plugin must not do. Runs as root (it
 * reads the workers' /proc entries). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "daemon-util.h"
#include "daemon-util2.h"
#include "testutil.h"

#define WAIT_MS 5000
/* CallTimeoutSec= of these daemons. */
#define TIMEOUT_S 2

static du_daemon d;

static void teardown(void)
{
        du_stop(&d);
}

/* A daemon whose plugins run in workers; extra is appended to the config. */
static void start(const char *extra)
{
        char *conf;

        du_init(&d);
        ck_assert_int_ge(asprintf(&conf,
                                  "[Daemon]\nIsolation=process\nWorkerPath=%s/plughost-worker\n"
                                  "CallTimeoutSec=%d\n%s",
                                  getenv("PH_BUILDDIR"), TIMEOUT_S, extra ? extra : ""), 0);
        du_write_config(&d, conf);
        free(conf);
        du_add_plugin(&d, tu_fixture("fault-v1.so"), "fault.so");
        du_start(&d);
}

static json_t *call(const char *name, const char *method, const char *params)
{
        return du_requestf(&d, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"%s\","
                               "\"method\":\"%s\",\"parameters\":%s}}",
                           name, method, params ? params : "{}");
}

static json_t *load(const char *name)
{
        return du_requestf(&d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"%s\"}}",
                           name);
}

static void load_ok(const char *name)
{
        json_t *r = load(name);

        ck_assert_msg(!du_error(r), "Load %s: %s", name, du_error(r));
        json_decref(r);
}

/* The worker's pid from Info (0: none runs). */
static long long worker_pid(const char *name)
{
        json_t *info = du2_info(&d, name);
        long long pid = 0;
        json_t *w = json_object_get(json_object_get(info, "plugin"), "worker");

        if (json_is_object(w))
                pid = json_integer_value(json_object_get(w, "pid"));
        json_decref(info);
        return pid;
}

static bool alive(pid_t pid)
{
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        return access(path, F_OK) == 0;
}

/* Echo answers (after any backoff: retried while the worker restarts). */
static void echo_ok(const char *name)
{
        long long deadline = du2_now_ms() + WAIT_MS;

        for (;;) {
                json_t *r = call(name, "Echo", "{\"x\":1}");
                const char *e = du_error(r);

                if (!e) {
                        ck_assert_int_eq(du_int(du_params(r), "result.echo.x"), 1);
                        json_decref(r);
                        return;
                }
                ck_assert_msg(strcmp(e, "io.plughost.PluginCrashed") == 0 &&
                                      strcmp(du_str(du_params(r), "reason"), "restarting") == 0 &&
                                      du2_now_ms() < deadline,
                              "Echo of %s: %s", name, e);
                json_decref(r);
                du2_nap_ms(100);
        }
}

/* A call that takes its worker down: PluginCrashed with how, then the
 * daemon serves, and the next call gets a new worker. */
static void crash_in_call(const char *method, int sig, int status)
{
        long long pid;
        json_t *r;

        start(NULL);
        load_ok("fault");
        pid = worker_pid("fault");
        ck_assert_int_gt(pid, 0);
        ck_assert_int_ne(pid, d.pid);
        r = call("fault", method, NULL);
        ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.PluginCrashed");
        ck_assert_str_eq(du_str(du_params(r), "reason"), "crashed");
        ck_assert_str_eq(du_str(du_params(r), "method"), method);
        if (sig)
                ck_assert_int_eq(du_int(du_params(r), "signal"), sig);
        if (status >= 0)
                ck_assert_int_eq(du_int(du_params(r), "exitStatus"), status);
        json_decref(r);
        ck_assert(!alive((pid_t)pid));
        du_assert_serving(&d);
        echo_ok("fault");
        ck_assert_int_ne(worker_pid("fault"), pid);
        ck_assert_int_gt(worker_pid("fault"), 0);
        ck_assert(du2_log_wait(&d, "worker fault during call", 1000));
}

START_TEST(test_call_segv) { crash_in_call("Segv", SIGSEGV, -1); }
END_TEST
START_TEST(test_call_abort) { crash_in_call("Abort", SIGABRT, -1); }
END_TEST
START_TEST(test_call_exit0) { crash_in_call("Exit", 0, 0); }
END_TEST
/* Closing its own descriptors cuts the worker off: it ends, it is replaced. */
START_TEST(test_call_closefds) { crash_in_call("CloseFds", 0, -1); }
END_TEST

/* Calls queued behind one that crashes its worker were not run: they run
 * on the next worker, and only the crashing call fails. */
START_TEST(test_queued_calls_survive_crash)
{
        du_conn *c;
        json_t *r;

        start(NULL);
        load_ok("fault");
        c = du_connect(&d);
        du_send(c, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"fault\","
                   "\"method\":\"Segv\"}}");
        for (int i = 0; i < 5; i++)
                du_send(c, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"fault\","
                           "\"method\":\"Echo\",\"parameters\":{\"x\":1}}}");
        r = du_recv(c);
        ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.PluginCrashed");
        json_decref(r);
        for (int i = 0; i < 5; i++) {
                r = du_recv(c);
                ck_assert_msg(!du_error(r), "queued Echo %d: %s: %s", i, du_error(r),
                              du_str(du_params(r), "message"));
                ck_assert_int_eq(du_int(du_params(r), "result.echo.x"), 1);
                json_decref(r);
        }
        du_close(c);
        du_assert_serving(&d);
}
END_TEST

/* How many calls the serving worker ran, this one included (once the
 * worker answers again after a fault). */
static long long worker_count(void)
{
        long long n;
        json_t *r;

        for (long long end = du2_now_ms() + WAIT_MS;; du2_nap_ms(100)) {
                r = call("fault", "Count", NULL);
                if (!du_error(r))
                        break;
                ck_assert_msg(du2_now_ms() < end, "Count: %s", du_error(r));
                json_decref(r);
        }
        n = du_int(du_params(r), "result.count");
        json_decref(r);
        return n;
}

/* A call queued behind a hung one, whose client gave up (Timeout) before
 * the next worker came, is not run there. */
START_TEST(test_abandoned_queued_call_not_rerun)
{
        du_conn *c1, *c2;
        json_t *r;

        /* init takes 1.5 s: the restart outlasts the queued call's deadline. */
        start("[Plugin fault]\nConfig={\"init\":\"slow\"}\n");
        load_ok("fault");
        c1 = du_connect(&d);
        c2 = du_connect(&d);
        du_send(c1, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"fault\","
                    "\"method\":\"Loop\"}}");
        du2_nap_ms(100);
        du_send(c2, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"fault\","
                    "\"method\":\"Echo\"}}");
        r = du_recv(c1);
        ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.Timeout");
        json_decref(r);
        r = du_recv(c2);
        ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.Timeout");
        json_decref(r);
        du_close(c1);
        du_close(c2);
        /* The next call gets a worker that ran nothing before it. */
        ck_assert_int_eq(worker_count(), 1);
}
END_TEST

/* A root daemon's workers run as nobody unless User= says otherwise, and
 * cannot make threads without bound (LimitNPROC=, 512 by default). */
START_TEST(test_default_user_and_nproc)
{
        json_t *r;

        /* 512 threads take a while under TSan. */
        start("CallTimeoutSec=30\n");
        load_ok("fault");
        r = call("fault", "Pid", NULL);
        ck_assert_ptr_null(du_error(r));
        ck_assert_int_eq(du_int(du_params(r), "result.uid"), 65534);
        json_decref(r);
        r = call("fault", "Threads", "{\"n\":700}");
        ck_assert_msg(!du_error(r), "Threads: %s: %s", du_error(r), du_str(du_params(r), "message"));
        ck_assert_int_le(du_int(du_params(r), "result.made"), 512);
        ck_assert_int_gt(du_int(du_params(r), "result.made"), 0);
        json_decref(r);
        du_assert_serving(&d);
}
END_TEST

/* A configuration whose isolation settings cannot hold is refused at
 * start, with a message that says why. */
static void config_refused(const char *extra, const char *expect)
{
        char exe[4096], *conf, *text;
        size_t size;
        int status = 0;
        pid_t pid;

        du_init(&d);
        ck_assert_int_ge(asprintf(&conf, "[Daemon]\nWorkerPath=%s/plughost-worker\n%s",
                                  getenv("PH_BUILDDIR"), extra), 0);
        du_write_config(&d, conf);
        free(conf);
        snprintf(exe, sizeof(exe), "%s/plughostd", getenv("PH_BUILDDIR"));
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd = open(d.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                dup2(fd, 2);
                execl(exe, exe, "-p", d.plugins, "-s", d.socket, "-S", d.state, "-c", d.config,
                      (char *)NULL);
                _exit(127);
        }
        for (long long end = du2_now_ms() + 10000; waitpid(pid, &status, WNOHANG) == 0;) {
                if (du2_now_ms() > end) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        ck_abort_msg("the daemon started with: %s", extra);
                }
                du2_nap_ms(20);
        }
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0, "status %d for: %s", status,
                      extra);
        text = (char *)tu_read_file(d.log, &size);
        ck_assert_msg(text && strstr(text, expect), "for %s: log says: %s", extra, text ? text : "");
        free(text);
}

START_TEST(test_config_refused)
{
        static const char *const cases[][2] = {
                { "[Directory /nonexistent]\nIsolation=process\n", "not one of the plugin directories" },
                { "[Plugin fault]\nUser=0\n", "does not run as root" },
                { "[Plugin fault]\nUser=root\n", "does not run as root" },
                { "[Plugin fault]\nGroup=root\n", "group root" },
                { "[Plugin fault]\nLimitNOFILE=5\n", "from 16 to" },
                { "[Plugin fault]\nLimitAS=1K\n", "at least 64M" },
                { "[Plugin fault]\nLimitNPROC=2\n", "from 16 to" },
                { "[Plugin fault]\nIsolation=sandbox\n", "inprocess or process" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                config_refused(cases[i][0], cases[i][1]);
                du_stop(&d);
        }
}
END_TEST

/* [Directory PATH] as the plugin directory was written, give or take a
 * "/./" or "//", applies; the daemon starts. */
START_TEST(test_directory_section_applies)
{
        char extra[4096];
        json_t *info;

        du_init(&d);
        snprintf(extra, sizeof(extra),
                 "[Daemon]\nWorkerPath=%s/plughost-worker\nIsolation=inprocess\n"
                 "[Directory %s/.//]\nIsolation=process\n", getenv("PH_BUILDDIR"), d.plugins);
        du_write_config(&d, extra);
        du_add_plugin(&d, tu_fixture("fault-v1.so"), "fault.so");
        du_start(&d);
        info = du2_info(&d, "fault");
        ck_assert_str_eq(du_str(info, "plugin.isolation"), "process");
        json_decref(info);
}
END_TEST

static void send_call(du_conn *c, const char *method, const char *params)
{
        char *req;

        ck_assert_int_ge(asprintf(&req, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                        "{\"name\":\"fault\",\"method\":\"%s\",\"parameters\":%s}}",
                                  method, params ? params : "{}"), 0);
        du_send(c, req);
        free(req);
}

/* Calls pipelined to the worker whose client's deadline passes before
 * the worker comes to them do not run (the worker's queue is no way
 * around CallTimeoutSec=): the one running past its deadline is killed,
 * the one behind it is not run anywhere. */
START_TEST(test_queued_past_deadline_not_run)
{
        du_conn *c;
        json_t *r;

        start(NULL);
        load_ok("fault");
        c = du_connect(&d);
        for (int i = 0; i < 3; i++)
                send_call(c, "Sleep", "{\"ms\":1500}");
        r = du_recv(c);
        ck_assert_msg(!du_error(r), "first Sleep: %s", du_error(r));
        json_decref(r);
        for (int i = 0; i < 2; i++) {
                r = du_recv(c);
                ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.Timeout");
                json_decref(r);
        }
        du_close(c);
        du2_nap_ms(500);
        /* A fresh worker, which ran nothing before: the third Sleep never ran. */
        ck_assert_int_eq(worker_count(), 1);
}
END_TEST

/* Five faults between calls (a plugin thread crashing its worker while
 * idle) quarantine the plugin as five in calls do: state, Load refused,
 * Unload no way out. */
START_TEST(test_quarantine_between_calls)
{
        json_t *r;
        int faults = 0;

        start(NULL);
        load_ok("fault");
        for (long long end = du2_now_ms() + 4 * WAIT_MS; faults < 5 && du2_now_ms() < end;) {
                r = call("fault", "Later", NULL);
                if (!du_error(r)) {
                        du2_nap_ms(400);
                        faults++;
                } else {
                        du2_nap_ms(100);
                }
                json_decref(r);
        }
        ck_assert_int_eq(faults, 5);
        ck_assert(du2_wait_state(&d, "fault", "quarantined", WAIT_MS));
        r = du_request(&d, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"fault\"}}");
        json_decref(r);
        r = load("fault");
        ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.LoadFailed");
        /* The plugin is named once. */
        ck_assert_msg(strncmp(du_str(r, "parameters.message"), "fault: ", 7) == 0 &&
                      !strstr(du_str(r, "parameters.message"), "fault: fault:"), "message: %s",
                      du_str(r, "parameters.message"));
        json_decref(r);
}
END_TEST

/* A plugin's error message that is not UTF-8 is its caller's CallFailed
 * (with '?' for the bytes), not a dead worker counted as a crash: five of
 * them would have quarantined the plugin for everyone. */
START_TEST(test_rude_error_message)
{
        long long pid;
        json_t *r;

        start(NULL);
        load_ok("fault");
        pid = worker_pid("fault");
        ck_assert_int_gt(pid, 0);
        for (int i = 0; i < 6; i++) {
                r = call("fault", "Rude", NULL);
                ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.CallFailed");
                ck_assert_msg(strstr(du_str(r, "parameters.message"), "rude ?? end"), "message: %s",
                              du_str(r, "parameters.message"));
                json_decref(r);
        }
        ck_assert_int_eq(worker_pid("fault"), pid);
        r = call("fault", "Echo", "{\"x\":1}");
        ck_assert_msg(!du_error(r), "Echo after rude errors: %s", du_error(r));
        json_decref(r);
}
END_TEST

/* SIGTERM lets an isolated call in flight finish and answers it, as it
 * does for one in the daemon. */
START_TEST(test_sigterm_drains_isolated_calls)
{
        du_conn *c;
        json_t *r;

        start(NULL);
        load_ok("fault");
        c = du_connect(&d);
        send_call(c, "Sleep", "{\"ms\":1000}");
        du2_nap_ms(300);
        ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
        r = du_recv(c);
        ck_assert_msg(r && !du_error(r), "Sleep during the stop: %s", r ? du_error(r) : "EOF");
        ck_assert_int_eq(du_int(du_params(r), "result.slept"), 1000);
        json_decref(r);
        du_close(c);
        du_wait_stop(&d);
}
END_TEST

/* An answer the plugin writes itself, ahead of time, is not taken for
 * the next call's (another client's): the worker is killed for it, and
 * every queued call gets its own answer. */
START_TEST(test_forged_answer_shifts_nothing)
{
        du_conn *c;
        json_t *r;

        start(NULL);
        load_ok("fault");
        c = du_connect(&d);
        send_call(c, "Twice", NULL);
        send_call(c, "Echo", "{\"x\":1}");
        send_call(c, "Echo", "{\"x\":2}");
        r = du_recv(c);
        ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.PluginCrashed");
        json_decref(r);
        for (int i = 1; i <= 2; i++) {
                r = du_recv(c);
                ck_assert_msg(!du_error(r), "Echo %d: %s", i, du_error(r));
                ck_assert_int_eq(du_int(du_params(r), "result.echo.x"), i);
                json_decref(r);
        }
        du_close(c);
}
END_TEST

/* A call that never returns is answered Timeout and its worker killed:
 * real cancellation, so nothing keeps a thread. */
START_TEST(test_call_loop)
{
        long long pid, t0;
        json_t *r;

        start(NULL);
        load_ok("fault");
        pid = worker_pid("fault");
        t0 = du2_now_ms();
        r = call("fault", "Loop", NULL);
        ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.Timeout");
        json_decref(r);
        ck_assert_int_lt(du2_now_ms() - t0, TIMEOUT_S * 1000 + 3000);
        for (long long end = du2_now_ms() + WAIT_MS; alive((pid_t)pid) && du2_now_ms() < end;)
                du2_nap_ms(20);
        ck_assert_msg(!alive((pid_t)pid), "the looping worker %lld still runs", pid);
        echo_ok("fault");
        du_assert_serving(&d);
}
END_TEST

/* Threads left running, handlers for the daemon's signals: the worker's
 * own business. Unload ends the worker, threads and all; SIGTERM still
 * stops the daemon. */
START_TEST(test_call_thread_signals_unload)
{
        long long pid;
        json_t *r;

        start(NULL);
        load_ok("fault");
        pid = worker_pid("fault");
        r = call("fault", "Thread", NULL);
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
        r = call("fault", "Signals", NULL);
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
        r = du_request(&d, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"fault\"}}");
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
        for (long long end = du2_now_ms() + WAIT_MS; alive((pid_t)pid) && du2_now_ms() < end;)
                du2_nap_ms(20);
        ck_assert_msg(!alive((pid_t)pid), "worker %lld outlived its Unload", pid);
        du_assert_serving(&d);
        /* du_stop (teardown) asserts SIGTERM stops it with status 0. */
}
END_TEST

/* A daemon killed while a worker runs plugin code (a loop, which never
 * reads its socket) leaves no worker behind. */
START_TEST(test_daemon_death_ends_workers)
{
        long long pid;
        du_conn *c;

        start(NULL);
        load_ok("fault");
        pid = worker_pid("fault");
        c = du_connect(&d);
        du_send(c, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"fault\","
                   "\"method\":\"Loop\"}}");
        du2_nap_ms(300);
        du2_kill9(&d);
        du_close(c);
        for (long long end = du2_now_ms() + WAIT_MS; alive((pid_t)pid) && du2_now_ms() < end;)
                du2_nap_ms(20);
        ck_assert_msg(!alive((pid_t)pid), "worker %lld outlived its daemon", pid);
}
END_TEST

/* Faults in init fail the load, with what happened; nothing else. */
static void fault_in_init(const char *what, const char *expect)
{
        char extra[256];
        json_t *r;

        snprintf(extra, sizeof(extra), "[Plugin fault]\nConfig={\"init\":\"%s\"}\n", what);
        start(extra);
        r = load("fault");
        /* A hang: the Load's own deadline and the worker's kill are the
         * same CallTimeoutSec=, so either may answer it. */
        if (strcmp(what, "loop") == 0 && du_error(r) && strcmp(du_error(r), "io.plughost.Timeout") == 0) {
                json_decref(r);
                ck_assert(du2_wait_state(&d, "fault", "failed", WAIT_MS));
                r = load("fault");
        }
        ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.LoadFailed");
        ck_assert_msg(strstr(du_str(du_params(r), "message"), expect),
                      "init %s: %s", what, du_str(du_params(r), "message"));
        json_decref(r);
        du_assert_serving(&d);
        ck_assert(du2_wait_state(&d, "fault", "failed", WAIT_MS));
}

START_TEST(test_init_segv) { fault_in_init("segv", "signal 11 (SIGSEGV)"); }
END_TEST
START_TEST(test_init_abort) { fault_in_init("abort", "signal 6 (SIGABRT)"); }
END_TEST
START_TEST(test_init_exit0) { fault_in_init("exit", "exit status 0"); }
END_TEST
START_TEST(test_init_loop) { fault_in_init("loop", "no answer within"); }
END_TEST
START_TEST(test_init_closefds) { fault_in_init("closefds", "died"); }
END_TEST

/* Faults in fini: the unload completes, the worker is gone, the daemon
 * serves and stops cleanly. */
static void fault_in_fini(const char *what)
{
        char extra[256];
        long long pid;
        json_t *r;

        snprintf(extra, sizeof(extra), "[Plugin fault]\nConfig={\"fini\":\"%s\"}\n", what);
        start(extra);
        load_ok("fault");
        echo_ok("fault");
        pid = worker_pid("fault");
        r = du_request(&d, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"fault\"}}");
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
        for (long long end = du2_now_ms() + TIMEOUT_S * 1000 + WAIT_MS;
             alive((pid_t)pid) && du2_now_ms() < end;)
                du2_nap_ms(20);
        ck_assert_msg(!alive((pid_t)pid), "worker %lld outlived fini %s", pid, what);
        du_assert_serving(&d);
        load_ok("fault");
        echo_ok("fault");
}

/* Threads and signal handlers from init are the worker's own business. */
static void odd_init(const char *what)
{
        char extra[256];
        long long pid;

        snprintf(extra, sizeof(extra), "[Plugin fault]\nConfig={\"init\":\"%s\"}\n", what);
        start(extra);
        load_ok("fault");
        echo_ok("fault");
        pid = worker_pid("fault");
        ck_assert_int_gt(pid, 0);
        du_assert_serving(&d);
}

START_TEST(test_init_thread) { odd_init("thread"); }
END_TEST
START_TEST(test_init_signals) { odd_init("signals"); }
END_TEST

START_TEST(test_fini_signals) { fault_in_fini("signals"); }
END_TEST
START_TEST(test_fini_closefds) { fault_in_fini("closefds"); }
END_TEST
START_TEST(test_fini_segv) { fault_in_fini("segv"); }
END_TEST
START_TEST(test_fini_abort) { fault_in_fini("abort"); }
END_TEST
START_TEST(test_fini_exit0) { fault_in_fini("exit"); }
END_TEST
START_TEST(test_fini_loop) { fault_in_fini("loop"); }
END_TEST
START_TEST(test_fini_thread) { fault_in_fini("thread"); }
END_TEST

/* Five faults within a minute quarantine the generation: a Monitor event
 * and a log line say so, calls are refused; a fixed file serves again. */
START_TEST(test_quarantine_then_fixed_file)
{
        char *dst, *text;
        du_conn *mon;
        json_t *r, *ev;
        int faults = 0;

        start(NULL);
        load_ok("fault");
        mon = du2_monitor(&d);
        for (long long end = du2_now_ms() + 4 * WAIT_MS; faults < 5 && du2_now_ms() < end;) {
                r = call("fault", "Segv", NULL);
                ck_assert_msg(du_error(r) != NULL, "Segv answered without error");
                if (strcmp(du_error(r), "io.plughost.PluginCrashed") == 0 &&
                    strcmp(du_str(du_params(r), "reason"), "crashed") == 0)
                        faults++;
                else
                        du2_nap_ms(100);
                json_decref(r);
        }
        ck_assert_int_eq(faults, 5);
        ev = du2_wait_event(mon, "failed", "fault", du2_now_ms() + WAIT_MS);
        ck_assert_ptr_nonnull(ev);
        text = json_dumps(ev, 0);
        ck_assert_msg(strstr(text, "quarantined"), "event: %s", text);
        free(text);
        json_decref(ev);
        du_close(mon);
        ck_assert(du2_wait_state(&d, "fault", "quarantined", WAIT_MS));
        ck_assert(du2_log_wait(&d, "quarantined until its file changes", 1000));
        r = call("fault", "Echo", NULL);
        ck_assert_msg(du_error(r) != NULL, "a quarantined plugin answered");
        json_decref(r);
        r = load("fault");
        ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.LoadFailed");
        json_decref(r);
        /* An Unload is no way out, and keeps the reason. */
        r = du_request(&d, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"fault\"}}");
        json_decref(r);
        r = load("fault");
        ck_assert_str_eq(du_error(r) ? du_error(r) : "(ok)", "io.plughost.LoadFailed");
        ck_assert_msg(strstr(du_str(du_params(r), "message"), "quarantined after"), "%s",
                      du_str(du_params(r), "message"));
        json_decref(r);
        /* A new file (renamed in) is a new chance. */
        dst = tu_path(d.plugins, "fault.so");
        du2_copy_over(tu_fixture("fault-v1.so"), dst);
        free(dst);
        ck_assert(du2_wait_state(&d, "fault", "discovered", WAIT_MS) ||
                  du2_wait_state(&d, "fault", "loaded", WAIT_MS));
        echo_ok("fault");
        du_assert_serving(&d);
}
END_TEST

/* A new file of a loaded isolated plugin: a new worker serves it, the old
 * one ends once its calls drained. */
START_TEST(test_hot_replace)
{
        long long pid1, pid2 = 0, gen1;
        json_t *info;
        char *dst;

        start(NULL);
        load_ok("fault");
        pid1 = worker_pid("fault");
        info = du2_info(&d, "fault");
        gen1 = du_int(info, "plugin.generation");
        json_decref(info);
        dst = tu_path(d.plugins, "fault.so");
        du2_copy_over(tu_fixture("fault-v1.so"), dst);
        free(dst);
        for (long long end = du2_now_ms() + WAIT_MS; du2_now_ms() < end; du2_nap_ms(50)) {
                info = du2_info(&d, "fault");
                if (du_int(info, "plugin.generation") != gen1 &&
                    strcmp(du_str(info, "plugin.state"), "loaded") == 0)
                        pid2 = json_integer_value(json_object_get(
                                json_object_get(json_object_get(info, "plugin"), "worker"), "pid"));
                json_decref(info);
                if (pid2 > 0)
                        break;
        }
        ck_assert_msg(pid2 > 0 && pid2 != pid1, "no new worker for the new file (%lld, %lld)", pid1,
                      pid2);
        for (long long end = du2_now_ms() + WAIT_MS; alive((pid_t)pid1) && du2_now_ms() < end;)
                du2_nap_ms(20);
        ck_assert_msg(!alive((pid_t)pid1), "the old worker %lld still runs", pid1);
        echo_ok("fault");
        ck_assert_int_eq(worker_pid("fault"), pid2);
}
END_TEST

/* ---- others lose nothing ---- */

#define CLIENTS 100
#define CALLS_EACH 20

typedef struct client_arg {
        int ok, errors;
} client_arg;

static void *client_run(void *arg)
{
        client_arg *a = arg;
        du_conn *c = du_connect(&d);

        for (int i = 0; i < CALLS_EACH; i++) {
                json_t *r = du2_call(c, "behave", "Echo");

                if (r && !du_error(r))
                        a->ok++;
                else
                        a->errors++;
                json_decref(r);
        }
        du_close(c);
        return NULL;
}

/* 100 clients of another plugin (in the daemon) while an isolated one
 * crashes, exits and hangs over and over: every one of their calls is
 * answered. */
START_TEST(test_others_lose_nothing)
{
        static pthread_t th[CLIENTS];
        static client_arg args[CLIENTS];
        const char *acts[] = { "Segv", "Exit", "Abort", "Loop" };
        int ok = 0, errors = 0;

        start("[Plugin behave]\nIsolation=inprocess\n");
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        ck_assert(du2_wait_state(&d, "behave", "discovered", WAIT_MS));
        load_ok("behave");
        load_ok("fault");
        memset(args, 0, sizeof(args));
        for (int i = 0; i < CLIENTS; i++)
                ck_assert_int_eq(pthread_create(&th[i], NULL, client_run, &args[i]), 0);
        for (int i = 0; i < 8; i++) {
                json_t *r = call("fault", acts[i % 4], NULL);

                ck_assert_msg(du_error(r) != NULL, "%s answered", acts[i % 4]);
                json_decref(r);
        }
        for (int i = 0; i < CLIENTS; i++) {
                pthread_join(th[i], NULL);
                ok += args[i].ok;
                errors += args[i].errors;
        }
        printf("test-isolate: others: %d calls answered, %d errors\n", ok, errors);
        ck_assert_int_eq(errors, 0);
        ck_assert_int_eq(ok, CLIENTS * CALLS_EACH);
        du_assert_serving(&d);
}
END_TEST

/* ---- the sandbox ---- */

static int probe_errno(const char *method, const char *path)
{
        char params[PATH_MAX + 32];
        json_t *r;
        int e;

        snprintf(params, sizeof(params), "{\"path\":\"%s\"}", path ? path : "");
        r = call("fault", method, params);
        ck_assert_msg(!du_error(r), "%s: %s", method, du_error(r));
        e = (int)du_int(du_params(r), "result.errno");
        json_decref(r);
        return e;
}

/* What an isolated plugin tries against the daemon is refused; what the
 * test does with the same paths from outside works (the probes can fail). */
START_TEST(test_sandbox_refuses)
{
        char *inside, *secret;
        int fd;

        start(NULL);
        load_ok("fault");
        inside = tu_path(d.state, "planted");
        secret = tu_path(d.state, "secret");
        fd = open(secret, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "x", 1), 1);
        close(fd);

        ck_assert_int_ne(probe_errno("Creat", inside), 0);
        ck_assert_int_ne(access(inside, F_OK), 0);
        ck_assert_int_ne(probe_errno("OpenDir", d.state), 0);
        ck_assert_int_ne(probe_errno("Read", secret), 0);
        ck_assert_int_ne(probe_errno("Connect", d.socket), 0);
        ck_assert_int_eq(probe_errno("Ptrace", NULL), EPERM);
        ck_assert_int_eq(probe_errno("Exec", NULL), EPERM);
        ck_assert_int_eq(probe_errno("KillParent", NULL), EPERM);
        /* Positive controls, in the same worker: it reads system files. */
        ck_assert_int_eq(probe_errno("Read", "/etc/ld.so.cache"), 0);
        ck_assert_int_eq(probe_errno("OpenDir", "/usr/lib"), 0);
        du_assert_serving(&d);
        free(inside);
        free(secret);
}
END_TEST

/* The worker starts clean: no daemon descriptor but its channel (and the
 * image it runs), no environment, cwd /, a session of its own, the user
 * of User=. */
START_TEST(test_worker_is_clean)
{
        char path[64], link[PATH_MAX];
        struct dirent *de;
        long long pid;
        int n = 0;
        ssize_t len;
        DIR *dir;
        FILE *f;

        start("[Plugin fault]\nUser=nobody\n");
        load_ok("fault");
        pid = worker_pid("fault");
        ck_assert_int_gt(pid, 0);
        snprintf(path, sizeof(path), "/proc/%lld/fd", pid);
        dir = opendir(path);
        ck_assert_ptr_nonnull(dir);
        while ((de = readdir(dir))) {
                char fdpath[PATH_MAX];

                if (de->d_name[0] == '.')
                        continue;
                snprintf(fdpath, sizeof(fdpath), "%s/%s", path, de->d_name);
                len = readlink(fdpath, link, sizeof(link) - 1);
                link[len > 0 ? len : 0] = '\0';
                n++;
                ck_assert_msg(atoi(de->d_name) <= 2 || atoi(de->d_name) == 3 ||
                                      strstr(link, "memfd:") != NULL,
                              "worker fd %s -> %s", de->d_name, link);
        }
        closedir(dir);
        ck_assert_int_le(n, 5);
        snprintf(path, sizeof(path), "/proc/%lld/environ", pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fgetc(f), EOF);
        fclose(f);
        snprintf(path, sizeof(path), "/proc/%lld/cwd", pid);
        len = readlink(path, link, sizeof(link) - 1);
        ck_assert_int_eq(len, 1);
        ck_assert_int_eq(getpgid((pid_t)pid), (pid_t)pid);
        {
                json_t *r = call("fault", "Pid", NULL);

                ck_assert_ptr_null(du_error(r));
                ck_assert_int_eq(du_int(du_params(r), "result.pid"), pid);
                ck_assert_int_eq(du_int(du_params(r), "result.uid"), 65534);
                json_decref(r);
        }
}
END_TEST

static void add_case(Suite *s, const char *name, const TTest *test, int timeout)
{
        TCase *tc = tcase_create(name);

        tcase_add_checked_fixture(tc, NULL, teardown);
        tcase_set_timeout(tc, timeout);
        tcase_add_test(tc, test);
        suite_add_tcase(s, tc);
}

int main(void)
{
        Suite *s = suite_create("isolate");

        if (geteuid() != 0) {
                fprintf(stderr, "test-isolate must run as root\n");
                return 99;
        }
        add_case(s, "call_segv", test_call_segv, 60);
        add_case(s, "rude_error_message", test_rude_error_message, 60);
        add_case(s, "call_abort", test_call_abort, 60);
        add_case(s, "call_exit0", test_call_exit0, 60);
        add_case(s, "call_closefds", test_call_closefds, 60);
        add_case(s, "call_loop", test_call_loop, 60);
        add_case(s, "queued_calls_survive_crash", test_queued_calls_survive_crash, 60);
        add_case(s, "abandoned_queued_call_not_rerun", test_abandoned_queued_call_not_rerun, 60);
        add_case(s, "queued_past_deadline_not_run", test_queued_past_deadline_not_run, 60);
        add_case(s, "quarantine_between_calls", test_quarantine_between_calls, 120);
        add_case(s, "sigterm_drains_isolated_calls", test_sigterm_drains_isolated_calls, 60);
        add_case(s, "forged_answer_shifts_nothing", test_forged_answer_shifts_nothing, 60);
        add_case(s, "default_user_and_nproc", test_default_user_and_nproc, 60);
        add_case(s, "config_refused", test_config_refused, 120);
        add_case(s, "directory_section_applies", test_directory_section_applies, 60);
        add_case(s, "call_thread_signals_unload", test_call_thread_signals_unload, 60);
        add_case(s, "daemon_death_ends_workers", test_daemon_death_ends_workers, 60);
        add_case(s, "init_segv", test_init_segv, 60);
        add_case(s, "init_abort", test_init_abort, 60);
        add_case(s, "init_exit0", test_init_exit0, 60);
        add_case(s, "init_loop", test_init_loop, 60);
        add_case(s, "init_closefds", test_init_closefds, 60);
        add_case(s, "init_thread", test_init_thread, 60);
        add_case(s, "init_signals", test_init_signals, 60);
        add_case(s, "fini_signals", test_fini_signals, 60);
        add_case(s, "fini_closefds", test_fini_closefds, 60);
        add_case(s, "hot_replace", test_hot_replace, 60);
        add_case(s, "fini_segv", test_fini_segv, 60);
        add_case(s, "fini_abort", test_fini_abort, 60);
        add_case(s, "fini_exit0", test_fini_exit0, 60);
        add_case(s, "fini_loop", test_fini_loop, 60);
        add_case(s, "fini_thread", test_fini_thread, 60);
        add_case(s, "quarantine", test_quarantine_then_fixed_file, 120);
        add_case(s, "others_lose_nothing", test_others_lose_nothing, 120);
        add_case(s, "sandbox_refuses", test_sandbox_refuses, 60);
        add_case(s, "worker_is_clean", test_worker_is_clean, 60);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
