/* Integration tests of plughostd: each test starts the real daemon on a
 * socket in a mkdtemp directory with its own plugins, talks Varlink to it
 * (raw, through plughostctl and through socat), and stops it with SIGTERM,
 * expecting a clean exit. Bad input of every kind must get its error and
 * leave the daemon serving. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon-util.h"
#include "testutil.h"

/* The plugins of the common fixture: 7 plugins and one file that is not. */
#define N_PLUGINS 7

static du_daemon D;

static void add_common_plugins(du_daemon *d)
{
        du_add_plugin(d, tu_example("hello.so"), "hello.so");
        du_add_plugin(d, tu_example("upper.so"), "upper.so");
        du_add_plugin(d, tu_example("counter.so"), "counter.so");
        du_add_plugin(d, tu_fixture("counted-v1.so"), "counted-v1.so");
        du_add_plugin(d, tu_fixture("init-fail.so"), "init-fail.so");
        du_add_plugin(d, tu_fixture("slow-init.so"), "slow-init.so");
        du_add_plugin(d, tu_fixture("serial.so"), "serial.so");
}

static void setup(void)
{
        char *junk;

        du_init(&D);
        add_common_plugins(&D);
        junk = tu_path(D.plugins, "junk.so");
        tu_write_file(junk, "not an ELF file\n", 16);
        free(junk);
        du_start(&D);
}

static void teardown(void)
{
        du_stop(&D);
}

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The reply's parameters, asserting it is not an error. Borrowed from reply. */
static json_t *ok(json_t *reply)
{
        char *text = json_dumps(reply, JSON_COMPACT);

        ck_assert_msg(du_error(reply) == NULL, "error reply: %.300s", text);
        free(text);
        return du_params(reply);
}

static json_t *find_plugin(json_t *plugins, const char *name)
{
        size_t i;
        json_t *p;

        json_array_foreach(plugins, i, p)
                if (strcmp(du_str(p, "name"), name) == 0)
                        return p;
        return NULL;
}

static const char *plugin_state(const char *name)
{
        static char state[32];
        json_t *r = du_requestf(&D, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"%s\"}}",
                                name);

        snprintf(state, sizeof(state), "%s", du_str(ok(r), "plugin.state"));
        json_decref(r);
        return state;
}

/* ---- reads ---- */

START_TEST(test_list)
{
        json_t *r = du_request(&D, "{\"method\":\"io.plughost.List\"}");
        json_t *plugins = json_object_get(ok(r), "plugins"), *rejected, *hello;
        char *path = tu_path(D.plugins, "hello.so");
        static const char *const order[] = { "counted", "counter", "hello", "initfail", "serial",
                                             "slow", "upper" };

        ck_assert_uint_eq(json_array_size(plugins), N_PLUGINS);
        for (size_t i = 0; i < N_PLUGINS; i++)
                ck_assert_str_eq(du_str(json_array_get(plugins, i), "name"), order[i]);
        hello = find_plugin(plugins, "hello");
        ck_assert_str_eq(du_str(hello, "version"), "1.0.0");
        ck_assert_uint_eq(json_array_size(json_object_get(hello, "interfaces")), 1);
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(hello, "interfaces"), 0)),
                         "org.example.Greeter");
        ck_assert_str_eq(du_str(hello, "description"), "Greets whoever it is given.");
        ck_assert_str_eq(du_str(hello, "license"), "MIT");
        ck_assert(json_is_null(json_object_get(hello, "url")));
        ck_assert_str_eq(du_str(hello, "concurrency"), "parallel");
        ck_assert(json_is_false(json_object_get(hello, "resident")));
        ck_assert_int_eq(du_int(hello, "priority"), 0);
        ck_assert_str_eq(du_str(hello, "state"), "discovered");
        ck_assert_str_eq(du_str(hello, "file"), path);
        ck_assert_int_gt(du_int(hello, "generation"), 0);
        ck_assert(json_is_null(json_object_get(hello, "lastError")));
        ck_assert_str_eq(du_str(find_plugin(plugins, "counter"), "concurrency"), "serial");

        rejected = json_object_get(du_params(r), "rejected");
        ck_assert_uint_eq(json_array_size(rejected), 1);
        free(path);
        path = tu_path(D.plugins, "junk.so");
        ck_assert_str_eq(du_str(json_array_get(rejected, 0), "file"), path);
        ck_assert_str_eq(du_str(json_array_get(rejected, 0), "reason"), "not-elf");
        ck_assert_str_ne(du_str(json_array_get(rejected, 0), "message"), "");
        free(path);
        json_decref(r);

        r = du_request(&D, "{\"method\":\"io.plughost.List\",\"parameters\":"
                           "{\"interface\":\"org.example.Counted\"}}");
        plugins = json_object_get(ok(r), "plugins");
        ck_assert_uint_eq(json_array_size(plugins), 4);
        ck_assert_ptr_nonnull(find_plugin(plugins, "counted"));
        ck_assert_ptr_nonnull(find_plugin(plugins, "initfail"));
        ck_assert_ptr_null(find_plugin(plugins, "hello"));
        json_decref(r);

        r = du_request(&D, "{\"method\":\"io.plughost.List\",\"parameters\":{\"state\":\"loaded\"}}");
        ck_assert_uint_eq(json_array_size(json_object_get(ok(r), "plugins")), 0);
        json_decref(r);
        /* null reads as absent. */
        r = du_request(&D, "{\"method\":\"io.plughost.List\",\"parameters\":{\"state\":null}}");
        ck_assert_uint_eq(json_array_size(json_object_get(ok(r), "plugins")), N_PLUGINS);
        json_decref(r);
}
END_TEST

START_TEST(test_info)
{
        json_t *r = du_request(&D, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"hello\"}}");
        json_t *p = ok(r);

        ck_assert_str_eq(du_str(p, "plugin.name"), "hello");
        ck_assert_str_eq(du_str(p, "plugin.state"), "discovered");
        ck_assert_str_eq(du_str(p, "metadata.name"), "hello");
        ck_assert_str_eq(du_str(p, "metadata.license"), "MIT");
        ck_assert_str_eq(du_str(p, "metadata.description"), "Greets whoever it is given.");
        ck_assert_int_eq(du_int(p, "counters.calls"), 0);
        ck_assert_int_eq(du_int(p, "counters.callsFailed"), 0);
        ck_assert_int_eq(du_int(p, "counters.callsInFlight"), 0);
        ck_assert_int_eq(du_int(p, "counters.loads"), 0);
        ck_assert_int_eq(du_int(p, "counters.loadFailures"), 0);
        ck_assert_int_eq(du_int(p, "counters.unloads"), 0);
        json_decref(r);

        r = du_request(&D, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"counter\"}}");
        ck_assert_str_eq(du_str(ok(r), "metadata.concurrency"), "serial");
        json_decref(r);
}
END_TEST

START_TEST(test_query)
{
        json_t *r = du_request(&D, "{\"method\":\"io.plughost.Query\",\"parameters\":"
                                   "{\"interface\":\"org.example.Counted\"}}");
        json_t *plugins = json_object_get(ok(r), "plugins");
        static const char *const order[] = { "counted", "initfail", "serial", "slow" };

        /* Same priority and version: by name. */
        ck_assert_uint_eq(json_array_size(plugins), 4);
        for (size_t i = 0; i < 4; i++)
                ck_assert_str_eq(du_str(json_array_get(plugins, i), "name"), order[i]);
        json_decref(r);

        r = du_request(&D, "{\"method\":\"io.plughost.Query\",\"parameters\":"
                           "{\"interface\":\"org.example.Nothing\"}}");
        ck_assert_uint_eq(json_array_size(json_object_get(ok(r), "plugins")), 0);
        json_decref(r);
}
END_TEST

