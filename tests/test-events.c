/* Events and their log lines (daemon/events.c, the registry's reports)
 * against the real plughostd: every refused file and every plugin that
 * leaves says so, once per file version, with the file, the reason and
 * the fix, as a Monitor event and as one log line (with journal fields
 * when stderr is the journal); and what a refused result is called. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon-util.h"
#include "daemon-util2.h"
#include "testutil.h"

#define WAIT_MS 10000

static du_daemon d;

static void teardown(void)
{
        du_stop(&d);
}

static void start(const char *config)
{
        du_init(&d);
        if (config)
                du_write_config(&d, config);
        du_start(&d);
}

/* The next event of kind about file base (in the plugin directory), or
 * NULL by the deadline. */
static json_t *wait_file_event(du_conn *m, const char *kind, const char *base, long long deadline)
{
        char *path = tu_path(d.plugins, base);
        json_t *ev;

        while ((ev = du2_wait_event(m, kind, NULL, deadline))) {
                const char *file = json_string_value(json_object_get(ev, "file"));

                if (file && strcmp(file, path) == 0)
                        break;
                json_decref(ev);
        }
        free(path);
        return ev;
}

static const char *ev_str(json_t *ev, const char *key)
{
        const char *s = json_string_value(json_object_get(ev, key));

        return s ? s : "";
}

/* How many times text is in the daemon's log. */
static int log_count(const char *text)
{
        size_t size;
        char *log = (char *)tu_read_file(d.log, &size), *p = log;
        int n = 0;

        log[size] = '\0';
        while ((p = strstr(p, text))) {
                n++;
                p += strlen(text);
        }
        free(log);
        return n;
}

static void rescan(void)
{
        json_t *r = du_request(&d, "{\"method\":\"io.plughost.Rescan\"}");

        ck_assert_msg(du_error(r) == NULL, "Rescan: %s", du_error(r));
        json_decref(r);
}

/* No event of kind about base within ms. */
static void assert_no_file_event(du_conn *m, const char *kind, const char *base, int ms)
{
        json_t *ev = wait_file_event(m, kind, base, du2_now_ms() + ms);
        char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;

        ck_assert_msg(ev == NULL, "unexpected event: %s", text);
}

/* A file with bad metadata: one "rejected" event and one log line, with
 * the file, the reason and the fix; a rescan of the same file tells
 * nothing new; a new version of it is told again. */
