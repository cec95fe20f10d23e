/* Integration tests of the watcher and hot reload (daemon/watch.c, scan.c,
 * state.c and the reload paths of methods.c and main.c): each test starts
 * the real plughostd in a mkdtemp directory, changes its plugin
 * directories behind its back, and checks what its clients see. Every wait
 * polls against a deadline; the only fixed sleeps space a slow copy. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon-util.h"
#include "daemon-util2.h"
#include "testutil.h"

/* How long a change may take to show. */
#define WAIT_MS 10000
#define CALL_VERSION "{\"method\":\"io.plughost.Call\",\"parameters\":" \
                     "{\"name\":\"counted\",\"method\":\"Version\"}}"

/* The reply's parameters, asserting it is not an error. Borrowed. */
static json_t *ok(json_t *reply)
{
        char *text = json_dumps(reply, JSON_COMPACT);

        ck_assert_msg(du_error(reply) == NULL, "error reply: %.300s", text);
        free(text);
        return du_params(reply);
}

static void load(du_daemon *d, const char *name)
{
        json_t *r = du_requestf(d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"%s\"}}",
                                name);

        ck_assert_str_eq(du_str(ok(r), "plugin.state"), "loaded");
        json_decref(r);
}

/* The version a Call of counted.Version answers on c. */
static char *call_version(du_conn *c)
{
        json_t *r = du2_call(c, "counted", "Version");
        char *v = strdup(du_str(ok(r), "result.version"));

        json_decref(r);
        return v;
}

static void assert_call_answers(du_daemon *d, const char *version)
{
        du_conn *c = du_connect(d);
        char *v = call_version(c);

        ck_assert_str_eq(v, version);
        free(v);
        du_close(c);
}

/* Waits until a Call answers version (a reload is asynchronous). */
static void wait_call_answers(du_daemon *d, const char *version)
{
        long long deadline = du2_now_ms() + WAIT_MS;
        du_conn *c = du_connect(d);

        for (;;) {
                char *v = call_version(c);
                bool done = strcmp(v, version) == 0;

                free(v);
                if (done)
                        break;
                ck_assert_msg(du2_now_ms() < deadline, "calls never answered %s", version);
                du2_nap_ms(2);
        }
        du_close(c);
}

static json_t *wait_event(du_conn *m, const char *kind, const char *name)
{
        json_t *ev = du2_wait_event(m, kind, name, du2_now_ms() + WAIT_MS);

        ck_assert_msg(ev != NULL, "no '%s' event for %s", kind, name ? name : "any plugin");
        return ev;
}

static void expect_event(du_conn *m, const char *kind, const char *name)
{
        json_decref(wait_event(m, kind, name));
}

static char *plugin_path(du_daemon *d, const char *name)
{
        return tu_path(d->plugins, name);
}

/* ---- adding ---- */