START_TEST(test_status)
{
        json_t *r = du_request(&D, "{\"method\":\"io.plughost.Status\"}");
        json_t *p = ok(r), *dirs = json_object_get(p, "pluginDirectories");
        char *real = realpath(D.plugins, NULL);

        ck_assert_str_eq(du_str(p, "version"), PACKAGE_VERSION);
        ck_assert_int_ge(du_int(p, "uptimeSeconds"), 0);
        ck_assert_uint_eq(json_array_size(dirs), 1);
        ck_assert_str_eq(json_string_value(json_array_get(dirs, 0)), real);
        ck_assert_int_eq(du_int(p, "plugins"), N_PLUGINS);
        ck_assert_int_eq(du_int(p, "loaded"), 0);
        ck_assert_int_eq(du_int(p, "rejected"), 1);
        ck_assert_int_ge(du_int(p, "clients"), 1);
        ck_assert_int_eq(du_int(p, "counters.calls"), 0);
        ck_assert_int_eq(du_int(p, "counters.loads"), 0);
        free(real);
        json_decref(r);

        json_decref(du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                   "{\"name\":\"hello\",\"method\":\"Hello\"}}"));
        json_decref(du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                   "{\"name\":\"counted\",\"method\":\"Fail\"}}"));
        r = du_request(&D, "{\"method\":\"io.plughost.Status\"}");
        p = ok(r);
        ck_assert_int_eq(du_int(p, "loaded"), 2);
        ck_assert_int_eq(du_int(p, "counters.calls"), 2);
        ck_assert_int_eq(du_int(p, "counters.callsFailed"), 1);
        ck_assert_int_eq(du_int(p, "counters.callsInFlight"), 0);
        ck_assert_int_eq(du_int(p, "counters.loads"), 2);
        json_decref(r);
}
END_TEST

/* ---- calls, loads and unloads ---- */

START_TEST(test_call_examples)
{
        json_t *r;

        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\","
                           "\"method\":\"Hello\",\"parameters\":{\"name\":\"Tester\"}}}");
        ck_assert_str_eq(du_str(ok(r), "result.greeting"), "Hello, Tester!");
        json_decref(r);
        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\","
                           "\"method\":\"Hello\",\"parameters\":null}}");
        ck_assert_str_eq(du_str(ok(r), "result.greeting"), "Hello, world!");
        json_decref(r);
        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"upper\","
                           "\"method\":\"Upper\",\"parameters\":{\"text\":\"abc\"}}}");
        ck_assert_ptr_null(du_error(r));
        json_decref(r);

        for (int i = 0; i < 3; i++) {
                r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                   "{\"name\":\"counter\",\"method\":\"Next\"}}");
                ck_assert_int_eq(du_int(ok(r), "result.value"), i);
                json_decref(r);
        }
}
END_TEST

/* Serial plugins: calls in flight together run one at a time, and each
 * number of the counter comes out once. */
START_TEST(test_call_serial)
{
        enum { N = 4, SLEEP_MS = 100, COUNTS = 20 };
        du_conn *c[N];
        long long start = now_ms();
        bool seen[COUNTS] = { false };
        du_conn *one;

        for (int i = 0; i < N; i++) {
                c[i] = du_connect(&D);
                du_send(c[i], "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"serial\","
                              "\"method\":\"Sleep\",\"parameters\":{\"ms\":100}}}");
        }
        for (int i = 0; i < N; i++) {
                json_t *r = du_recv(c[i]);

                ck_assert_str_eq(du_str(ok(r), "result.version"), "1.0.0");
                json_decref(r);
                du_close(c[i]);
        }
        ck_assert_int_ge(now_ms() - start, N * SLEEP_MS);

        one = du_connect(&D);
        for (int i = 0; i < COUNTS; i++)
                du_send(one, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                             "{\"name\":\"counter\",\"method\":\"Next\"}}");
        for (int i = 0; i < COUNTS; i++) {
                json_t *r = du_recv(one);
                long long v = du_int(ok(r), "result.value");

                ck_assert(v >= 0 && v < COUNTS && !seen[v]);
                seen[v] = true;
                json_decref(r);
        }
        du_close(one);
}
END_TEST

START_TEST(test_call_loads_on_demand)
{
        json_t *r;

        ck_assert_str_eq(plugin_state("hello"), "discovered");
        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                           "{\"name\":\"hello\",\"method\":\"Hello\"}}");
        ok(r);
        json_decref(r);
        r = du_request(&D, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_str_eq(du_str(ok(r), "plugin.state"), "loaded");
        ck_assert_int_eq(du_int(du_params(r), "counters.loads"), 1);
        ck_assert_int_eq(du_int(du_params(r), "counters.calls"), 1);
        json_decref(r);
}
END_TEST

/* Many first calls at once to a plugin whose init is slow: one load, and
 * every call answered. */
START_TEST(test_call_concurrent_first_load)
{
        enum { N = 10 };
        du_conn *c[N];
        json_t *r;

        for (int i = 0; i < N; i++) {
                c[i] = du_connect(&D);
                du_send(c[i], "{\"method\":\"io.plughost.Call\",\"parameters\":"
                              "{\"name\":\"slow\",\"method\":\"Version\"}}");
        }
        for (int i = 0; i < N; i++) {
                r = du_recv(c[i]);
                ck_assert_str_eq(du_str(ok(r), "result.version"), "1.0.0");
                json_decref(r);
                du_close(c[i]);
        }
        r = du_request(&D, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"slow\"}}");
        ck_assert_int_eq(du_int(ok(r), "counters.loads"), 1);
        ck_assert_int_eq(du_int(du_params(r), "counters.calls"), N);
        json_decref(r);
}
END_TEST

START_TEST(test_load_unload)
{
        json_t *r;

        r = du_request(&D, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_str_eq(du_str(ok(r), "plugin.name"), "hello");
        ck_assert_str_eq(du_str(du_params(r), "plugin.state"), "loaded");
        json_decref(r);
        ck_assert_str_eq(plugin_state("hello"), "loaded");

        r = du_request(&D, "{\"method\":\"io.plughost.List\",\"parameters\":{\"state\":\"loaded\"}}");
        ck_assert_uint_eq(json_array_size(json_object_get(ok(r), "plugins")), 1);
        ck_assert_str_eq(du_str(json_array_get(json_object_get(du_params(r), "plugins"), 0), "name"),
                         "hello");
        json_decref(r);

        /* Loading a loaded plugin is a no-op. */
        r = du_request(&D, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_str_eq(du_str(ok(r), "plugin.state"), "loaded");
        json_decref(r);

        r = du_request(&D, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_uint_eq(json_object_size(ok(r)), 0);
        json_decref(r);
        r = du_request(&D, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_str_eq(du_str(ok(r), "plugin.state"), "discovered");
        ck_assert_int_eq(du_int(du_params(r), "counters.loads"), 1);
        ck_assert_int_eq(du_int(du_params(r), "counters.unloads"), 1);
        json_decref(r);
        r = du_request(&D, "{\"method\":\"io.plughost.Status\"}");
        ck_assert_int_eq(du_int(ok(r), "loaded"), 0);
        json_decref(r);

        /* Unloading what is not loaded is fine too; loading again works. */
        json_decref(du_request(&D, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"hello\"}}"));
        r = du_request(&D, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_str_eq(du_str(ok(r), "plugin.state"), "loaded");
        json_decref(r);
        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\","
                           "\"method\":\"Hello\"}}");
        ck_assert_str_eq(du_str(ok(r), "result.greeting"), "Hello, world!");
        json_decref(r);
}
END_TEST

START_TEST(test_load_failed)
{
        json_t *r = du_request(&D, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"initfail\"}}");
        json_t *p = du_params(r);

        ck_assert_str_eq(du_error(r), "io.plughost.LoadFailed");
        ck_assert_str_eq(du_str(p, "name"), "initfail");
        ck_assert_ptr_nonnull(strstr(du_str(p, "message"), "refusing to start"));
        json_decref(r);

        r = du_request(&D, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"initfail\"}}");
        ck_assert_str_eq(du_str(ok(r), "plugin.state"), "failed");
        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "plugin.lastError"), "refusing to start"));
        ck_assert_int_eq(du_int(du_params(r), "counters.loadFailures"), 1);
        json_decref(r);

        /* A call needs a load, and fails the same way. */
        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                           "{\"name\":\"initfail\",\"method\":\"Version\"}}");
        ck_assert_str_eq(du_error(r), "io.plughost.LoadFailed");
        json_decref(r);
        du_assert_serving(&D);
}
END_TEST

