/* The trust policy (daemon/policy.c) and client access control against the
 * real plughostd: each refusal of a plugin file, digest pinning, and each
 * permission path, with unprivileged clients run through setpriv. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon-util.h"
#include "testutil.h"

#define NOBODY "65534"

static du_daemon d;

static void teardown(void)
{
        du_stop(&d);
}

static void nap_ms(long ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
}

/* The rejected entry for file name (in the plugin dir), or NULL. */
static json_t *rejected(const char *file)
{
        json_t *r = du_request(&d, "{\"method\":\"io.plughost.List\"}"), *item, *found = NULL;
        char *path = tu_path(d.plugins, file);
        size_t i;

        json_array_foreach(json_object_get(du_params(r), "rejected"), i, item)
                if (strcmp(json_string_value(json_object_get(item, "file")), path) == 0)
                        found = json_incref(item);
        json_decref(r);
        free(path);
        return found;
}

/* Polls List until file is rejected as reason with a message containing want. */
static void assert_rejected(const char *file, const char *reason, const char *want)
{
        json_t *item = NULL;

        for (int i = 0; i < 200 && !item; i++) {
                item = rejected(file);
                if (!item)
                        nap_ms(20);
        }
        ck_assert_msg(item != NULL, "%s is not listed as rejected", file);
        ck_assert_str_eq(json_string_value(json_object_get(item, "reason")), reason);
        ck_assert_msg(strstr(json_string_value(json_object_get(item, "message")), want),
                      "message '%s' lacks '%s'", json_string_value(json_object_get(item, "message")), want);
        json_decref(item);
}

static const char *plugin_state(const char *name)
{
        static char state[64];
        json_t *r = du_requestf(&d, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"%s\"}}", name);

        snprintf(state, sizeof(state), "%s", du_error(r) ? du_error(r) : du_str(du_params(r), "plugin.state"));
        json_decref(r);
        return state;
}

static void start_with(const char *plugin_src, const char *file, const char *config)
{
        du_init(&d);
        if (config)
                du_write_config(&d, config);
        if (plugin_src)
                du_add_plugin(&d, plugin_src, file);
}

START_TEST(test_world_writable_file)
{
        char *path;

        start_with(tu_example("hello.so"), "hello.so", NULL);
        path = tu_path(d.plugins, "hello.so");
        ck_assert_int_eq(chmod(path, 0646), 0);
        du_start(&d);
        assert_rejected("hello.so", "untrusted", "writable by others");
        du_assert_error(&d, du_request(&d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}"),
                        "io.plughost.NoSuchPlugin");
        free(path);
}
END_TEST

START_TEST(test_group_writable_directory)
{
        start_with(tu_example("hello.so"), "hello.so", NULL);
        ck_assert_int_eq(chmod(d.plugins, 0775), 0);
        du_start(&d);
        assert_rejected("hello.so", "untrusted", "writable by group or others");
}
END_TEST

START_TEST(test_foreign_owner)
{
        char *path;

        start_with(tu_example("hello.so"), "hello.so", NULL);
        path = tu_path(d.plugins, "hello.so");
        ck_assert_int_eq(chown(path, 65534, 65534), 0);
        du_start(&d);
        assert_rejected("hello.so", "untrusted", "owned by uid 65534");
        free(path);
}
END_TEST

START_TEST(test_setuid_bit)
{
        char *path;

        start_with(tu_example("hello.so"), "hello.so", NULL);
        path = tu_path(d.plugins, "hello.so");
        ck_assert_int_eq(chmod(path, 04644), 0);
        du_start(&d);
        assert_rejected("hello.so", "untrusted", "set-uid");
        free(path);
}
END_TEST

START_TEST(test_symlink)
{
        char *link;

        start_with(NULL, NULL, NULL);
        link = tu_path(d.plugins, "hello.so");
        ck_assert_int_eq(symlink(tu_example("hello.so"), link), 0);
        du_start(&d);
        assert_rejected("hello.so", "not-regular", "symbolic link");
        free(link);
}
END_TEST