START_TEST(test_rejected_once_per_version)
{
        char *path, *line;
        du_conn *m;
        json_t *ev;

        start(NULL);
        m = du2_monitor(&d);
        du_add_plugin(&d, tu_fixture("bad-name.so"), "bad.so");
        ev = wait_file_event(m, "rejected", "bad.so", du2_now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no rejected event for bad.so");
        ck_assert_str_eq(ev_str(ev, "reason"), "bad-metadata");
        ck_assert_msg(ev_str(ev, "message")[0] != '\0', "no message");
        ck_assert_msg(strstr(ev_str(ev, "fix"), "plughostctl inspect"), "fix: %s", ev_str(ev, "fix"));
        json_decref(ev);
        path = tu_path(d.plugins, "bad.so");
        ck_assert_int_ge(asprintf(&line, "%s refused: bad-metadata: ", path), 0);
        ck_assert_msg(du2_log_wait(&d, line, WAIT_MS), "no log line '%s'", line);
        ck_assert_msg(du2_log_wait(&d, "fix: fix the metadata", WAIT_MS), "the log line has no fix");

        rescan();
        rescan();
        assert_no_file_event(m, "rejected", "bad.so", 500);
        ck_assert_int_eq(log_count(line), 1);

        du_add_plugin(&d, tu_fixture("no-note.so"), "bad.so");  /* a new version */
        ev = wait_file_event(m, "rejected", "bad.so", du2_now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no rejected event for the new bad.so");
        ck_assert_str_eq(ev_str(ev, "reason"), "no-metadata");
        json_decref(ev);
        du_close(m);
        free(line);
        free(path);
}
END_TEST

/* chmod o+w on a plugin: "removed" says it is untrusted now (not only
 * that it went), then the file's "rejected" gives the fix. */
START_TEST(test_removed_untrusted_says_why)
{
        char *path;
        du_conn *m;
        json_t *ev;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        m = du2_monitor(&d);
        path = tu_path(d.plugins, "behave.so");
        ck_assert_int_eq(chmod(path, 0646), 0);
        ev = du2_wait_event(m, "removed", "behave", du2_now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no removed event");
        ck_assert_str_eq(ev_str(ev, "reason"), "untrusted");
        ck_assert_str_eq(ev_str(ev, "file"), path);
        ck_assert_msg(strstr(ev_str(ev, "message"), "writable"), "message: %s", ev_str(ev, "message"));
        json_decref(ev);
        ev = wait_file_event(m, "rejected", "behave.so", du2_now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no rejected event");
        ck_assert_str_eq(ev_str(ev, "reason"), "untrusted");
        ck_assert_msg(strstr(ev_str(ev, "fix"), "chmod"), "fix: %s", ev_str(ev, "fix"));
        json_decref(ev);
        ck_assert_msg(du2_log_wait(&d, "plugin behave removed: ", WAIT_MS), "no removed line");
        ck_assert_msg(du2_log_wait(&d, ": untrusted: ", WAIT_MS), "the removed line has no reason");
        du_close(m);
        free(path);
}
END_TEST

/* The plugin directory itself becomes untrusted: each file's refusal
 * names the directory once, and the fix is about directories too. */
START_TEST(test_untrusted_directory_says_so_once)
{
        char *want;
        du_conn *m;
        json_t *ev;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        m = du2_monitor(&d);
        ck_assert_int_eq(chmod(d.plugins, 0757), 0);
        ev = wait_file_event(m, "rejected", "behave.so", du2_now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no rejected event");
        ck_assert_int_ge(asprintf(&want, "directory %s is writable by group or others", d.plugins), 0);
        ck_assert_str_eq(ev_str(ev, "message"), want);
        ck_assert_msg(strstr(ev_str(ev, "fix"), "chmod go-w PATH"), "fix: %s", ev_str(ev, "fix"));
        json_decref(ev);
        ck_assert_int_eq(chmod(d.plugins, 0755), 0);
        du_close(m);
        free(want);
}
END_TEST

START_TEST(test_removed_deleted)
{
        char *path;
        du_conn *m;
        json_t *ev;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        m = du2_monitor(&d);
        path = tu_path(d.plugins, "behave.so");
        ck_assert_int_eq(unlink(path), 0);
        ev = du2_wait_event(m, "removed", "behave", du2_now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no removed event");
        ck_assert_str_eq(ev_str(ev, "reason"), "deleted");
        ck_assert_str_eq(ev_str(ev, "file"), path);
        json_decref(ev);
        du_close(m);
        free(path);
}
END_TEST

/* Two versions of one plugin: the older is shadowed, told once. */
START_TEST(test_shadowed_told_once)
{
        du_conn *m;
        json_t *ev;

        start(NULL);
        m = du2_monitor(&d);
        du_add_plugin(&d, tu_fixture("behave-v2.so"), "b.so");
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "a.so");
        ev = wait_file_event(m, "rejected", "a.so", du2_now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no rejected event for the shadowed a.so");
        ck_assert_str_eq(ev_str(ev, "reason"), "shadowed");
        ck_assert_str_eq(ev_str(ev, "name"), "behave");
        ck_assert_str_eq(ev_str(ev, "version"), "1.0.0");
        ck_assert_msg(strstr(ev_str(ev, "message"), "b.so"), "message: %s", ev_str(ev, "message"));
        json_decref(ev);
        rescan();
        assert_no_file_event(m, "rejected", "a.so", 500);
        ck_assert_int_eq(log_count("a.so refused: shadowed"), 1);
        du_close(m);
}
END_TEST

/* A loaded plugin's file overwritten by a truncated copy: it serves on,
 * and "failed" names the file, the reason and the fix. */
START_TEST(test_held_refusal_has_fix)
{
        char *path, *tmp;
        du_conn *m;
        json_t *ev, *r;
        int fd;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        r = du_request(&d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"behave\"}}");
        ck_assert_msg(du_error(r) == NULL, "Load: %s", du_error(r));
        json_decref(r);
        m = du2_monitor(&d);
        path = tu_path(d.plugins, "behave.so");
        ck_assert_int_ge(asprintf(&tmp, "%s/.behave.tmp", d.plugins), 0);
        tu_copy_file(tu_fixture("behave-v2.so"), tmp);
        fd = open(tmp, O_WRONLY);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 2000), 0);
        close(fd);
        ck_assert_int_eq(rename(tmp, path), 0);
        ev = du2_wait_event(m, "failed", "behave", du2_now_ms() + WAIT_MS);
        ck_assert_msg(ev != NULL, "no failed event");
        ck_assert_str_eq(ev_str(ev, "file"), path);
        ck_assert_str_eq(ev_str(ev, "reason"), "truncated");
        ck_assert_msg(strstr(ev_str(ev, "fix"), "rename"), "fix: %s", ev_str(ev, "fix"));
        ck_assert_msg(strstr(ev_str(ev, "message"), "serves on"), "message: %s", ev_str(ev, "message"));
        json_decref(ev);
        du_close(m);
        free(tmp);
        free(path);
}
END_TEST

/* A failed init is one line naming the plugin once. */
START_TEST(test_failed_line_names_plugin_once)
{
        json_t *r;

        du_init(&d);
        du_write_config(&d, "[Plugin behave]\nConfig={\"initFail\": true}\n");
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        r = du_request(&d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"behave\"}}");
        du_assert_error(&d, r, "io.plughost.LoadFailed");     /* takes r */
        ck_assert_msg(du2_log_wait(&d, "plugin behave: ", WAIT_MS), "no failed line");
        ck_assert_int_eq(log_count("behave: behave:"), 0);
        ck_assert_int_eq(log_count("behave: behave "), 0);
}
END_TEST

/* Text from outside (a plugin's message, a file name) that is not UTF-8
 * or drives a terminal: the plugin and the file stay visible in List,
 * Info and events ('?' for the bad bytes), and the log has no raw escape
 * or invalid byte (\xNN instead). */
static void assert_log_clean(void)
{
        size_t size;
        unsigned char *log = tu_read_file(d.log, &size);

        for (size_t i = 0; i < size; i++)
                ck_assert_msg((log[i] >= 0x20 && log[i] != 0x7f && log[i] < 0x80) || log[i] == '\n',
                              "byte 0x%02x at %zu of the log", log[i], i);
        free(log);
}

START_TEST(test_rude_text_stays_visible)
{
        char bad_name[64];
        json_t *r, *list, *item;
        du_conn *m;
        size_t i;
        bool listed = false;

        du_init(&d);
        du_write_config(&d, "[Plugin behave]\nConfig={\"initFail\": true, \"initFailRude\": true}\n");
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        m = du2_monitor(&d);
        r = du_request(&d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"behave\"}}");
        du_assert_error(&d, r, "io.plughost.LoadFailed");     /* takes r */
        r = du2_info(&d, "behave");
        ck_assert_msg(r != NULL, "Info lost the plugin");
        ck_assert_str_eq(du_str(r, "plugin.state"), "failed");
        ck_assert_msg(strstr(du_str(r, "plugin.lastError"), "rude ?? "), "lastError: %s",
                      du_str(r, "plugin.lastError"));
        json_decref(r);
        list = du2_list(&d);
        ck_assert_msg(du2_find(list, "behave") != NULL, "List lost the plugin");
        json_decref(list);

        snprintf(bad_name, sizeof(bad_name), "inv\xff\xfe\033]0;T\007.so");
        du_add_plugin(&d, tu_fixture("bad-name.so"), bad_name);
        r = du2_wait_event(m, "rejected", NULL, du2_now_ms() + WAIT_MS);
        ck_assert_msg(r != NULL, "no rejected event");
        ck_assert_msg(strstr(ev_str(r, "file"), "/inv??"), "file: '%s'", ev_str(r, "file"));
        json_decref(r);
        list = du2_list(&d);
        json_array_foreach(json_object_get(list, "rejected"), i, item)
                listed |= strstr(json_string_value(json_object_get(item, "file")), "/inv??") != NULL;
        ck_assert_msg(listed, "List lost the refused file");
        json_decref(list);
        ck_assert_msg(du2_log_wait(&d, "inv\\xff\\xfe\\x1b]0;T\\x07.so refused", WAIT_MS),
                      "no escaped log line for the file");
        /* A file named with a backslash and "x01" must not log like one
         * holding the byte 0x01: the backslash is escaped too. */
        du_add_plugin(&d, tu_fixture("bad-name.so"), "bs\\x01.so");
        ck_assert_msg(du2_log_wait(&d, "bs\\x5cx01.so refused", WAIT_MS),
                      "no escaped log line for the backslash");
        ck_assert_msg(du2_log_wait(&d, "rude \\xff\\xfe \\x1b]0;TITLE\\x07\\x1b[2J\\xc2\\x9b end", WAIT_MS),
                      "no escaped log line for the message");
        assert_log_clean();
        du_close(m);
}
END_TEST

/* 200 refused files at once: every one is an event, but the log gets at
 * most 20 lines for their owner (whoever may write a plugin directory
 * must not be able to fill the journal). */
START_TEST(test_rejected_lines_bounded)
{
        int events = 0;
        du_conn *m;
        json_t *ev;

        start(NULL);
        m = du2_monitor(&d);
        for (int i = 0; i < 200; i++) {
                char name[32];

                snprintf(name, sizeof(name), "bad%03d.so", i);
                du_add_plugin(&d, tu_fixture("bad-name.so"), name);
        }
        while (events < 200 && (ev = du2_wait_event(m, "rejected", NULL, du2_now_ms() + WAIT_MS))) {
                events++;
                json_decref(ev);
        }
        ck_assert_int_eq(events, 200);
        ck_assert_int_le(log_count(" refused: bad-metadata"), 20);
        ck_assert_int_ge(log_count(" refused: bad-metadata"), 1);
        du_assert_serving(&d);
        du_close(m);
}
END_TEST

/* ---- journal fields ----
 * sd_journal_send writes to /run/systemd/journal/socket, a fixed path: the
 * daemon runs in a mount namespace where that path is our socket. */

static char journal_path[4096];

static void journal_child(const du_daemon *dd)
{
        char env[64];
        struct stat st;
        int fd;

        (void)dd;
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0 ||
            mkdir("/run/systemd", 0755) < 0 || mkdir("/run/systemd/journal", 0755) < 0)
                _exit(125);
        fd = open("/run/systemd/journal/socket", O_CREAT | O_WRONLY, 0644);
        if (fd < 0)
                _exit(125);
        close(fd);
        if (mount(journal_path, "/run/systemd/journal/socket", NULL, MS_BIND, NULL) < 0 ||
            fstat(STDERR_FILENO, &st) < 0)
                _exit(125);
        snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
        setenv("JOURNAL_STREAM", env, 1);
}

/* The next datagram containing text, or NULL by the deadline. */
static char *journal_wait(int fd, const char *text, long long deadline)
{
        static char buf[65536];

        while (du2_now_ms() < deadline) {
                ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

                if (n < 0) {
                        du2_nap_ms(20);
                        continue;
                }
                buf[n] = '\0';
                if (strstr(buf, text))
                        return buf;
        }
        return NULL;
}

START_TEST(test_journal_fields)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char *msg, *path;
        int fd;

        du_init(&d);
        snprintf(journal_path, sizeof(journal_path), "%s/journal.sock", d.dir);
        ck_assert_uint_lt(strlen(journal_path), sizeof(sa.sun_path));
        strcpy(sa.sun_path, journal_path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        d.child_setup = journal_child;
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        path = tu_path(d.plugins, "behave.so");
        ck_assert_int_eq(chmod(path, 0646), 0);
        msg = journal_wait(fd, "MESSAGE=plugin behave removed", du2_now_ms() + WAIT_MS);
        ck_assert_msg(msg != NULL, "no removed entry in the journal");
        ck_assert_msg(strstr(msg, "\nPLUGHOST_PLUGIN=behave\n"), "entry: %s", msg);
        ck_assert_msg(strstr(msg, "\nPLUGHOST_REASON=untrusted\n"), "entry: %s", msg);
        ck_assert_msg(strstr(msg, "\nPRIORITY=4\n"), "entry: %s", msg);
        msg = journal_wait(fd, " refused: untrusted", du2_now_ms() + WAIT_MS);
        ck_assert_msg(msg != NULL, "no rejected entry in the journal");
        ck_assert_msg(strstr(msg, "\nPLUGHOST_FILE="), "entry: %s", msg);
        ck_assert_msg(strstr(msg, path), "entry: %s", msg);
        ck_assert_msg(strstr(msg, "\nPLUGHOST_UID=0\n") || strstr(msg, "\nPLUGHOST_UID=0"), "entry: %s", msg);
        close(fd);
        free(path);
}
END_TEST

/* ---- results ---- */

/* Reads the one message c is sent, as text (what follows its NUL is not
 * looked at: nothing else is asked on c). */
static char *recv_text(du_conn *c)
{
        size_t len = 0, cap = 1 << 16;
        char *buf = malloc(cap);

        ck_assert_ptr_nonnull(buf);
        for (;;) {
                struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
                ssize_t n;

                ck_assert_int_eq(poll(&pfd, 1, DU_TIMEOUT_MS), 1);
                if (len == cap)
                        ck_assert_ptr_nonnull(buf = realloc(buf, cap *= 2));
                n = read(c->fd, buf + len, cap - len);
                ck_assert_int_gt(n, 0);
                if (memchr(buf + len, '\0', (size_t)n))
                        return buf;
                len += (size_t)n;
        }
}

/* A result is sent as the plugin wrote it: jansson would write 0.1 back
 * as 0.10000000000000001 (five times the bytes: over the limit for a
 * result within it), the reply has 0.1. */
START_TEST(test_result_sent_as_written)
{
        json_t *info;
        du_conn *c;
        char *text, *want;

        du_init(&d);
        du_add_plugin(&d, tu_fixture("behave-v1.so"), "behave.so");
        du_start(&d);
        c = du_connect(&d);
        du_send(c, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"behave\","
                   "\"method\":\"Reals\",\"parameters\":{\"n\":100000}}}");
        text = recv_text(c);
        ck_assert_msg(strncmp(text, "{\"parameters\":{\"result\":{\"r\":[0.1,0.1,", 38) == 0,
                      "reply: %.200s", text);
        ck_assert_ptr_null(strstr(text, "0.10000000000000001"));
        ck_assert_int_ge(asprintf(&want, "0.1]}}}"), 0);
        ck_assert_str_eq(text + strlen(text) - strlen(want), want);
        free(want);
        free(text);
        du_close(c);
        info = du2_info(&d, "behave");
        ck_assert_int_eq(du_int(info, "counters.callsFailed"), 0);
        ck_assert_int_eq(du_int(info, "counters.calls"), 1);
        json_decref(info);
}
END_TEST

static Suite *events_suite(void)
{
        Suite *s = suite_create("events");
        TCase *tc = tcase_create("events");

        tcase_set_timeout(tc, 60);
        tcase_add_checked_fixture(tc, NULL, teardown);
        tcase_add_test(tc, test_rejected_once_per_version);
        tcase_add_test(tc, test_removed_untrusted_says_why);
        tcase_add_test(tc, test_removed_deleted);
        tcase_add_test(tc, test_untrusted_directory_says_so_once);
        tcase_add_test(tc, test_shadowed_told_once);
        tcase_add_test(tc, test_rejected_lines_bounded);
        tcase_add_test(tc, test_rude_text_stays_visible);
        tcase_add_test(tc, test_held_refusal_has_fix);
        tcase_add_test(tc, test_failed_line_names_plugin_once);
        tcase_add_test(tc, test_result_sent_as_written);
        /* A mount namespace needs root (CI runs as root); elsewhere the
         * case is not registered, so it is not counted either way. */
        if (geteuid() == 0)
                tcase_add_test(tc, test_journal_fields);
        else
                fprintf(stderr, "test-events: not root: test_journal_fields not run\n");
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(events_suite());
}