START_TEST(test_call_failed)
{
        json_t *r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                   "{\"name\":\"counted\",\"method\":\"Fail\"}}");
        json_t *p = du_params(r);

        ck_assert_str_eq(du_error(r), "io.plughost.CallFailed");
        ck_assert_str_eq(du_str(p, "name"), "counted");
        ck_assert_str_eq(du_str(p, "method"), "Fail");
        ck_assert_int_eq(du_int(p, "errno"), EINVAL);
        ck_assert_str_eq(du_str(p, "message"), "failing as asked, params {}");
        json_decref(r);

        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"counted\","
                           "\"method\":\"Fail\",\"parameters\":{\"x\":1}}}");
        ck_assert_str_eq(du_error(r), "io.plughost.CallFailed");
        ck_assert_str_eq(du_str(du_params(r), "message"), "failing as asked, params {\"x\":1}");
        json_decref(r);

        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                           "{\"name\":\"counted\",\"method\":\"Nope\"}}");
        ck_assert_str_eq(du_error(r), "io.plughost.CallFailed");
        ck_assert_int_eq(du_int(du_params(r), "errno"), EOPNOTSUPP);
        ck_assert_str_eq(du_str(du_params(r), "message"), "no method Nope");
        json_decref(r);

        /* The instance survives its failures. */
        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                           "{\"name\":\"counted\",\"method\":\"Version\"}}");
        ck_assert_str_eq(du_str(ok(r), "result.version"), "1.0.0");
        json_decref(r);
        r = du_request(&D, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"counted\"}}");
        ck_assert_int_eq(du_int(ok(r), "counters.calls"), 4);
        ck_assert_int_eq(du_int(du_params(r), "counters.callsFailed"), 3);
        json_decref(r);
}
END_TEST

START_TEST(test_no_such_plugin)
{
        static const char *const reqs[] = {
                "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"nope\"}}",
                "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"nope\"}}",
                "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"nope\"}}",
                "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"nope\",\"method\":\"X\"}}",
        };

        for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
                json_t *r = du_request(&D, reqs[i]);

                ck_assert_str_eq(du_error(r), "io.plughost.NoSuchPlugin");
                ck_assert_str_eq(du_str(du_params(r), "name"), "nope");
                ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"), "nope"));
                json_decref(r);
        }
        du_assert_serving(&D);
}
END_TEST

/* Reads Monitor events until one of kind for name; fails after the
 * deadline. */
static void wait_event(du_conn *m, const char *kind, const char *name)
{
        for (;;) {
                json_t *r = du_recv(m);

                ck_assert_msg(r != NULL, "the monitor stream ended before %s %s", kind, name);
                if (strcmp(du_str(ok(r), "event.kind"), kind) == 0 &&
                    strcmp(du_str(du_params(r), "event.name"), name) == 0) {
                        json_decref(r);
                        return;
                }
                json_decref(r);
        }
}

static du_conn *monitor(du_daemon *d)
{
        du_conn *m = du_connect(d);
        json_t *r;

        du_send(m, "{\"method\":\"io.plughost.Monitor\",\"more\":true}");
        r = du_recv(m);
        ck_assert(json_is_true(json_object_get(r, "continues")));
        json_decref(r);
        return m;
}

/* Rescan after copying plugins in. The watcher may apply a change first;
 * then Rescan finds it done: every change is counted by one of them and
 * announced once. */
START_TEST(test_rescan)
{
        json_t *r, *rejected;
        char *junk = tu_path(D.plugins, "junk.so");
        long long added, removed;
        du_conn *m;

        r = du_request(&D, "{\"method\":\"io.plughost.Rescan\"}");
        ck_assert_int_eq(du_int(ok(r), "added"), 0);
        ck_assert_int_eq(du_int(du_params(r), "changed"), 0);
        ck_assert_int_eq(du_int(du_params(r), "removed"), 0);
        json_decref(r);

        m = monitor(&D);
        du_add_plugin(&D, tu_fixture("parallel.so"), "parallel.so");
        ck_assert_int_eq(unlink(junk), 0);
        r = du_request(&D, "{\"method\":\"io.plughost.Rescan\"}");
        added = du_int(ok(r), "added");
        removed = du_int(du_params(r), "removed");
        ck_assert(added == 0 || added == 1);
        ck_assert(removed == 0 || removed == 1);
        json_decref(r);
        /* Whoever found it, it is there now. */
        wait_event(m, "added", "parallel");
        ck_assert_str_eq(plugin_state("parallel"), "discovered");
        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                           "{\"name\":\"parallel\",\"method\":\"Version\"}}");
        ok(r);
        json_decref(r);
        /* Nothing left to find. */
        r = du_request(&D, "{\"method\":\"io.plughost.Rescan\"}");
        ck_assert_int_eq(du_int(ok(r), "added") + du_int(du_params(r), "changed") +
                         du_int(du_params(r), "removed"), 0);
        json_decref(r);

        /* A newer version of counted wins the name; the old file is shadowed. */
        du_add_plugin(&D, tu_fixture("counted-v2.so"), "counted-v2.so");
        r = du_request(&D, "{\"method\":\"io.plughost.Rescan\"}");
        added = du_int(ok(r), "added");
        ck_assert(added == 0 || added == 1);
        json_decref(r);
        wait_event(m, "changed", "counted");
        r = du_request(&D, "{\"method\":\"io.plughost.List\"}");
        ck_assert_str_eq(du_str(find_plugin(json_object_get(ok(r), "plugins"), "counted"), "version"),
                         "2.0.0");
        rejected = json_object_get(du_params(r), "rejected");
        ck_assert_uint_eq(json_array_size(rejected), 1);
        ck_assert_str_eq(du_str(json_array_get(rejected, 0), "reason"), "shadowed");
        json_decref(r);
        r = du_request(&D, "{\"method\":\"io.plughost.Status\"}");
        ck_assert_int_eq(du_int(ok(r), "plugins"), N_PLUGINS + 1);
        json_decref(r);
        du_close(m);
        free(junk);
}
END_TEST

/* ---- one connection, many requests ---- */