/* A file renamed into place: an 'added' event, and List has it. */
START_TEST(test_rename_into_place)
{
        du_daemon d;
        du_conn *m;
        json_t *ev, *list, *p;
        char *path;

        du_init(&d);
        du_start(&d);
        m = du2_monitor(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        ev = wait_event(m, "added", "counted");
        ck_assert_str_eq(du_str(ev, "version"), "1.0.0");
        ck_assert_int_gt(du_int(ev, "generation"), 0);
        json_decref(ev);

        list = du2_list(&d);
        p = du2_find(list, "counted");
        ck_assert_ptr_nonnull(p);
        ck_assert_str_eq(du_str(p, "state"), "discovered");
        path = plugin_path(&d, "counted.so");
        ck_assert_str_eq(du_str(p, "file"), path);
        free(path);
        ck_assert_uint_eq(json_array_size(json_object_get(list, "rejected")), 0);
        json_decref(list);
        assert_call_answers(&d, "1.0.0");
        du_close(m);
        du_stop(&d);
}
END_TEST

/* A hard link made with ln is complete when it appears: no writer will
 * close it, and it must not wait as a file being written. */
START_TEST(test_hard_link_into_place)
{
        du_daemon d;
        du_conn *m;
        json_t *ev;
        char *staged, *path;

        du_init(&d);
        du_start(&d);
        m = du2_monitor(&d);
        /* Staged beside the plugin directory: same file system for link(2). */
        staged = tu_path(d.dir, "staged.so");
        tu_copy_file(tu_fixture("counted-v1.so"), staged);
        path = plugin_path(&d, "counted.so");
        ck_assert_int_eq(link(staged, path), 0);
        ev = wait_event(m, "added", "counted");
        ck_assert_str_eq(du_str(ev, "version"), "1.0.0");
        json_decref(ev);
        assert_call_answers(&d, "1.0.0");
        free(path);
        free(staged);
        du_close(m);
        du_stop(&d);
}
END_TEST

#define SLOW_CHUNKS 4
#define SLOW_PAUSE_MS 100

/* Neither a plugin nor a refused file while it is being written. */
static void assert_not_listed(du_daemon *d, const char *name, const char *base)
{
        json_t *list = du2_list(d);

        ck_assert_msg(du2_find(list, name) == NULL, "%s listed while half written", name);
        ck_assert_msg(!du2_rejected_has(list, base), "%s refused while half written", base);
        json_decref(list);
}

/* A file written in place, slowly: left alone until its writer closes it,
 * even by full scans; then it is there. */
START_TEST(test_slow_copy_in_place)
{
        du_daemon d;
        du_conn *m;
        size_t size, done = 0;
        unsigned char *data = tu_read_file(tu_fixture("counted-v1.so"), &size);
        char *path;
        json_t *ev, *list;
        int fd;

        du_init(&d);
        du_start(&d);
        m = du2_monitor(&d);
        path = plugin_path(&d, "counted.so");
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        for (int i = 0; i < SLOW_CHUNKS; i++) {
                size_t n = i == SLOW_CHUNKS - 1 ? size - done : size / SLOW_CHUNKS;
                long long until;
                json_t *r;

                ck_assert_int_eq(write(fd, data + done, n), (ssize_t)n);
                done += n;
                /* The pause, spent asking. */
                until = du2_now_ms() + SLOW_PAUSE_MS;
                while (du2_now_ms() < until) {
                        assert_not_listed(&d, "counted", "counted.so");
                        du2_nap_ms(10);
                }
                /* A full scan leaves it alone too. */
                r = du_request(&d, "{\"method\":\"io.plughost.Rescan\"}");
                ck_assert_int_eq(du_int(ok(r), "added"), 0);
                json_decref(r);
                assert_not_listed(&d, "counted", "counted.so");
                ev = du2_wait_event(m, NULL, NULL, du2_now_ms());
                ck_assert_msg(ev == NULL, "an event while the file is written");
        }
        ck_assert_int_eq(close(fd), 0);
        ev = wait_event(m, "added", "counted");
        json_decref(ev);
        list = du2_list(&d);
        ck_assert_ptr_nonnull(du2_find(list, "counted"));
        ck_assert(!du2_rejected_has(list, "counted.so"));
        json_decref(list);
        assert_call_answers(&d, "1.0.0");
        free(path);
        free(data);
        du_close(m);
        du_stop(&d);
}
END_TEST

/* ---- replacing ---- */

#define CALLERS 4
#define CALLS_BEFORE 40
#define CALLS_AFTER 40

struct caller {
        du_conn *c;
        long long sent_at;              /* tick when its call went out */
        bool seen_v2;
};

/* v1 replaced by v2 (renamed over the same name) while calls run on other
 * connections: no call fails, and once an answer came from 2.0.0, no
 * call made after it answers 1.0.0. */
START_TEST(test_replace_under_calls)
{
        struct caller k[CALLERS] = { 0 };
        struct pollfd pfd[CALLERS];
        long long tick = 0, first_v2 = -1, deadline;
        unsigned v1 = 0, v2 = 0;
        bool replaced = false;
        du_daemon d;
        char *path;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_start(&d);
        load(&d, "counted");
        path = plugin_path(&d, "counted.so");
        for (int i = 0; i < CALLERS; i++) {
                k[i].c = du_connect(&d);
                pfd[i] = (struct pollfd){ .fd = k[i].c->fd, .events = POLLIN };
                du_send(k[i].c, CALL_VERSION);
                k[i].sent_at = ++tick;
        }
        deadline = du2_now_ms() + 2 * WAIT_MS;
        for (;;) {
                bool all_v2 = true;
                int n;

                for (int i = 0; i < CALLERS; i++)
                        all_v2 &= k[i].seen_v2;
                if (all_v2 && v2 >= CALLS_AFTER)
                        break;
                ck_assert_msg(du2_now_ms() < deadline, "calls never all switched (%u v1, %u v2)", v1, v2);
                if (!replaced && v1 >= CALLS_BEFORE) {
                        du2_copy_over(tu_fixture("counted-v2.so"), path);
                        replaced = true;
                }
                n = poll(pfd, CALLERS, 1000);
                ck_assert_int_ge(n, 0);
                for (int i = 0; i < CALLERS; i++) {
                        json_t *r;
                        const char *v;

                        if (!(pfd[i].revents & (POLLIN | POLLHUP)))
                                continue;
                        r = du_recv(k[i].c);
                        ck_assert_ptr_nonnull(r);
                        v = du_str(ok(r), "result.version");
                        tick++;
                        if (strcmp(v, "2.0.0") == 0) {
                                ck_assert(replaced);
                                k[i].seen_v2 = true;
                                if (first_v2 < 0)
                                        first_v2 = tick;
                                v2++;
                        } else {
                                ck_assert_str_eq(v, "1.0.0");
                                ck_assert_msg(!k[i].seen_v2, "caller %d went back to 1.0.0", i);
                                ck_assert_msg(first_v2 < 0 || k[i].sent_at < first_v2,
                                              "a call made after a 2.0.0 answer got 1.0.0");
                                v1++;
                        }
                        json_decref(r);
                        du_send(k[i].c, CALL_VERSION);
                        k[i].sent_at = ++tick;
                }
        }
        for (int i = 0; i < CALLERS; i++) {
                json_decref(du_recv(k[i].c));
                du_close(k[i].c);
        }
        ck_assert_int_eq(du2_status_int(&d, "counters.callsFailed"), 0);
        free(path);
        du_stop(&d);
}
END_TEST

/* A counted 2.0.0 the reader accepts but the loader cannot load: its
 * library dependency is renamed to one that does not exist. */
static void write_unloadable_v2(const char *dst)
{
        static const char want[] = "libphcount.so", instead[] = "libphcounX.so";
        size_t size, hits = 0;
        unsigned char *data = tu_read_file(tu_fixture("counted-v2.so"), &size);

        for (size_t i = 0; i + sizeof(want) <= size; i++)
                if (memcmp(data + i, want, sizeof(want)) == 0) {
                        memcpy(data + i, instead, sizeof(instead));
                        hits++;
                }
        ck_assert_uint_eq(hits, 1);
        tu_write_file(dst, data, size);
        free(data);
}

/* A broken v2 under the same name: v1 keeps serving, Info says why, and
 * Monitor clients get a 'failed' event; a good v2 then takes over. */
START_TEST(test_replace_broken)
{
        du_daemon d;
        du_conn *m;
        json_t *info, *ev;
        char *path, *tmp;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_start(&d);
        load(&d, "counted");
        m = du2_monitor(&d);
        path = plugin_path(&d, "counted.so");
        tmp = plugin_path(&d, ".counted.so.next");
        write_unloadable_v2(tmp);
        ck_assert_int_eq(rename(tmp, path), 0);
        expect_event(m, "changed", "counted");
        ev = wait_event(m, "failed", "counted");
        ck_assert_ptr_nonnull(strstr(du_str(ev, "message"), "libphcounX.so"));
        json_decref(ev);

        for (int i = 0; i < 20; i++)
                assert_call_answers(&d, "1.0.0");
        info = du2_info(&d, "counted");
        ck_assert_ptr_nonnull(info);
        ck_assert_str_eq(du_str(info, "plugin.state"), "loaded");
        ck_assert_ptr_nonnull(strstr(du_str(info, "plugin.lastError"), "libphcounX.so"));
        json_decref(info);
        ck_assert_int_eq(du2_status_int(&d, "counters.callsFailed"), 0);

        /* A good version after the broken one. */
        du2_copy_over(tu_fixture("counted-v2.so"), path);
        expect_event(m, "loaded", "counted");
        wait_call_answers(&d, "2.0.0");
        info = du2_info(&d, "counted");
        ck_assert(json_is_null(json_object_get(json_object_get(info, "plugin"), "lastError")));
        json_decref(info);
        free(tmp);
        free(path);
        du_close(m);
        du_stop(&d);
}
END_TEST

/* A truncated copy of v2 (refused by the reader) renamed over a loaded
 * v1: v1 keeps serving, Info says why, and a 'failed' event goes out. */
START_TEST(test_replace_truncated)
{
        du_daemon d;
        du_conn *m;
        json_t *info;
        size_t size;
        unsigned char *data;
        char *path, *tmp;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_start(&d);
        load(&d, "counted");
        m = du2_monitor(&d);
        path = plugin_path(&d, "counted.so");
        tmp = plugin_path(&d, ".counted.so.next");
        data = tu_read_file(tu_fixture("counted-v2.so"), &size);
        tu_write_file(tmp, data, size / 2);
        free(data);
        ck_assert_int_eq(rename(tmp, path), 0);
        expect_event(m, "failed", "counted");

        for (int i = 0; i < 20; i++)
                assert_call_answers(&d, "1.0.0");
        info = du2_info(&d, "counted");
        ck_assert_ptr_nonnull(info);
        ck_assert_str_eq(du_str(info, "plugin.state"), "loaded");
        ck_assert_str_eq(du_str(info, "plugin.version"), "1.0.0");
        ck_assert_ptr_nonnull(strstr(du_str(info, "plugin.lastError"), "truncated"));
        json_decref(info);
        ck_assert_int_eq(du2_status_int(&d, "counters.callsFailed"), 0);

        du2_copy_over(tu_fixture("counted-v2.so"), path);
        expect_event(m, "loaded", "counted");
        wait_call_answers(&d, "2.0.0");
        free(tmp);
        free(path);
        du_close(m);
        du_stop(&d);
}
END_TEST

/* ---- removing ---- */

START_TEST(test_delete)
{
        du_daemon d;
        du_conn *m;
        json_t *r;
        char *path;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        du_start(&d);
        load(&d, "counted");
        m = du2_monitor(&d);
        path = plugin_path(&d, "counted.so");
        ck_assert_int_eq(unlink(path), 0);
        expect_event(m, "removed", "counted");
        r = du_request(&d, CALL_VERSION);
        du_assert_error(&d, r, "io.plughost.NoSuchPlugin");
        ck_assert_ptr_null(du2_info(&d, "counted"));
        ck_assert_int_eq(du2_status_int(&d, "plugins"), 1);
        free(path);
        du_close(m);
        du_stop(&d);
}
END_TEST

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

static void rm_rf(const char *dir)
{
        ck_assert_int_eq(nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* The registry lists exactly the plugins whose files are on disk. */
static bool registry_is(du_daemon *d, const char *const *names, size_t n)
{
        json_t *list = du2_list(d);
        json_t *plugins = json_object_get(list, "plugins");
        bool same = json_array_size(plugins) == n &&
                    json_array_size(json_object_get(list, "rejected")) == 0;

        for (size_t i = 0; same && i < n; i++) {
                json_t *p = du2_find(list, names[i]);
                struct stat st;

                same = p && stat(du_str(p, "file"), &st) == 0;
        }
        json_decref(list);
        return same;
}

static void wait_registry_is(du_daemon *d, const char *const *names, size_t n)
{
        long long deadline = du2_now_ms() + WAIT_MS;

        while (!registry_is(d, names, n)) {
                ck_assert_msg(du2_now_ms() < deadline, "the registry does not match the disk");
                du2_nap_ms(5);
        }
}

/* rm -rf of the plugin directory, then mkdir and copies back: the
 * registry follows, and the directory is watched again. */
START_TEST(test_dir_removed_recreated)
{
        static const char *const three[] = { "counted", "hello", "upper" };
        static const char *const two[] = { "counted", "hello" };
        du_daemon d;
        du_conn *m;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        du_add_plugin(&d, tu_example("upper.so"), "upper.so");
        du_start(&d);
        load(&d, "counted");
        ck_assert(registry_is(&d, three, 3));
        rm_rf(d.plugins);
        wait_registry_is(&d, NULL, 0);
        du_assert_serving(&d);

        ck_assert_int_eq(mkdir(d.plugins, 0755), 0);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        wait_registry_is(&d, two, 2);

        /* Watched again: a new file shows at once. */
        m = du2_monitor(&d);
        du_add_plugin(&d, tu_example("upper.so"), "upper.so");
        expect_event(m, "added", "upper");
        wait_registry_is(&d, three, 3);
        du_close(m);
        du_stop(&d);
}
END_TEST

/* A plugin directory that does not exist at start, created later. */
START_TEST(test_dir_created_later)
{
        static const char *const one[] = { "hello" };
        static const char *const two[] = { "hello", "upper" };
        du_daemon d;
        du_conn *m;

        du_init(&d);
        ck_assert_int_eq(rmdir(d.plugins), 0);
        du_start(&d);
        ck_assert_int_eq(du2_status_int(&d, "plugins"), 0);
        ck_assert_int_eq(mkdir(d.plugins, 0755), 0);
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        wait_registry_is(&d, one, 1);
        m = du2_monitor(&d);
        du_add_plugin(&d, tu_example("upper.so"), "upper.so");
        expect_event(m, "added", "upper");
        wait_registry_is(&d, two, 2);
        du_close(m);
        du_stop(&d);
}
END_TEST

/* ---- many at once ---- */

/* n copies of counted-v1 with distinct names (c0000000, ...), made in a
 * staging directory next to the plugin directory, then renamed in one
 * after the other as fast as possible. With stopped set, the daemon is
 * stopped (SIGSTOP) meanwhile, so every event waits in one queue. */
static void drop_copies(du_daemon *d, unsigned n, bool stopped)
{
        char *stage = tu_path(d->dir, "stage");
        char name[32], file[48];

        ck_assert_int_eq(mkdir(stage, 0755), 0);
        for (unsigned i = 0; i < n; i++) {
                char *path;

                snprintf(name, sizeof(name), "c%06u", i);
                snprintf(file, sizeof(file), "%s.so", name);
                path = tu_path(stage, file);
                du2_copy_renamed(tu_fixture("counted-v1.so"), "counted", name, path);
                free(path);
        }
        if (stopped)
                ck_assert_int_eq(kill(d->pid, SIGSTOP), 0);
        for (unsigned i = 0; i < n; i++) {
                char *from, *to;

                snprintf(file, sizeof(file), "c%06u.so", i);
                from = tu_path(stage, file);
                to = tu_path(d->plugins, file);
                ck_assert_int_eq(rename(from, to), 0);
                free(from);
                free(to);
        }
        if (stopped)
                ck_assert_int_eq(kill(d->pid, SIGCONT), 0);
        free(stage);
}

static void wait_plugins(du_daemon *d, long long n)
{
        long long deadline = du2_now_ms() + 3 * WAIT_MS, have;

        while ((have = du2_status_int(d, "plugins")) != n) {
                ck_assert_msg(du2_now_ms() < deadline, "%lld plugins of %lld", have, n);
                du2_nap_ms(10);
        }
        ck_assert_int_eq(du2_status_int(d, "rejected"), 0);
}

START_TEST(test_thousand_at_once)
{
        du_daemon d;

        du_init(&d);
        du_start(&d);
        drop_copies(&d, 1000, false);
        wait_plugins(&d, 1000);
        du_assert_serving(&d);
        du_stop(&d);
}
END_TEST

/* More files in one inotify read than the watcher keeps names for. */
START_TEST(test_many_in_one_read)
{
        du_daemon d;

        du_init(&d);
        du_start(&d);
        drop_copies(&d, 5000, true);
        wait_plugins(&d, 5000);
        du_stop(&d);
}
END_TEST

/* ---- restarts ---- */

/* What List says, without what changes across a restart (generations). */
static json_t *registry_snapshot(du_daemon *d)
{
        json_t *list = du2_list(d), *p;
        size_t i;

        json_array_foreach(json_object_get(list, "plugins"), i, p)
                json_object_del(p, "generation");
        return list;
}

static void wait_loaded(du_daemon *d, long long n)
{
        long long deadline = du2_now_ms() + WAIT_MS, have;

        while ((have = du2_status_int(d, "loaded")) != n) {
                ck_assert_msg(du2_now_ms() < deadline, "%lld plugins loaded, not %lld", have, n);
                du2_nap_ms(5);
        }
}

/* kill -9, then a restart on the same state directory: the same registry
 * and the same plugins loaded. */
START_TEST(test_kill9_restart)
{
        du_daemon d;
        json_t *before, *after;
        char *a, *b;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        du_add_plugin(&d, tu_example("upper.so"), "upper.so");
        du_add_plugin(&d, tu_example("counter.so"), "counter.so");
        du_start(&d);
        load(&d, "counted");
        load(&d, "hello");
        before = registry_snapshot(&d);

        du2_kill9(&d);
        du_start(&d);
        wait_loaded(&d, 2);
        after = registry_snapshot(&d);
        a = json_dumps(before, JSON_COMPACT | JSON_SORT_KEYS);
        b = json_dumps(after, JSON_COMPACT | JSON_SORT_KEYS);
        ck_assert_str_eq(b, a);
        ck_assert_ptr_nonnull(strstr(a, "\"state\":\"loaded\""));
        assert_call_answers(&d, "1.0.0");
        free(a);
        free(b);
        json_decref(before);
        json_decref(after);
        du_stop(&d);
}
END_TEST

/* Load initkills: the daemon dies of it (SIGKILL from the plugin's init). */
static void load_kills(du_daemon *d)
{
        du_conn *c = du_connect(d);
        int status;

        du_send(c, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"initkills\"}}");
        ck_assert_ptr_null(du_recv(c));
        du_close(c);
        status = du2_wait_exit(d, WAIT_MS);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "plughostd ended with status 0x%x", status);
}

static void assert_quarantined(du_daemon *d)
{
        json_t *info;

        ck_assert_msg(du2_wait_state(d, "initkills", "quarantined", WAIT_MS),
                      "initkills is not quarantined");
        info = du2_info(d, "initkills");
        ck_assert_ptr_nonnull(strstr(du_str(info, "plugin.lastError"), "quarantined"));
        json_decref(info);
        du_assert_error(d, du_request(d, "{\"method\":\"io.plughost.Load\",\"parameters\":"
                                         "{\"name\":\"initkills\"}}"),
                        "io.plughost.LoadFailed");
        /* Calls are refused the same way. */
        du_assert_error(d, du_request(d, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                         "{\"name\":\"initkills\",\"method\":\"Version\"}}"),
                        "io.plughost.LoadFailed");
}

/* A plugin whose init kills the daemon: after the restart it is
 * quarantined, the others are restored; a new file gets a new chance. */
START_TEST(test_quarantine)
{
        du_daemon d;
        du_conn *m;
        json_t *info, *r;
        char *path;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("counted-v1.so"), "counted.so");
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        du_start(&d);
        load(&d, "counted");
        m = du2_monitor(&d);
        du_add_plugin(&d, tu_fixture("init-kills.so"), "init-kills.so");
        expect_event(m, "added", "initkills");
        du_close(m);
        load_kills(&d);

        du_start(&d);
        assert_quarantined(&d);
        ck_assert(du2_wait_state(&d, "counted", "loaded", WAIT_MS));
        ck_assert(du2_wait_state(&d, "hello", "discovered", 0));
        assert_call_answers(&d, "1.0.0");

        /* No longer wanted, then a new version of the file: a new chance. */
        r = du_request(&d, "{\"method\":\"io.plughost.Unload\",\"parameters\":"
                           "{\"name\":\"initkills\"}}");
        ok(r);
        json_decref(r);
        m = du2_monitor(&d);
        path = plugin_path(&d, "init-kills.so");
        ck_assert_int_eq(utimensat(AT_FDCWD, path, NULL, 0), 0);
        expect_event(m, "changed", "initkills");
        ck_assert(du2_wait_state(&d, "initkills", "discovered", WAIT_MS));
        info = du2_info(&d, "initkills");
        ck_assert(json_is_null(json_object_get(json_object_get(info, "plugin"), "lastError")));
        json_decref(info);
        du_close(m);
        /* It gets it: its init runs again, and kills again. */
        load_kills(&d);
        du_start(&d);
        assert_quarantined(&d);
        ck_assert(du2_wait_state(&d, "counted", "loaded", WAIT_MS));
        free(path);
        du_stop(&d);
}
END_TEST

/* ---- SIGHUP ---- */

static void write_dirs_config(du_daemon *d, const char *const *dirs, size_t n)
{
        char text[8192];
        size_t len = (size_t)snprintf(text, sizeof(text), "[Daemon]\n");

        for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(text + len, sizeof(text) - len, "PluginDirectory=%s\n", dirs[i]);
        ck_assert_uint_lt(len, sizeof(text));
        du_write_config(d, text);
}

/* A plugin directory added to the configuration file, then SIGHUP: its
 * plugins appear, and a Monitor client stays connected throughout. A
 * configuration error on the next SIGHUP keeps the running one. */
START_TEST(test_sighup_new_dir)
{
        du_daemon d;
        du_conn *m;
        char *second, *path;
        const char *dirs[2];
        json_t *r, *list;

        du_init(&d);
        second = tu_path(d.dir, "plugins2");
        ck_assert_int_eq(mkdir(second, 0755), 0);
        dirs[0] = d.plugins;
        dirs[1] = second;
        write_dirs_config(&d, dirs, 1);
        du_add_plugin(&d, tu_example("hello.so"), "hello.so");
        path = tu_path(second, "upper.so");
        du2_copy_over(tu_example("upper.so"), path);
        free(path);
        du2_start_from_config(&d);
        ck_assert_int_eq(du2_status_int(&d, "plugins"), 1);
        m = du2_monitor(&d);

        write_dirs_config(&d, dirs, 2);
        ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
        expect_event(m, "added", "upper");
        ck_assert(du2_wait_state(&d, "hello", "discovered", 0));
        r = du_request(&d, "{\"method\":\"io.plughost.Status\"}");
        ck_assert_uint_eq(json_array_size(json_object_get(ok(r), "pluginDirectories")), 2);
        ck_assert_int_eq(du_int(du_params(r), "plugins"), 2);
        json_decref(r);
        /* The new directory is watched. */
        path = tu_path(second, "counter.so");
        du2_copy_over(tu_example("counter.so"), path);
        free(path);
        expect_event(m, "added", "counter");

        /* A wrong file: the running configuration stays. */
        du_write_config(&d, "[Daemon]\nPluginDirectory=relative/path\n");
        ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
        ck_assert(du2_log_wait(&d, "keeping the running configuration", WAIT_MS));
        du_assert_serving(&d);
        list = du2_list(&d);
        ck_assert_uint_eq(json_array_size(json_object_get(list, "plugins")), 3);
        json_decref(list);
        path = tu_path(second, "counted.so");
        du2_copy_over(tu_fixture("counted-v1.so"), path);
        free(path);
        expect_event(m, "added", "counted");
        du_close(m);
        free(second);
        du_stop(&d);
}
END_TEST

#define RESCANS 5

/* Rescans queued behind one another when a SIGHUP comes: every one is
 * still answered. */
START_TEST(test_rescan_across_sighup)
{
        du_daemon d;
        du_conn *a, *b;
        json_t *r;

        du_init(&d);
        du_start(&d);
        drop_copies(&d, 1000, false);
        wait_plugins(&d, 1000);
        a = du_connect(&d);
        for (int i = 0; i < RESCANS; i++)
                du_send(a, "{\"method\":\"io.plughost.Rescan\"}");
        /* Once b is answered, the daemon has read a's requests too. */
        b = du_connect(&d);
        du_send(b, "{\"method\":\"io.plughost.Status\"}");
        json_decref(du_recv(b));
        ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
        for (int i = 0; i < RESCANS; i++) {
                r = du_recv(a);
                ck_assert_ptr_nonnull(r);
                ok(r);
                json_decref(r);
        }
        ck_assert(du2_log_wait(&d, "reloaded", WAIT_MS));
        du_close(a);
        du_close(b);
        du_stop(&d);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("watch");
        TCase *tc = tcase_create("watch");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_rename_into_place);
        tcase_add_test(tc, test_hard_link_into_place);
        tcase_add_test(tc, test_slow_copy_in_place);
        tcase_add_test(tc, test_replace_under_calls);
        tcase_add_test(tc, test_replace_broken);
        tcase_add_test(tc, test_replace_truncated);
        tcase_add_test(tc, test_delete);
        tcase_add_test(tc, test_dir_removed_recreated);
        tcase_add_test(tc, test_dir_created_later);
        tcase_add_test(tc, test_thousand_at_once);
        tcase_add_test(tc, test_many_in_one_read);
        tcase_add_test(tc, test_kill9_restart);
        tcase_add_test(tc, test_quarantine);
        tcase_add_test(tc, test_sighup_new_dir);
        tcase_add_test(tc, test_rescan_across_sighup);
        suite_add_tcase(s, tc);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