/* Writes a digests file listing sum (sha256sum format) and returns the config. */
static char *digests_config(const char *sum)
{
        char *file = tu_path(d.dir, "digests"), *text, *conf;

        ck_assert_int_ge(asprintf(&text, "%s  hello.so\n", sum), 0);
        tu_write_file(file, text, strlen(text));
        ck_assert_int_ge(asprintf(&conf, "[Policy]\nDigestsFile=%s\n", file), 0);
        free(text);
        free(file);
        return conf;
}

static char *sha256_of(const char *path)
{
        char *argv[] = { "/usr/bin/sha256sum", (char *)path, NULL }, *out;

        ck_assert_int_eq(tu_run(argv, &out), 0);
        out[64] = '\0';
        return out;
}

START_TEST(test_digest_mismatch)
{
        char *conf;

        start_with(tu_example("hello.so"), "hello.so", NULL);
        conf = digests_config("0000000000000000000000000000000000000000000000000000000000000000");
        du_write_config(&d, conf);
        du_start(&d);
        json_t *r = du_request(&d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_str_eq(du_error(r), "io.plughost.LoadFailed");
        ck_assert_ptr_nonnull(strstr(du_str(du_params(r), "message"), "is not in the digests file"));
        json_decref(r);
        ck_assert_str_eq(plugin_state("hello"), "failed");
        du_assert_serving(&d);
        free(conf);
}
END_TEST

START_TEST(test_digest_match)
{
        char *conf, *sum;

        start_with(tu_example("hello.so"), "hello.so", NULL);
        sum = sha256_of(tu_example("hello.so"));
        conf = digests_config(sum);
        du_write_config(&d, conf);
        du_start(&d);
        json_t *r = du_request(&d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_msg(du_error(r) == NULL, "load failed: %s", du_str(du_params(r), "message"));
        json_decref(r);
        ck_assert_str_eq(plugin_state("hello"), "loaded");
        free(conf);
        free(sum);
}
END_TEST

/* Runs plughostctl as uid/gid 65534 with the extra groups given. */
static int ctl_as_nobody(const char *groups, const char *cmd, const char *arg, const char *arg2)
{
        char ctl[4096], sock_opt[4096], groups_opt[128];
        char *argv[16];
        int n = 0;

        snprintf(ctl, sizeof(ctl), "%s/plughostctl", getenv("PH_BUILDDIR"));
        snprintf(sock_opt, sizeof(sock_opt), "--socket=%s", d.socket);
        argv[n++] = "/usr/bin/setpriv";
        argv[n++] = "--reuid=" NOBODY;
        argv[n++] = "--regid=" NOBODY;
        if (groups) {
                snprintf(groups_opt, sizeof(groups_opt), "--groups=%s", groups);
                argv[n++] = groups_opt;
        } else {
                argv[n++] = "--clear-groups";
        }
        argv[n++] = ctl;
        argv[n++] = sock_opt;
        argv[n++] = (char *)cmd;
        if (arg)
                argv[n++] = (char *)arg;
        if (arg2)
                argv[n++] = (char *)arg2;
        argv[n] = NULL;
        return tu_run(argv, NULL);
}

static bool log_has(const char *want)
{
        size_t size;
        unsigned char *log = tu_read_file(d.log, &size);
        bool found;

        log[size] = '\0';
        found = strstr((char *)log, want) != NULL;
        free(log);
        return found;
}

/* Lets uid 65534 reach the socket: the test directory is root's 0700. */
static void open_to_everyone(void)
{
        ck_assert_int_eq(chmod(d.dir, 0755), 0);
}

START_TEST(test_unprivileged_reads_only)
{
        start_with(tu_example("hello.so"), "hello.so", "[Daemon]\nSocketMode=0666\n");
        open_to_everyone();
        du_start(&d);
        ck_assert_int_eq(ctl_as_nobody(NULL, "list", NULL, NULL), 0);
        ck_assert_int_eq(ctl_as_nobody(NULL, "status", NULL, NULL), 0);
        ck_assert_int_eq(ctl_as_nobody(NULL, "load", "hello", NULL), 1);
        ck_assert_int_eq(ctl_as_nobody(NULL, "call", "hello", "Hello"), 1);
        ck_assert(log_has("permission denied: io.plughost.Load by uid 65534"));
        ck_assert(log_has("permission denied: io.plughost.Call by uid 65534"));
        ck_assert_str_eq(plugin_state("hello"), "discovered");
        /* Root is allowed. */
        json_t *r = du_request(&d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
}
END_TEST

START_TEST(test_allowed_group_member)
{
        start_with(tu_example("hello.so"), "hello.so",
                   "[Daemon]\nSocketMode=0666\n[Policy]\nAllowGroups=4242\n");
        open_to_everyone();
        du_start(&d);
        ck_assert_int_eq(ctl_as_nobody(NULL, "load", "hello", NULL), 1);
        ck_assert_int_eq(ctl_as_nobody("4242", "load", "hello", NULL), 0);
        ck_assert_str_eq(plugin_state("hello"), "loaded");
}
END_TEST

/* A per-plugin list widens (or narrows) the global one for that plugin. */
START_TEST(test_per_plugin_override)
{
        start_with(tu_example("hello.so"), "hello.so",
                   "[Daemon]\nSocketMode=0666\n[Plugin hello]\nAllowUsers=" NOBODY "\n");
        du_add_plugin(&d, tu_example("upper.so"), "upper.so");
        open_to_everyone();
        du_start(&d);
        ck_assert_int_eq(ctl_as_nobody(NULL, "call", "hello", "Hello"), 0);
        ck_assert_int_eq(ctl_as_nobody(NULL, "load", "upper", NULL), 1);
}
END_TEST

/* chmod o+w on a loaded plugin: noticed, refused, not loaded again until
 * fixed; fixed, it comes back loaded. */
START_TEST(test_permission_change_noticed)
{
        char *path;
        int i;

        start_with(tu_example("hello.so"), "hello.so", NULL);
        path = tu_path(d.plugins, "hello.so");
        du_start(&d);
        json_t *r = du_request(&d, "{\"method\":\"io.plughost.Load\",\"parameters\":{\"name\":\"hello\"}}");
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
        ck_assert_int_eq(chmod(path, 0646), 0);
        assert_rejected("hello.so", "untrusted", "writable by others");
        du_assert_error(&d, du_request(&d, "{\"method\":\"io.plughost.Call\",\"parameters\":{\"name\":\"hello\",\"method\":\"Hello\"}}"),
                        "io.plughost.NoSuchPlugin");
        ck_assert_int_eq(chmod(path, 0644), 0);
        for (i = 0; i < 200 && strcmp(plugin_state("hello"), "loaded") != 0; i++)
                nap_ms(20);
        ck_assert_str_eq(plugin_state("hello"), "loaded");
        free(path);
}
END_TEST

/* A change of the plugin directory's own mode re-judges the files in it,
 * though none of them changed. */
START_TEST(test_directory_mode_change_noticed)
{
        json_t *item;
        int i;

        start_with(tu_example("hello.so"), "hello.so", NULL);
        du_start(&d);
        ck_assert_str_eq(plugin_state("hello"), "discovered");
        ck_assert_int_eq(chmod(d.plugins, 0777), 0);
        assert_rejected("hello.so", "untrusted", "writable by group or others");
        ck_assert_int_eq(chmod(d.plugins, 0755), 0);
        for (i = 0; i < 200 && (item = rejected("hello.so")); i++) {
                json_decref(item);
                nap_ms(20);
        }
        ck_assert_str_eq(plugin_state("hello"), "discovered");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("policy");
        TCase *tc = tcase_create("policy");

        if (geteuid() != 0) {
                /* chown, setpriv and foreign owners need root: say so, do not pass. */
                fprintf(stderr, "test-policy must run as root\n");
                return 99;
        }
        tcase_add_checked_fixture(tc, NULL, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_world_writable_file);
        tcase_add_test(tc, test_group_writable_directory);
        tcase_add_test(tc, test_foreign_owner);
        tcase_add_test(tc, test_setuid_bit);
        tcase_add_test(tc, test_symlink);
        tcase_add_test(tc, test_digest_mismatch);
        tcase_add_test(tc, test_digest_match);
        tcase_add_test(tc, test_unprivileged_reads_only);
        tcase_add_test(tc, test_allowed_group_member);
        tcase_add_test(tc, test_per_plugin_override);
        tcase_add_test(tc, test_permission_change_noticed);
        tcase_add_test(tc, test_directory_mode_change_noticed);
        suite_add_tcase(s, tc);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