START_TEST(test_pipelined_in_order)
{
        enum { N = 10 };
        du_conn *c = du_connect(&D);
        char *all = NULL, req[256];
        size_t len = 0;
        FILE *f = open_memstream(&all, &len);
        json_t *r;

        /* One write: a slow call first, then fast ones that finish before it. */
        fputs("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"counted\","
              "\"method\":\"Sleep\",\"parameters\":{\"ms\":300}}}", f);
        fputc('\0', f);
        for (int i = 0; i < N; i++) {
                snprintf(req, sizeof(req), "{\"method\":\"io.plughost.Call\",\"parameters\":"
                         "{\"name\":\"hello\",\"method\":\"Hello\",\"parameters\":{\"name\":\"n%d\"}}}", i);
                fputs(req, f);
                fputc('\0', f);
        }
        fputs("{\"method\":\"io.plughost.Status\"}", f);
        fputc('\0', f);
        fputs("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"nope\"}}", f);
        fputc('\0', f);
        fclose(f);
        ck_assert(du_send_raw(c, all, len));
        free(all);

        r = du_recv(c);
        ck_assert_str_eq(du_str(ok(r), "result.version"), "1.0.0");
        json_decref(r);
        for (int i = 0; i < N; i++) {
                char want[32];

                snprintf(want, sizeof(want), "Hello, n%d!", i);
                r = du_recv(c);
                ck_assert_str_eq(du_str(ok(r), "result.greeting"), want);
                json_decref(r);
        }
        r = du_recv(c);
        ck_assert_str_eq(du_str(ok(r), "version"), PACKAGE_VERSION);
        json_decref(r);
        r = du_recv(c);
        ck_assert_str_eq(du_error(r), "io.plughost.NoSuchPlugin");
        json_decref(r);
        du_close(c);
}
END_TEST

/* Pipelined requests and a half-close: every answer arrives before the
 * daemon closes, even when they are more than the socket buffer holds. */
START_TEST(test_pipelined_half_close)
{
        enum { N = 120 };
        static const char req[] = "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                                  "\"parameters\":{\"interface\":\"io.plughost\"}}";
        du_conn *c = du_connect(&D);
        json_t *r;
        int n = 0;

        for (int i = 0; i < N; i++)
                du_send(c, req);
        ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);
        while ((r = du_recv(c))) {
                ck_assert_ptr_nonnull(strstr(du_str(ok(r), "description"), "interface io.plughost"));
                json_decref(r);
                n++;
        }
        ck_assert_int_eq(n, N);
        du_close(c);

        /* Calls that run in plugins, then the half-close (as socat does). */
        c = du_connect(&D);
        du_send(c, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"counted\","
                   "\"method\":\"Sleep\",\"parameters\":{\"ms\":50}}}");
        du_send(c, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\","
                   "\"method\":\"Hello\"}}");
        ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);
        r = du_recv(c);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(du_str(ok(r), "result.version"), "1.0.0");
        json_decref(r);
        r = du_recv(c);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(du_str(ok(r), "result.greeting"), "Hello, world!");
        json_decref(r);
        ck_assert_ptr_null(du_recv(c));
        du_close(c);
        du_assert_serving(&D);
}
END_TEST

START_TEST(test_oneway)
{
        du_conn *c = du_connect(&D);
        long long deadline = now_ms() + DU_TIMEOUT_MS;
        json_t *r;

        du_send(c, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                   "{\"name\":\"counter\",\"method\":\"Next\"},\"oneway\":true}");
        du_send(c, "{\"method\":\"io.plughost.Status\"}");
        r = du_recv(c);
        ck_assert_str_eq(du_str(ok(r), "version"), PACKAGE_VERSION);
        json_decref(r);
        ck_assert(du_quiet(c, 200));

        /* It ran all the same. */
        for (;;) {
                r = du_request(&D, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"counter\"}}");
                if (du_int(ok(r), "counters.calls") == 1) {
                        json_decref(r);
                        break;
                }
                json_decref(r);
                ck_assert_msg(now_ms() < deadline, "the oneway call never ran");
        }
        r = du_request(&D, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                           "{\"name\":\"counter\",\"method\":\"Next\"}}");
        ck_assert_int_eq(du_int(ok(r), "result.value"), 1);
        json_decref(r);

        /* A request refused as malformed is answered even when oneway. */
        du_send(c, "{\"method\":\"io.plughost.Nope\",\"oneway\":true}");
        r = du_recv(c);
        ck_assert_str_eq(du_error(r), "org.varlink.service.MethodNotFound");
        json_decref(r);
        du_close(c);
}
END_TEST

START_TEST(test_monitor)
{
        du_conn *m = du_connect(&D);
        json_t *r;

        du_send(m, "{\"method\":\"io.plughost.Monitor\",\"more\":true}");
        r = du_recv(m);
        ck_assert_uint_eq(json_object_size(ok(r)), 0);
        ck_assert(json_is_true(json_object_get(r, "continues")));
        json_decref(r);

        json_decref(du_request(&D, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}"));
        r = du_recv(m);
        ck_assert(json_is_true(json_object_get(r, "continues")));
        ck_assert_str_eq(du_str(ok(r), "event.kind"), "loaded");
        ck_assert_str_eq(du_str(du_params(r), "event.name"), "hello");
        ck_assert_str_eq(du_str(du_params(r), "event.version"), "1.0.0");
        ck_assert_int_gt(du_int(du_params(r), "event.generation"), 0);
        json_decref(r);

        json_decref(du_request(&D, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"hello\"}}"));
        r = du_recv(m);
        ck_assert_str_eq(du_str(ok(r), "event.kind"), "unloaded");
        json_decref(r);

        json_decref(du_request(&D, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"initfail\"}}"));
        r = du_recv(m);
        ck_assert_str_eq(du_str(ok(r), "event.kind"), "failed");
        ck_assert_str_eq(du_str(du_params(r), "event.name"), "initfail");
        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "event.message"), "refusing to start"));
        json_decref(r);

        du_add_plugin(&D, tu_fixture("parallel.so"), "parallel.so");
        json_decref(du_request(&D, "{\"method\":\"io.plughost.Rescan\"}"));
        r = du_recv(m);
        ck_assert_str_eq(du_str(ok(r), "event.kind"), "added");
        ck_assert_str_eq(du_str(du_params(r), "event.name"), "parallel");
        json_decref(r);
        du_close(m);

        /* Monitor needs "more". */
        du_assert_error(&D, du_request(&D, "{\"method\":\"io.plughost.Monitor\"}"),
                        "org.varlink.service.ExpectedMore");
}
END_TEST

START_TEST(test_get_info)
{
        json_t *r = du_request(&D, "{\"method\":\"org.varlink.service.GetInfo\"}");
        json_t *p = ok(r), *ifaces = json_object_get(p, "interfaces");
        size_t size;
        unsigned char *idl;

        ck_assert_str_eq(du_str(p, "vendor"), "plughost");
        ck_assert_str_eq(du_str(p, "product"), "plughostd");
        ck_assert_str_eq(du_str(p, "version"), PACKAGE_VERSION);
        ck_assert(json_is_string(json_object_get(p, "url")));
        ck_assert_uint_eq(json_array_size(ifaces), 2);
        ck_assert_str_eq(json_string_value(json_array_get(ifaces, 0)), "org.varlink.service");
        ck_assert_str_eq(json_string_value(json_array_get(ifaces, 1)), "io.plughost");
        json_decref(r);

        r = du_request(&D, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                           "\"parameters\":{\"interface\":\"io.plughost\"}}");
        idl = tu_read_file(PH_VARLINK_IDL, &size);
        idl[size] = '\0';
        ck_assert_str_eq(du_str(ok(r), "description"), (char *)idl);
        free(idl);
        json_decref(r);

        r = du_request(&D, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                           "\"parameters\":{\"interface\":\"org.varlink.service\"}}");
        ck_assert_ptr_nonnull(strstr(du_str(ok(r), "description"), "interface org.varlink.service"));
        json_decref(r);

        r = du_request(&D, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                           "\"parameters\":{\"interface\":\"com.example.nope\"}}");
        ck_assert_str_eq(du_str(du_params(r), "interface"), "com.example.nope");
        du_assert_error(&D, r, "org.varlink.service.InterfaceNotFound");
}
END_TEST

/* ---- bad input: each gets its error, and the daemon goes on ---- */

/* Sends raw bytes (with a NUL) and asserts an InvalidParameter naming
 * parameter (NULL: any). */
static void assert_invalid(const char *msg, size_t len, const char *parameter)
{
        du_conn *c = du_connect(&D);
        json_t *r;

        ck_assert(du_send_raw(c, msg, len));
        ck_assert(du_send_raw(c, "", 1));
        r = du_recv(c);
        ck_assert_msg(r != NULL, "no reply to %.100s", msg);
        if (parameter)
                ck_assert_str_eq(du_str(du_params(r), "parameter"), parameter);
        du_assert_error(&D, r, "org.varlink.service.InvalidParameter");
        /* The connection itself is still good. */
        du_send(c, "{\"method\":\"io.plughost.Status\"}");
        r = du_recv(c);
        ck_assert_ptr_nonnull(r);
        ok(r);
        json_decref(r);
        du_close(c);
}

#define INVALID(msg, parameter) assert_invalid(msg, sizeof(msg) - 1, parameter)

START_TEST(test_bad_json)
{
        INVALID("{\"method\":", "");
        INVALID("not json", "");
        INVALID("", "");
        INVALID("{\"method\":\"io.plughost.Status\"} trailing", "");
        INVALID("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"\xff\xfe\"}}", "");
        INVALID("{\"method\":\"io.plughost.Status\",\"method\":\"io.plughost.List\"}", "");
}
END_TEST

START_TEST(test_bad_non_object)
{
        INVALID("[1,2,3]", "");
        INVALID("\"io.plughost.Status\"", "");
        INVALID("42", "");
        INVALID("null", "");
        INVALID("true", "");
}
END_TEST

START_TEST(test_bad_missing_method)
{
        INVALID("{}", "method");
        INVALID("{\"parameters\":{}}", "method");
        INVALID("{\"method\":\"\"}", "method");
        INVALID("{\"method\":\"Status\"}", "method");
        INVALID("{\"method\":\"io.plughost.\"}", "method");
}
END_TEST

START_TEST(test_bad_types)
{
        INVALID("{\"method\":5}", "method");
        INVALID("{\"method\":null}", "method");
        INVALID("{\"method\":[\"io.plughost.Status\"]}", "method");
        INVALID("{\"method\":\"io.plughost.Status\",\"parameters\":[]}", "parameters");
        INVALID("{\"method\":\"io.plughost.Status\",\"parameters\":\"x\"}", "parameters");
        INVALID("{\"method\":\"io.plughost.Status\",\"more\":\"yes\"}", "more");
        INVALID("{\"method\":\"io.plughost.Status\",\"oneway\":1}", "oneway");
        INVALID("{\"method\":\"io.plughost.Status\",\"upgrade\":true}", "upgrade");
        INVALID("{\"method\":\"io.plughost.Status\",\"oneway\":true,\"more\":true}", "oneway");
        INVALID("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":5}}", "name");
        INVALID("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":null}}", "name");
        INVALID("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\",\"method\":\"Hello\","
                "\"parameters\":[1]}}", "parameters");
}
END_TEST

START_TEST(test_bad_unknown_method)
{
        json_t *r = du_request(&D, "{\"method\":\"io.plughost.Nope\"}");

        ck_assert_str_eq(du_str(du_params(r), "method"), "io.plughost.Nope");
        du_assert_error(&D, r, "org.varlink.service.MethodNotFound");

        r = du_request(&D, "{\"method\":\"com.example.Nope.Method\"}");
        ck_assert_str_eq(du_str(du_params(r), "interface"), "com.example.Nope");
        du_assert_error(&D, r, "org.varlink.service.InterfaceNotFound");

        r = du_request(&D, "{\"method\":\"org.varlink.service.Nope\"}");
        du_assert_error(&D, r, "org.varlink.service.MethodNotFound");
}
END_TEST

START_TEST(test_bad_unknown_parameter)
{
        char req[512];

        INVALID("{\"method\":\"io.plughost.Status\",\"parameters\":{\"bogus\":1}}", "bogus");
        INVALID("{\"method\":\"io.plughost.Info\",\"parameters\":{}}", "name");
        INVALID("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"hello\",\"x\":null}}", "x");
        INVALID("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"a\\u0000b\"}}", "name");
        INVALID("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\"}}", "method");
        /* Names longer than a plugin name can be. */
        snprintf(req, sizeof(req), "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"%0100d\"}}", 0);
        assert_invalid(req, strlen(req), "name");
}
END_TEST

START_TEST(test_bad_huge_numbers)
{
        INVALID("{\"method\":\"io.plughost.Status\",\"parameters\":{\"x\":1e400}}", "");
        INVALID("{\"method\":\"io.plughost.Status\",\"parameters\":{\"x\":-1e400}}", "");
        INVALID("{\"method\":\"io.plughost.Status\",\"parameters\":{\"x\":99999999999999999999}}", "");
        INVALID("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":99999999999999999999}}", "");
        INVALID("1e400", "");
        INVALID("99999999999999999999", "");
        /* Big but in range: a plain type error. */
        INVALID("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":9223372036854775807}}", "name");
        INVALID("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":1e300}}", "name");
}
END_TEST

/* [[[[... nested 100 000 deep, and the same inside a Call's parameters. */
START_TEST(test_bad_deep_nesting)
{
        enum { DEPTH = 100000 };
        static const char head[] = "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\","
                                   "\"method\":\"Hello\",\"parameters\":{\"x\":";
        char *msg = malloc(sizeof(head) + 2 * DEPTH + 8), *p;

        ck_assert_ptr_nonnull(msg);
        memset(msg, '[', DEPTH);
        memset(msg + DEPTH, ']', DEPTH);
        assert_invalid(msg, 2 * DEPTH, "");
        assert_invalid(msg, DEPTH, "");         /* never closed */

        p = msg;
        memcpy(p, head, sizeof(head) - 1);
        p += sizeof(head) - 1;
        memset(p, '[', DEPTH);
        p += DEPTH;
        memset(p, ']', DEPTH);
        p += DEPTH;
        memcpy(p, "}}}", 3);
        p += 3;
        assert_invalid(msg, (size_t)(p - msg), "");
        free(msg);
}
END_TEST

/* 2 MiB without a NUL: an error, then the connection is closed. */
START_TEST(test_bad_oversize)
{
        enum { SIZE = 2 << 20 };
        static const char head[] = "{\"method\":\"io.plughost.Status\",\"parameters\":{\"x\":\"";
        du_conn *c = du_connect(&D);
        char *big = malloc(SIZE);
        json_t *r;

        ck_assert_ptr_nonnull(big);
        memcpy(big, head, sizeof(head) - 1);
        memset(big + sizeof(head) - 1, 'x', SIZE - (sizeof(head) - 1));
        /* The daemon may hang up before it has all of it. */
        du_send_raw(c, big, SIZE);
        free(big);
        r = du_recv(c);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(du_str(du_params(r), "parameter"), "message");
        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"), "larger than"));
        du_assert_error(&D, r, "org.varlink.service.InvalidParameter");
        ck_assert_ptr_null(du_recv(c));
        du_close(c);

        /* Just under the limit is still a message (refused for what it says). */
        big = malloc(SIZE);
        ck_assert_ptr_nonnull(big);
        memset(big, ' ', SIZE);
        memcpy(big, "{\"method\":\"io.plughost.Status\"}", 31);
        c = du_connect(&D);
        ck_assert(du_send_raw(c, big, (1 << 20) - 1));
        ck_assert(du_send_raw(c, "", 1));
        free(big);
        r = du_recv(c);
        ck_assert_ptr_nonnull(r);
        ok(r);
        json_decref(r);
        du_close(c);
        du_assert_serving(&D);
}
END_TEST

START_TEST(test_bad_partial_then_disconnect)
{
        du_conn *c = du_connect(&D);

        ck_assert(du_send_raw(c, "{\"method\":\"io.pl", 16));
        du_close(c);
        du_assert_serving(&D);

        /* Half-closed after a partial message: the daemon closes too. */
        c = du_connect(&D);
        ck_assert(du_send_raw(c, "{\"method\":\"io.plughost.Sta", 26));
        ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);
        ck_assert_ptr_null(du_recv(c));
        du_close(c);

        /* A request in flight when its client goes away. */
        c = du_connect(&D);
        du_send(c, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"counted\","
                   "\"method\":\"Sleep\",\"parameters\":{\"ms\":200}}}");
        du_send(c, "{\"method\":\"io.plughost.Monitor\",\"more\":true}");
        du_close(c);
        du_assert_serving(&D);
}
END_TEST

START_TEST(test_many_connections)
{
        enum { N = 300 };
        du_conn *c[N];
        json_t *r;

        for (int i = 0; i < N; i++)
                c[i] = du_connect(&D);
        for (int i = 0; i < N; i++)
                du_send(c[i], "{\"method\":\"io.plughost.Status\"}");
        for (int i = 0; i < N; i++) {
                r = du_recv(c[i]);
                ck_assert_msg(r != NULL, "connection %d was dropped", i);
                ck_assert_str_eq(du_str(ok(r), "version"), PACKAGE_VERSION);
                json_decref(r);
        }
        r = du_request(&D, "{\"method\":\"io.plughost.Status\"}");
        ck_assert_int_eq(du_int(ok(r), "clients"), N + 1);
        json_decref(r);
        for (int i = 0; i < N; i++)
                du_close(c[i]);
        du_assert_serving(&D);
}
END_TEST

/* ---- plughostctl and socat ---- */

static char ctl[4096];

static int run_ctl(char **out, ...)
{
        char *argv[16] = { ctl, "--socket", D.socket };
        int n = 3;
        va_list ap;

        va_start(ap, out);
        while (n < 15 && (argv[n] = va_arg(ap, char *)))
                n++;
        va_end(ap);
        argv[n] = NULL;
        return tu_run(argv, out);
}

static void ctl_setup(void)
{
        snprintf(ctl, sizeof(ctl), "%s/plughostctl", getenv("PH_BUILDDIR"));
}

START_TEST(test_ctl_commands)
{
        json_t *j;
        char *out;

        ctl_setup();
        ck_assert_int_eq(run_ctl(&out, "list", NULL), 0);
        ck_assert_ptr_nonnull(strstr(out, "NAME"));
        ck_assert_ptr_nonnull(strstr(out, "org.example.Greeter"));
        ck_assert_ptr_nonnull(strstr(out, "not-elf"));
        free(out);
        ck_assert_int_eq(run_ctl(&out, "list", "--interface", "org.example.Counter", NULL), 0);
        ck_assert_ptr_nonnull(strstr(out, "counter"));
        ck_assert_ptr_null(strstr(out, "hello"));
        free(out);
        ck_assert_int_eq(run_ctl(&out, "--json", "list", "--state=discovered", NULL), 0);
        j = json_loads(out, 0, NULL);
        ck_assert_uint_eq(json_array_size(json_object_get(j, "plugins")), N_PLUGINS);
        json_decref(j);
        free(out);

        ck_assert_int_eq(run_ctl(&out, "info", "hello", NULL), 0);
        ck_assert_ptr_nonnull(strstr(out, "Greets whoever it is given."));
        ck_assert_ptr_nonnull(strstr(out, "discovered"));
        free(out);

        ck_assert_int_eq(run_ctl(&out, "call", "hello", "Hello", "{\"name\":\"ctl\"}", NULL), 0);
        ck_assert_ptr_nonnull(strstr(out, "Hello, ctl!"));
        free(out);
        ck_assert_int_eq(run_ctl(&out, "call", "counter", "Next", "--json", NULL), 0);
        j = json_loads(out, 0, NULL);
        ck_assert_int_eq(du_int(j, "result.value"), 0);
        json_decref(j);
        free(out);

        ck_assert_int_eq(run_ctl(&out, "load", "upper", NULL), 0);
        ck_assert_ptr_nonnull(strstr(out, "loaded"));
        free(out);
        ck_assert_int_eq(run_ctl(&out, "--json", "info", "upper", NULL), 0);
        j = json_loads(out, 0, NULL);
        ck_assert_str_eq(du_str(j, "plugin.state"), "loaded");
        ck_assert_str_eq(du_str(j, "metadata.name"), "upper");
        json_decref(j);
        free(out);
        ck_assert_int_eq(run_ctl(NULL, "unload", "upper", NULL), 0);
        ck_assert_str_eq(plugin_state("upper"), "discovered");

        ck_assert_int_eq(run_ctl(&out, "status", NULL), 0);
        ck_assert_ptr_nonnull(strstr(out, PACKAGE_VERSION));
        free(out);
        ck_assert_int_eq(run_ctl(&out, "status", "--json", NULL), 0);
        j = json_loads(out, 0, NULL);
        ck_assert_int_eq(du_int(j, "plugins"), N_PLUGINS);
        json_decref(j);
        free(out);
        ck_assert_int_eq(run_ctl(&out, "query", "org.example.Counted", NULL), 0);
        ck_assert_ptr_nonnull(strstr(out, "initfail"));
        free(out);
        ck_assert_int_eq(run_ctl(&out, "rescan", NULL), 0);
        ck_assert_ptr_nonnull(strstr(out, "added 0"));
        free(out);
}
END_TEST

START_TEST(test_ctl_exit_codes)
{
        char *env_argv[] = { "/bin/sh", "-c", NULL, NULL };
        char *cmd;

        ctl_setup();
        /* Error replies and connection failures: 1. */
        ck_assert_int_eq(run_ctl(NULL, "info", "nope", NULL), 1);
        ck_assert_int_eq(run_ctl(NULL, "load", "initfail", NULL), 1);
        ck_assert_int_eq(run_ctl(NULL, "call", "counted", "Fail", NULL), 1);
        ck_assert_int_eq(run_ctl(NULL, "unload", "nope", NULL), 1);
        ck_assert_int_eq(tu_run((char *[]){ ctl, "--socket", "/nonexistent/sock", "status", NULL },
                                NULL), 1);
        /* Usage errors: 2. */
        ck_assert_int_eq(run_ctl(NULL, "info", NULL), 2);
        ck_assert_int_eq(run_ctl(NULL, "info", "a", "b", NULL), 2);
        ck_assert_int_eq(run_ctl(NULL, "call", "hello", NULL), 2);
        ck_assert_int_eq(run_ctl(NULL, "call", "hello", "Hello", "[1]", NULL), 2);
        ck_assert_int_eq(run_ctl(NULL, "call", "hello", "Hello", "{bad", NULL), 2);
        ck_assert_int_eq(run_ctl(NULL, "list", "--bogus", NULL), 2);
        ck_assert_int_eq(run_ctl(NULL, "list", "--state", NULL), 2);
        ck_assert_int_eq(run_ctl(NULL, "info", "--interface", "x", "hello", NULL), 2);
        ck_assert_int_eq(run_ctl(NULL, "status", "extra", NULL), 2);
        ck_assert_int_eq(run_ctl(NULL, "monitor", "extra", NULL), 2);
        ck_assert_int_eq(run_ctl(NULL, "frobnicate", NULL), 2);
        /* $PLUGHOST_SOCKET stands in for --socket. */
        ck_assert_int_ge(asprintf(&cmd, "PLUGHOST_SOCKET='%s' '%s' status >/dev/null", D.socket, ctl), 0);
        env_argv[2] = cmd;
        ck_assert_int_eq(tu_run(env_argv, NULL), 0);
        free(cmd);
}
END_TEST

/* plughostctl monitor: lines as events happen, exit 0 on SIGINT. */
START_TEST(test_ctl_monitor)
{
        long long deadline = now_ms() + DU_TIMEOUT_MS;
        char buf[8192] = "";
        size_t len = 0;
        int pipefd[2], status;
        pid_t pid;

        ctl_setup();
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(pipefd[1], STDOUT_FILENO);
                execl(ctl, ctl, "--socket", D.socket, "--json", "monitor", (char *)NULL);
                _exit(127);
        }
        close(pipefd[1]);
        /* The subscription may not be live yet: load and unload until it speaks. */
        while (!strstr(buf, "\"loaded\"")) {
                struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
                ssize_t n;

                ck_assert_msg(now_ms() < deadline, "plughostctl monitor printed nothing: %s", buf);
                json_decref(du_request(&D, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}"));
                json_decref(du_request(&D, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"hello\"}}"));
                if (poll(&pfd, 1, 50) > 0) {
                        n = read(pipefd[0], buf + len, sizeof(buf) - 1 - len);
                        ck_assert_int_gt(n, 0);
                        len += (size_t)n;
                        buf[len] = '\0';
                }
        }
        /* One JSON object per line. */
        {
                char *line = strndup(buf, strcspn(buf, "\n"));
                json_t *j = json_loads(line, 0, NULL);

                ck_assert_msg(json_is_object(j), "not JSON: %s", line);
                ck_assert_str_eq(du_str(j, "event.name"), "hello");
                json_decref(j);
                free(line);
        }
        ck_assert_int_eq(kill(pid, SIGINT), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        close(pipefd[0]);
}
END_TEST

/* A client that is not ours: socat, fed by printf. */
static json_t *socat(const char *printf_arg)
{
        char *cmd, *out;
        char *argv[] = { "/bin/sh", "-c", NULL, NULL };
        json_t *j;

        ck_assert_int_ge(asprintf(&cmd, "printf '%s\\0' | socat -t 2 - UNIX-CONNECT:%s | tr '\\0' '\\n'",
                                  printf_arg, D.socket), 0);
        argv[2] = cmd;
        ck_assert_int_eq(tu_run(argv, &out), 0);
        out[strcspn(out, "\n")] = '\0';
        j = json_loads(out, 0, NULL);
        ck_assert_msg(json_is_object(j), "socat got: %s", out);
        free(cmd);
        free(out);
        return j;
}

START_TEST(test_socat)
{
        json_t *r;

        r = socat("{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\",\"method\":\"Hello\","
                  "\"parameters\":{\"name\":\"socat\"}}}");
        ck_assert_str_eq(du_str(ok(r), "result.greeting"), "Hello, socat!");
        json_decref(r);
        r = socat("{\"method\":\"io.plughost.List\"}");
        ck_assert_uint_eq(json_array_size(json_object_get(ok(r), "plugins")), N_PLUGINS);
        json_decref(r);
        r = socat("{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"nope\"}}");
        du_assert_error(&D, r, "io.plughost.NoSuchPlugin");
        r = socat("{\"method\":");
        du_assert_error(&D, r, "org.varlink.service.InvalidParameter");
}
END_TEST

/* ---- tests with a daemon of their own ---- */

/* How much plughostd may grow while a client does not read. */
#ifdef __SANITIZE_ADDRESS__
#define RSS_BOUND_KB (512L * 1024)      /* ASan's quarantine holds freed memory */
#else
#define RSS_BOUND_KB (64L * 1024)
#endif

static void assert_rss_bounded(du_daemon *d, long base)
{
        long rss = du_rss_kb(d->pid);

        ck_assert_msg(rss - base < RSS_BOUND_KB, "plughostd grew from %ld to %ld kB", base, rss);
}

/* A Monitor client that never reads while events flow, and that piles
 * requests up behind its stream: the daemon stops reading it, its memory
 * stays bounded, and the other clients are served all along. */
START_TEST(test_slow_monitor_client)
{
        enum { PAIRS = 100, FLOOD = 5000 };
        static const char req[] = "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                                  "\"parameters\":{\"interface\":\"io.plughost\"}}";
        du_daemon d;
        du_conn *slow, *gen;
        long base;
        json_t *r;
        int sent = 0;

        du_init(&d);
        add_common_plugins(&d);
        du_start(&d);
        slow = monitor(&d);
        base = du_rss_kb(d.pid);

        /* Replies behind a stream wait for it to end: the daemon takes a
         * bounded number of requests, then lets the socket fill up. */
        while (sent < FLOOD && send(slow->fd, req, sizeof(req), MSG_DONTWAIT | MSG_NOSIGNAL) ==
                               (ssize_t)sizeof(req))
                sent++;
        ck_assert_int_lt(sent, FLOOD);

        gen = du_connect(&d);
        for (int i = 0; i < PAIRS; i++) {
                du_send(gen, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}");
                r = du_recv(gen);
                ok(r);
                json_decref(r);
                du_send(gen, "{\"method\":\"io.plughost.Unload\",\"parameters\":{\"name\":\"hello\"}}");
                r = du_recv(gen);
                ok(r);
                json_decref(r);
                if (i % 10 == 0) {
                        du_assert_serving(&d);
                        assert_rss_bounded(&d, base);
                }
        }
        assert_rss_bounded(&d, base);

        /* The stream kept every event, in order. */
        for (int i = 0; i < 2 * PAIRS; i++) {
                r = du_recv(slow);
                ck_assert_ptr_nonnull(r);
                ck_assert_str_eq(du_str(ok(r), "event.kind"), i % 2 ? "unloaded" : "loaded");
                json_decref(r);
        }
        du_close(slow);
        du_close(gen);
        du_assert_serving(&d);
        du_stop(&d);
}
END_TEST

/* A client that sends and sends and never reads its replies is cut off
 * once they pass the daemon's bound; memory stays bounded meanwhile. */
START_TEST(test_client_never_reads)
{
        enum { BATCH = 100, MAX_BATCHES = 2000 };
        static const char req[] = "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                                  "\"parameters\":{\"interface\":\"io.plughost\"}}";
        char *batch = malloc(BATCH * sizeof(req));
        du_daemon d;
        du_conn *c;
        bool gone = false;
        long base;

        ck_assert_ptr_nonnull(batch);
        for (int i = 0; i < BATCH; i++)
                memcpy(batch + i * sizeof(req), req, sizeof(req));
        du_init(&d);
        add_common_plugins(&d);
        du_start(&d);
        base = du_rss_kb(d.pid);
        c = du_connect(&d);
        for (int i = 0; i < MAX_BATCHES && !gone; i++) {
                gone = !du_send_raw(c, batch, BATCH * sizeof(req));
                if (i % 10 == 0) {
                        du_assert_serving(&d);
                        assert_rss_bounded(&d, base);
                }
        }
        ck_assert_msg(gone, "a client that never reads was never disconnected");
        free(batch);
        du_close(c);
        du_assert_serving(&d);
        assert_rss_bounded(&d, base);
        du_stop(&d);
}
END_TEST

/* Many copies of one plugin: a first scan that takes a while. */
#define N_COPIES 200

static void add_copies(du_daemon *d)
{
        char name[32];

        for (int i = 0; i < N_COPIES; i++) {
                snprintf(name, sizeof(name), "copy%d.so", i);
                du_add_plugin(d, tu_example("hello.so"), name);
        }
}

/* The first scan is done before anyone is answered: a Status right after
 * start-up sees every plugin. */
START_TEST(test_start_sees_plugins)
{
        du_daemon d;
        json_t *r;

        du_init(&d);
        add_common_plugins(&d);
        add_copies(&d);
        du_start(&d);
        r = du_request(&d, "{\"method\":\"io.plughost.Status\"}");
        ck_assert_int_eq(du_int(ok(r), "plugins"), N_PLUGINS);
        /* hello.so wins the name; its copies are shadowed. */
        ck_assert_int_eq(du_int(du_params(r), "rejected"), N_COPIES);
        json_decref(r);
        du_stop(&d);
}
END_TEST

/* A directory large enough to be scanned by every CPU at once (files are
 * shared out past 512 per thread): each of 3,000 copies gets its verdict
 * once, the counts and the rejected listing agree, a rescan changes
 * nothing, and the winner's removal hands its name to the next copy. */
#define N_MANY 3000

START_TEST(test_start_many_files)
{
        du_daemon d;
        char name[32], *path;
        json_t *r;

        du_init(&d);
        add_common_plugins(&d);
        for (int i = 0; i < N_MANY; i++) {
                snprintf(name, sizeof(name), "many%04d.so", i);
                du_add_plugin(&d, tu_example("upper.so"), name);
        }
        du_start(&d);
        r = du_request(&d, "{\"method\":\"io.plughost.Status\"}");
        ck_assert_int_eq(du_int(ok(r), "plugins"), N_PLUGINS);
        /* Equal versions in one directory: the lowest path, many0000.so,
         * wins; upper.so and the other copies are shadowed. */
        ck_assert_int_eq(du_int(du_params(r), "rejected"), N_MANY);
        json_decref(r);
        r = du_request(&d, "{\"method\":\"io.plughost.List\"}");
        ck_assert_uint_eq(json_array_size(json_object_get(ok(r), "rejected")), N_MANY);
        ck_assert_str_eq(du_str(json_array_get(json_object_get(du_params(r), "rejected"), 0), "reason"),
                         "shadowed");
        json_decref(r);
        r = du_request(&d, "{\"method\":\"io.plughost.Rescan\"}");
        ck_assert_int_eq(du_int(ok(r), "added") + du_int(du_params(r), "changed") +
                                 du_int(du_params(r), "removed"), 0);
        json_decref(r);
        r = du_request(&d, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"upper\"}}");
        ck_assert_str_eq(du_str(ok(r), "plugin.file") + strlen(d.plugins), "/many0000.so");
        ck_assert_str_eq(du_str(du_params(r), "metadata.name"), "upper");
        json_decref(r);
        path = tu_path(d.plugins, "many0000.so");
        ck_assert_int_eq(unlink(path), 0);
        free(path);
        /* The watcher sees it go (a Rescan after it would find nothing). */
        for (long long deadline = now_ms() + DU_TIMEOUT_MS;; usleep(10000)) {
                long long rejected;

                r = du_request(&d, "{\"method\":\"io.plughost.Status\"}");
                ck_assert_int_eq(du_int(ok(r), "plugins"), N_PLUGINS);
                rejected = du_int(du_params(r), "rejected");
                json_decref(r);
                if (rejected == N_MANY - 1)
                        break;
                ck_assert_msg(now_ms() < deadline, "still %lld rejected", rejected);
        }
        r = du_request(&d, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"upper\"}}");
        ck_assert_str_eq(du_str(ok(r), "plugin.file") + strlen(d.plugins), "/many0001.so");
        json_decref(r);
        du_stop(&d);
}
END_TEST

/* SIGTERM while a scan (here from SIGHUP) runs: the scan ends before the
 * registry goes, and the exit is clean. */
START_TEST(test_stop_during_scan)
{
        du_daemon d;

        du_init(&d);
        add_common_plugins(&d);
        add_copies(&d);
        du_start(&d);
        ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
        du_stop(&d);
}
END_TEST

/* SIGTERM with a call in flight and a Monitor open: a clean exit. */
START_TEST(test_stop_busy)
{
        long long deadline = now_ms() + DU_TIMEOUT_MS;
        du_daemon d;
        du_conn *m, *c;
        json_t *r;

        du_init(&d);
        add_common_plugins(&d);
        du_start(&d);
        m = du_connect(&d);
        du_send(m, "{\"method\":\"io.plughost.Monitor\",\"more\":true}");
        json_decref(du_recv(m));
        c = du_connect(&d);
        du_send(c, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"counted\","
                   "\"method\":\"Sleep\",\"parameters\":{\"ms\":500}}}");
        /* Wait until the daemon has the call in hand. */
        for (;;) {
                r = du_request(&d, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"counted\"}}");
                if (du_int(ok(r), "counters.callsInFlight") == 1) {
                        json_decref(r);
                        break;
                }
                json_decref(r);
                ck_assert_msg(now_ms() < deadline, "the call never started");
        }
        ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
        /* The call in flight is answered; the monitor ends. */
        r = du_recv(c);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(du_str(ok(r), "result.version"), "1.0.0");
        json_decref(r);
        /* Events sent before the stop (the load), then the end. */
        while ((r = du_recv(m))) {
                ck_assert(json_is_true(json_object_get(r, "continues")));
                json_decref(r);
        }
        du_close(m);
        du_close(c);
        du_wait_stop(&d);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon");
        TCase *tc = tcase_create("daemon");
        TCase *own = tcase_create("own-daemon");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_list);
        tcase_add_test(tc, test_info);
        tcase_add_test(tc, test_query);
        tcase_add_test(tc, test_status);
        tcase_add_test(tc, test_call_examples);
        tcase_add_test(tc, test_call_serial);
        tcase_add_test(tc, test_call_loads_on_demand);
        tcase_add_test(tc, test_call_concurrent_first_load);
        tcase_add_test(tc, test_load_unload);
        tcase_add_test(tc, test_load_failed);
        tcase_add_test(tc, test_call_failed);
        tcase_add_test(tc, test_no_such_plugin);
        tcase_add_test(tc, test_rescan);
        tcase_add_test(tc, test_pipelined_in_order);
        tcase_add_test(tc, test_pipelined_half_close);
        tcase_add_test(tc, test_oneway);
        tcase_add_test(tc, test_monitor);
        tcase_add_test(tc, test_get_info);
        tcase_add_test(tc, test_bad_json);
        tcase_add_test(tc, test_bad_non_object);
        tcase_add_test(tc, test_bad_missing_method);
        tcase_add_test(tc, test_bad_types);
        tcase_add_test(tc, test_bad_unknown_method);
        tcase_add_test(tc, test_bad_unknown_parameter);
        tcase_add_test(tc, test_bad_huge_numbers);
        tcase_add_test(tc, test_bad_deep_nesting);
        tcase_add_test(tc, test_bad_oversize);
        tcase_add_test(tc, test_bad_partial_then_disconnect);
        tcase_add_test(tc, test_many_connections);
        tcase_add_test(tc, test_ctl_commands);
        tcase_add_test(tc, test_ctl_exit_codes);
        tcase_add_test(tc, test_ctl_monitor);
        tcase_add_test(tc, test_socat);
        suite_add_tcase(s, tc);

        tcase_set_timeout(own, 300);
        tcase_add_test(own, test_slow_monitor_client);
        tcase_add_test(own, test_client_never_reads);
        tcase_add_test(own, test_start_sees_plugins);
        tcase_add_test(own, test_stop_during_scan);
        tcase_add_test(own, test_start_many_files);
        tcase_add_test(own, test_stop_busy);
        suite_add_tcase(s, own);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
