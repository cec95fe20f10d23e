/* Tests for plughostctl (ctl/): the command line, help and messages, argument
 * checks, --json errors, tables and -F, against the real daemon where one can
 * answer, against a hostile stand-in where the real one never would (bad
 * replies), and its bash completion. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon-util.h"
#include "testutil.h"
#include "varlink.h"

static char ctl[4096];
static char completion[4096];

static void setup(void)
{
        const char *b = getenv("PH_BUILDDIR"), *s = getenv("PH_SRCDIR");

        ck_assert_ptr_nonnull(b);
        ck_assert_ptr_nonnull(s);
        snprintf(ctl, sizeof(ctl), "%s/plughostctl", b);
        snprintf(completion, sizeof(completion), "%s/ctl/completion/plughostctl", s);
}

/* ---- running plughostctl with stdout and stderr apart ---- */

typedef struct run_out {
        int status;             /* exit status, -1 if it did not exit */
        char *out, *err;
} run_out;

static void run_free(run_out *r)
{
        free(r->out);
        free(r->err);
}

static void run_argv(run_out *r, char *const argv[])
{
        struct { int fd; char *buf; size_t len, cap; } s[2];
        int po[2], pe[2], status, open_n = 2;
        pid_t pid;

        memset(s, 0, sizeof(s));
        ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY);

                dup2(null, STDIN_FILENO);
                dup2(po[1], STDOUT_FILENO);
                dup2(pe[1], STDERR_FILENO);
                execv(argv[0], argv);
                _exit(127);
        }
        close(po[1]);
        close(pe[1]);
        s[0].fd = po[0];
        s[1].fd = pe[0];
        for (int i = 0; i < 2; i++) {
                s[i].cap = 4096;
                s[i].buf = malloc(s[i].cap);
                ck_assert_ptr_nonnull(s[i].buf);
        }
        while (open_n > 0) {
                struct pollfd pfd[2] = { { s[0].fd, POLLIN, 0 }, { s[1].fd, POLLIN, 0 } };

                ck_assert_int_ge(poll(pfd, 2, -1), 0);
                for (int i = 0; i < 2; i++) {
                        ssize_t n;

                        if (s[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        if (s[i].cap - s[i].len < 2) {
                                s[i].cap *= 2;
                                s[i].buf = realloc(s[i].buf, s[i].cap);
                                ck_assert_ptr_nonnull(s[i].buf);
                        }
                        n = read(s[i].fd, s[i].buf + s[i].len, s[i].cap - s[i].len - 1);
                        if (n <= 0) {
                                close(s[i].fd);
                                s[i].fd = -1;
                                open_n--;
                        } else {
                                s[i].len += (size_t)n;
                        }
                }
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        s[0].buf[s[0].len] = '\0';
        s[1].buf[s[1].len] = '\0';
        r->out = s[0].buf;
        r->err = s[1].buf;
        r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* plughostctl with the arguments given, NULL-terminated. */
static int run(run_out *r, ...)
{
        char *argv[32] = { ctl };
        int n = 1;
        va_list ap;

        va_start(ap, r);
        while (n < 31 && (argv[n] = va_arg(ap, char *)))
                n++;
        va_end(ap);
        argv[n] = NULL;
        run_argv(r, argv);
        return r->status;
}

/* Every line of text starts with "plughostctl:", and there is one. */
static void assert_prefixed(const char *text)
{
        const char *line = text;

        ck_assert_msg(*text, "nothing on stderr");
        while (*line) {
                ck_assert_msg(strncmp(line, "plughostctl:", 12) == 0, "unprefixed line in: %s", text);
                line = strchr(line, '\n');
                if (!line)
                        break;
                line++;
        }
}

/* text is exactly one JSON object and a newline; returns it (owned). */
static json_t *one_json(const char *text)
{
        json_error_t e;
        size_t len = strlen(text);
        json_t *j;

        ck_assert_msg(len > 1 && text[len - 1] == '\n' && !memchr(text, '\n', len - 1),
                      "not one line: %s", text);
        j = json_loads(text, 0, &e);
        ck_assert_msg(json_is_object(j), "not a JSON object: %s (%s)", text, e.text);
        return j;
}

/* A socket path where nothing listens (the directory does not exist). */
#define NO_SOCKET "/nonexistent-plughost-test/sock"

/* ---- offline: inspect ---- */

START_TEST(test_inspect_plugin_table)
{
        run_out r;

        ck_assert_int_eq(run(&r, "inspect", (char *)tu_example("hello.so"), NULL), 0);
        ck_assert_ptr_nonnull(strstr(r.out, "FILE"));
        ck_assert_ptr_nonnull(strstr(r.out, "hello"));
        ck_assert_ptr_nonnull(strstr(r.out, "1.0.0"));
        ck_assert_ptr_nonnull(strstr(r.out, "org.example.Greeter"));
        run_free(&r);
}
END_TEST

START_TEST(test_inspect_json_mixed)
{
        char good[4096], debug[4096];
        json_error_t err;
        json_t *root, *a, *b;
        run_out r;

        snprintf(good, sizeof(good), "%s", tu_fixture("good.so"));
        snprintf(debug, sizeof(debug), "%s", tu_fixture("good-debug.so"));
        /* One file is not a plugin: exit 1, yet every file is reported. */
        ck_assert_int_eq(run(&r, "--json", "inspect", good, debug, NULL), 1);
        root = json_loads(r.out, 0, &err);
        ck_assert_msg(root != NULL, "bad JSON: %s", err.text);
        ck_assert_uint_eq(json_array_size(root), 2);
        a = json_array_get(root, 0);
        b = json_array_get(root, 1);
        ck_assert(json_is_true(json_object_get(a, "plugin")));
        ck_assert_str_eq(json_string_value(json_object_get(a, "name")), "good");
        ck_assert_str_eq(json_string_value(json_object_get(a, "found_via")), "program-headers");
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a, "metadata"),
                                                            "priority")), 5);
        ck_assert(json_is_false(json_object_get(b, "plugin")));
        ck_assert_str_eq(json_string_value(json_object_get(b, "reason")), "debug-only");
        json_decref(root);
        run_free(&r);
}
END_TEST

START_TEST(test_inspect_option_after_command)
{
        run_out r;

        ck_assert_int_eq(run(&r, "inspect", "--json", (char *)tu_example("upper.so"), NULL), 0);
        ck_assert_ptr_nonnull(strstr(r.out, "\"name\": \"upper\""));
        run_free(&r);
}
END_TEST

/* Every metadata key the file has gets a column, not a fixed few. */
START_TEST(test_inspect_every_metadata_field)
{
        run_out r;

        ck_assert_int_eq(run(&r, "inspect", (char *)tu_fixture("good.so"), NULL), 0);
        ck_assert_msg(strstr(r.out, "LICENSE") && strstr(r.out, "MIT"), "%s", r.out);
        ck_assert_msg(strstr(r.out, "URL") && strstr(r.out, "https://example.org/good"), "%s", r.out);
        ck_assert_msg(strstr(r.out, "X-VENDOR") && strstr(r.out, "{\"k\":1}"), "%s", r.out);
        ck_assert_msg(strstr(r.out, "PRIORITY"), "%s", r.out);
        run_free(&r);
}
END_TEST

START_TEST(test_inspect_no_legend)
{
        run_out r;

        ck_assert_int_eq(run(&r, "inspect", "--no-legend", (char *)tu_example("hello.so"), NULL), 0);
        ck_assert_msg(!strstr(r.out, "FILE") && !strstr(r.out, "VERDICT"), "%s", r.out);
        ck_assert_msg(strncmp(r.out, tu_example("hello.so"), strlen(tu_example("hello.so"))) == 0,
                      "%s", r.out);
        ck_assert_uint_eq(strchr(r.out, '\n') - r.out + 1, strlen(r.out));
        run_free(&r);
}
END_TEST

START_TEST(test_inspect_field)
{
        char good[4096];
        run_out r;

        snprintf(good, sizeof(good), "%s", tu_fixture("good.so"));
        ck_assert_int_eq(run(&r, "inspect", "-F", "name", good, NULL), 0);
        ck_assert_str_eq(r.out, "good\n");
        run_free(&r);
        ck_assert_int_eq(run(&r, "inspect", "--field", "metadata.x-vendor.k", good, NULL), 0);
        ck_assert_str_eq(r.out, "1\n");
        run_free(&r);
        ck_assert_int_eq(run(&r, "inspect", "--field=interfaces", good, NULL), 0);
        ck_assert_str_eq(r.out, "org.example.Ping\norg.example.Test\n");
        run_free(&r);
        ck_assert_int_eq(run(&r, "--json", "inspect", "-F", "version", good, NULL), 0);
        ck_assert_str_eq(r.out, "\"1.2.3\"\n");
        run_free(&r);
        /* An unknown field is a usage error naming the fields there are. */
        ck_assert_int_eq(run(&r, "inspect", "-F", "bogus", good, NULL), 2);
        ck_assert_str_eq(r.out, "");
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "bogus") && strstr(r.err, "found_via") &&
                      strstr(r.err, "metadata"), "%s", r.err);
        run_free(&r);
}
END_TEST

/* -F before the command, as --no-legend may be; still refused by a
 * command that does not take it. */
START_TEST(test_field_before_command)
{
        char good[4096];
        run_out r;

        snprintf(good, sizeof(good), "%s", tu_fixture("good.so"));
        ck_assert_int_eq(run(&r, "-F", "name", "inspect", good, NULL), 0);
        ck_assert_str_eq(r.out, "good\n");
        ck_assert_str_eq(r.err, "");
        run_free(&r);
        ck_assert_int_eq(run(&r, "--json", "--field=version", "inspect", good, NULL), 0);
        ck_assert_str_eq(r.out, "\"1.2.3\"\n");
        run_free(&r);
        ck_assert_int_eq(run(&r, "--field", "bogus", "inspect", good, NULL), 2);
        ck_assert_msg(strstr(r.err, "bogus") && strstr(r.err, "found_via"), "%s", r.err);
        run_free(&r);
        /* After the command, the last one counts. */
        ck_assert_int_eq(run(&r, "-F", "version", "inspect", "-F", "name", good, NULL), 0);
        ck_assert_str_eq(r.out, "good\n");
        run_free(&r);
        ck_assert_int_eq(run(&r, "-F", NULL), 2);
        ck_assert_str_eq(r.err, "plughostctl: option '-F' requires an argument (see 'plughostctl help')\n");
        run_free(&r);
        /* Refused before any connection: a usage error, not "cannot connect". */
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "-F", "x", "status", NULL), 2);
        ck_assert_str_eq(r.out, "");
        ck_assert_str_eq(r.err, "plughostctl: status: does not take -F/--field (see 'plughostctl help status')\n");
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "--field=x", "list", NULL), 2);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "list: does not take -F/--field"), "%s", r.err);
        run_free(&r);
}
END_TEST

/* "--" ends the options: a file named like one is a file. */
START_TEST(test_inspect_dashdash)
{
        run_out r;

        ck_assert_int_eq(run(&r, "inspect", "--", "-x", NULL), 1);
        ck_assert_msg(strstr(r.out, "io-error"), "%s", r.out);
        ck_assert_ptr_null(strstr(r.err, "option"));
        run_free(&r);
}
END_TEST

/* ---- the command line: help, messages, usage errors ---- */

START_TEST(test_usage_errors)
{
        run_out r;

        ck_assert_int_eq(run(&r, NULL), 2);
        run_free(&r);
        ck_assert_int_eq(run(&r, "frobnicate", NULL), 2);
        assert_prefixed(r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "inspect", NULL), 2);
        assert_prefixed(r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--bogus", "inspect", "x", NULL), 2);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--help", NULL), 0);
        ck_assert_ptr_nonnull(strstr(r.out, "inspect"));
        run_free(&r);
        ck_assert_int_eq(run(&r, "--version", NULL), 0);
        ck_assert_ptr_nonnull(strstr(r.out, "plughostctl "));
        run_free(&r);
        ck_assert_int_eq(run(&r, "inspect", "/nonexistent.so", NULL), 1);
        ck_assert_ptr_nonnull(strstr(r.out, "io-error"));
        run_free(&r);
}
END_TEST

/* help, help COMMAND, COMMAND --help and COMMAND -h. */
START_TEST(test_help)
{
        static const char *const commands[] = { "list", "info", "query", "load", "unload", "call",
                                                "rescan", "status", "monitor", "inspect", "help" };
        run_out r, r2;
        char *general;

        ck_assert_int_eq(run(&r, "help", NULL), 0);
        ck_assert_msg(strstr(r.out, "Usage: plughostctl"), "%s", r.out);
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                ck_assert_msg(strstr(r.out, commands[i]), "help lacks %s", commands[i]);
        general = strdup(r.out);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--help", NULL), 0);
        ck_assert_str_eq(r.out, general);
        run_free(&r);
        free(general);

        ck_assert_int_eq(run(&r, "help", "list", NULL), 0);
        ck_assert_msg(strstr(r.out, "Usage: plughostctl [OPTIONS] list") && strstr(r.out, "--state") &&
                      strstr(r.out, "--interface") && strstr(r.out, "--no-legend") &&
                      strstr(r.out, "List plugins and refused files."), "%s", r.out);
        ck_assert_msg(!strstr(r.out, "inspect"), "help list shows other commands: %s", r.out);
        ck_assert_str_eq(r.err, "");
        ck_assert_int_eq(run(&r2, "list", "--help", NULL), 0);
        ck_assert_str_eq(r2.out, r.out);
        run_free(&r2);
        ck_assert_int_eq(run(&r2, "list", "-h", NULL), 0);
        ck_assert_str_eq(r2.out, r.out);
        run_free(&r2);
        run_free(&r);
        ck_assert_int_eq(run(&r, "help", "info", NULL), 0);
        ck_assert_msg(strstr(r.out, "--field") && strstr(r.out, "NAME"), "%s", r.out);
        run_free(&r);
        /* Help wins over the rest of the line, even a missing daemon. */
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "call", "--help", NULL), 0);
        ck_assert_msg(strstr(r.out, "METHOD"), "%s", r.out);
        run_free(&r);

        ck_assert_int_eq(run(&r, "help", "bogus", NULL), 2);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "unknown command 'bogus'"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "help", "list", "extra", NULL), 2);
        assert_prefixed(r.err);
        run_free(&r);
}
END_TEST

/* getopt's own messages would start with argv[0], a path. */
START_TEST(test_messages_prefixed)
{
        run_out r;

        ck_assert_int_eq(run(&r, "-x", "status", NULL), 2);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "plughostctl: unknown option '-x'"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--bogus", "status", NULL), 2);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "unknown option '--bogus'"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NULL), 2);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "option '--socket' requires an argument"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "-s", NULL), 2);
        ck_assert_msg(strstr(r.err, "option '-s' requires an argument"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--json=1", "status", NULL), 2);
        assert_prefixed(r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "list", "--state", NULL), 2);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "option '--state' requires an argument"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "info", "-q", "x", NULL), 2);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "unknown option '-q'"), "%s", r.err);
        run_free(&r);
        /* An empty socket path cannot be meant. */
        ck_assert_int_eq(run(&r, "--socket", "", "status", NULL), 2);
        assert_prefixed(r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket=", "status", NULL), 2);
        run_free(&r);
}
END_TEST

/* Checked before any connection: NO_SOCKET would make them exit 1. */
START_TEST(test_arguments_validated)
{
        char long_name[300], long_iface[300];
        run_out r;

        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "list", "--state", "bogus", NULL), 2);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "'bogus'") && strstr(r.err, "discovered") &&
                      strstr(r.err, "loading") && strstr(r.err, "loaded") &&
                      strstr(r.err, "failed") && strstr(r.err, "quarantined"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "list", "--state=", NULL), 2);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "list", "--interface", "no", NULL), 2);
        assert_prefixed(r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "query", "notaniface", NULL), 2);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "notaniface"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "query", "", NULL), 2);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "query", "org..example", NULL), 2);
        run_free(&r);
        memset(long_iface, 'a', sizeof(long_iface) - 1);
        long_iface[sizeof(long_iface) - 1] = '\0';
        long_iface[1] = '.';
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "query", long_iface, NULL), 2);
        run_free(&r);
        /* Plugin names follow the metadata's rule. */
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "info", "", NULL), 2);
        assert_prefixed(r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "load", "Bad Name", NULL), 2);
        run_free(&r);
        memset(long_name, 'a', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = '\0';
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "unload", long_name, NULL), 2);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "info", "\xff\xfe", NULL), 2);
        assert_prefixed(r.err);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "call", "hello", "\xff", NULL), 2);
        run_free(&r);
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "call", "hello", "", NULL), 2);
        run_free(&r);
        /* After "--", "-x" is an argument (here a bad name), not an option. */
        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "info", "--", "-x", NULL), 2);
        ck_assert_ptr_null(strstr(r.err, "option"));
        run_free(&r);
}
END_TEST

/* A socket that is missing or refuses: what to look at next. */
START_TEST(test_connect_failures)
{
        char *dir = tu_tmpdir(), *path = tu_path(dir, "sock"), *want;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        run_out r;
        int fd;

        ck_assert_int_eq(run(&r, "--socket", NO_SOCKET, "status", NULL), 1);
        assert_prefixed(r.err);
        /* Not the default socket: systemd's unit is not the one to look at. */
        ck_assert_str_eq(r.err, "plughostctl: cannot connect to " NO_SOCKET ": No such file or directory "
                                "(is plughostd running?)\n");
        run_free(&r);
        ck_assert_int_eq(setenv("PLUGHOST_SOCKET", NO_SOCKET, 1), 0);
        ck_assert_int_eq(run(&r, "list", NULL), 1);
        ck_assert_str_eq(r.err, "plughostctl: cannot connect to " NO_SOCKET ": No such file or directory "
                                "(is plughostd running?)\n");
        run_free(&r);
        /* The default socket, when this machine has none: systemd's unit. */
        ck_assert_int_eq(unsetenv("PLUGHOST_SOCKET"), 0);
        if (access(PH_VARLINK_DEFAULT_SOCKET, F_OK) < 0 && errno == ENOENT) {
                ck_assert_int_eq(run(&r, "status", NULL), 1);
                ck_assert_str_eq(r.err, "plughostctl: cannot connect to " PH_VARLINK_DEFAULT_SOCKET
                                        ": No such file or directory "
                                        "(is plughostd running? see systemctl status plughostd.socket)\n");
                run_free(&r);
                ck_assert_int_eq(run(&r, "--json", "status", NULL), 1);
                {
                        json_t *j = one_json(r.err);

                        ck_assert_str_eq(json_string_value(json_object_get(j, "message")),
                                         "cannot connect to " PH_VARLINK_DEFAULT_SOCKET
                                         ": No such file or directory "
                                         "(is plughostd running? see systemctl status plughostd.socket)");
                        json_decref(j);
                }
                run_free(&r);
        }
        /* Bound, never listening: connect() is refused. */
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        ck_assert_int_ge(fd, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_ge(asprintf(&want, "plughostctl: cannot connect to %s: Connection refused "
                                  "(is plughostd running?)\n", path), 0);
        ck_assert_int_eq(run(&r, "--socket", path, "list", NULL), 1);
        ck_assert_str_eq(r.err, want);
        run_free(&r);
        /* --json: the same as one JSON object on stderr. */
        ck_assert_int_eq(run(&r, "--json", "--socket", path, "list", NULL), 1);
        {
                json_t *j = one_json(r.err);
                const char *msg = json_string_value(json_object_get(j, "message"));

                ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
                                 "plughostctl.ConnectFailed");
                /* The text form's message, without its prefix and newline. */
                ck_assert_ptr_nonnull(msg);
                ck_assert_uint_eq(strlen(msg), strlen(want) - strlen("plughostctl: ") - 1);
                ck_assert_msg(strncmp(msg, want + strlen("plughostctl: "), strlen(msg)) == 0, "%s", msg);
                ck_assert_str_eq(json_string_value(json_object_get(j, "socket")), path);
                json_decref(j);
        }
        ck_assert_str_eq(r.out, "");
        run_free(&r);
        close(fd);
        free(want);
        free(path);
        tu_tmpdir_free(dir);
}
END_TEST

START_TEST(test_json_usage_error)
{
        run_out r;
        json_t *j;

        ck_assert_int_eq(run(&r, "--json", "--socket", NO_SOCKET, "list", "--state", "bogus", NULL), 2);
        ck_assert_str_eq(r.out, "");
        j = one_json(r.err);
        ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "plughostctl.Usage");
        ck_assert_msg(strstr(json_string_value(json_object_get(j, "message")), "quarantined"),
                      "%s", r.err);
        json_decref(j);
        run_free(&r);
        /* --json after the command counts as well. */
        ck_assert_int_eq(run(&r, "info", "--json", NULL), 2);
        j = one_json(r.err);
        ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "plughostctl.Usage");
        json_decref(j);
        run_free(&r);
}
END_TEST

/* ---- against the real daemon ---- */

static du_daemon D;

static void daemon_setup(void)
{
        setup();
        du_init(&D);
        du_add_plugin(&D, tu_example("hello.so"), "hello.so");
        du_add_plugin(&D, tu_example("upper.so"), "upper.so");
        du_add_plugin(&D, tu_fixture("good.so"), "good.so");
        du_add_plugin(&D, tu_fixture("no-note.so"), "no-note.so");
        du_start(&D);
}

static void daemon_teardown(void)
{
        du_stop(&D);
}

/* plughostctl --socket D.socket and the arguments given. */
static int drun(run_out *r, ...)
{
        char *argv[32] = { ctl, "--socket", D.socket };
        int n = 3;
        va_list ap;

        va_start(ap, r);
        while (n < 31 && (argv[n] = va_arg(ap, char *)))
                n++;
        va_end(ap);
        argv[n] = NULL;
        run_argv(r, argv);
        return r->status;
}

START_TEST(test_query)
{
        run_out r;

        ck_assert_int_eq(drun(&r, "query", "org.example.Greeter", NULL), 0);
        ck_assert_msg(strstr(r.out, "NAME") && strstr(r.out, "hello"), "%s", r.out);
        run_free(&r);
        /* Valid, provided by nothing: said on stderr, exit 1, no empty table. */
        ck_assert_int_eq(drun(&r, "query", "org.example.Nobody", NULL), 1);
        ck_assert_str_eq(r.out, "");
        ck_assert_str_eq(r.err, "plughostctl: no plugin provides interface 'org.example.Nobody'\n");
        run_free(&r);
        ck_assert_int_eq(drun(&r, "--json", "query", "org.example.Nobody", NULL), 1);
        ck_assert_str_eq(r.out, "");
        {
                json_t *j = one_json(r.err);

                ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
                                 "plughostctl.NoProvider");
                json_decref(j);
        }
        run_free(&r);
}
END_TEST

START_TEST(test_list_no_legend)
{
        run_out r;

        ck_assert_int_eq(drun(&r, "list", "--no-legend", NULL), 0);
        ck_assert_msg(!strstr(r.out, "NAME") && !strstr(r.out, "REJECTED"), "%s", r.out);
        ck_assert_msg(strncmp(r.out, "good ", 5) == 0 && strstr(r.out, "\nhello ") &&
                      strstr(r.out, "\nupper "), "%s", r.out);
        /* The rejected files follow the plugins after one empty line. */
        ck_assert_msg(strstr(r.out, "\n\n") && strstr(r.out, "no-note.so"), "%s", r.out);
        run_free(&r);
        ck_assert_int_eq(drun(&r, "--no-legend", "query", "org.example.Text", NULL), 0);
        ck_assert_msg(strncmp(r.out, "upper ", 6) == 0 && !strchr(r.out, '\n')[1], "%s", r.out);
        run_free(&r);
        /* Without it, the headers are there. */
        ck_assert_int_eq(drun(&r, "list", NULL), 0);
        ck_assert_msg(strncmp(r.out, "NAME", 4) == 0 && strstr(r.out, "REJECTED FILE"), "%s", r.out);
        run_free(&r);
        ck_assert_int_eq(drun(&r, "list", "--state", "loaded", "--no-legend", NULL), 0);
        ck_assert_msg(!strstr(r.out, "hello") && !strstr(r.out, "NAME"), "%s", r.out);
        run_free(&r);
}
END_TEST

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* monitor prints a refused file's event with its reason and, on the
 * next line, the fix. */
START_TEST(test_monitor_rejected)
{
        char *argv[] = { ctl, "--socket", D.socket, "monitor", NULL }, buf[8192];
        size_t len = 0;
        long long deadline, next;
        int po[2], status, tries = 0;
        pid_t pid;

        ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(po[1], STDOUT_FILENO);
                execv(argv[0], argv);
                _exit(127);
        }
        close(po[1]);
        ck_assert_int_eq(fcntl(po[0], F_SETFL, O_NONBLOCK), 0);
        /* A connection counts as a client before its Monitor is live, and
         * an event before that is not sent: a refused file is dropped in
         * again, under a new name, each second until one is seen. */
        buf[0] = '\0';
        for (deadline = now_ms() + 10000, next = 0; now_ms() < deadline && !strstr(buf, "fix: ");) {
                ssize_t n;

                if (now_ms() >= next) {
                        char name[32];

                        snprintf(name, sizeof(name), "bad%d.so", tries++);
                        du_add_plugin(&D, tu_fixture("bad-name.so"), name);
                        next = now_ms() + 1000;
                }
                n = read(po[0], buf + len, sizeof(buf) - 1 - len);
                if (n > 0) {
                        len += (size_t)n;
                        buf[len] = '\0';
                } else {
                        usleep(10000);
                }
        }
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
        close(po[0]);
        ck_assert_msg(strncmp(buf, "rejected  ", 10) == 0 && strstr(buf, "/bad") && strstr(buf, ".so (generation ") &&
                      strstr(buf, "): bad-metadata: key 'name'"), "%s", buf);
        ck_assert_msg(strstr(buf, "\n          fix: fix the metadata"), "%s", buf);
}
END_TEST

START_TEST(test_info_field)
{
        run_out r;

        ck_assert_int_eq(drun(&r, "info", "hello", "-F", "version", NULL), 0);
        ck_assert_str_eq(r.out, "1.0.0\n");
        run_free(&r);
        ck_assert_int_eq(drun(&r, "-F", "version", "info", "hello", NULL), 0);
        ck_assert_str_eq(r.out, "1.0.0\n");
        run_free(&r);
        ck_assert_int_eq(drun(&r, "info", "--field", "interfaces", "hello", NULL), 0);
        ck_assert_str_eq(r.out, "org.example.Greeter\n");
        run_free(&r);
        ck_assert_int_eq(drun(&r, "info", "hello", "-F", "counters.calls", NULL), 0);
        ck_assert_str_eq(r.out, "0\n");
        run_free(&r);
        ck_assert_int_eq(drun(&r, "info", "good", "-F", "metadata.x-vendor", NULL), 0);
        ck_assert_str_eq(r.out, "{\"k\":1}\n");
        run_free(&r);
        /* Known but null here (hello runs in the daemon): nothing printed. */
        ck_assert_int_eq(drun(&r, "info", "hello", "-F", "worker.pid", NULL), 0);
        ck_assert_str_eq(r.out, "");
        run_free(&r);
        ck_assert_int_eq(drun(&r, "--json", "info", "hello", "-F", "resident", NULL), 0);
        ck_assert_str_eq(r.out, "false\n");
        run_free(&r);
        ck_assert_int_eq(drun(&r, "info", "hello", "-F", "bogus", NULL), 2);
        ck_assert_str_eq(r.out, "");
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "'bogus'") && strstr(r.err, "version") && strstr(r.err, "worker") &&
                      strstr(r.err, "counters"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(drun(&r, "status", "-F", "version", NULL), 2);
        assert_prefixed(r.err);
        run_free(&r);
}
END_TEST

/* info shows every metadata key, x- ones too. */
START_TEST(test_info_every_metadata_field)
{
        run_out r;

        ck_assert_int_eq(drun(&r, "info", "good", NULL), 0);
        ck_assert_msg(strstr(r.out, "x-vendor:") && strstr(r.out, "{\"k\":1}"), "%s", r.out);
        ck_assert_msg(strstr(r.out, "https://example.org/good"), "%s", r.out);
        run_free(&r);
}
END_TEST

/* The daemon's error, as it came, on stderr as one JSON object. */
START_TEST(test_json_daemon_error)
{
        run_out r;
        json_t *j;

        ck_assert_int_eq(drun(&r, "--json", "info", "nope", NULL), 1);
        ck_assert_str_eq(r.out, "");
        j = one_json(r.err);
        ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "io.plughost.NoSuchPlugin");
        ck_assert(json_is_object(json_object_get(j, "parameters")));
        json_decref(j);
        run_free(&r);
        /* Without --json: one prefixed line. */
        ck_assert_int_eq(drun(&r, "info", "nope", NULL), 1);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "io.plughost.NoSuchPlugin"), "%s", r.err);
        run_free(&r);
}
END_TEST

/* ---- against a hostile stand-in for the daemon ---- */

typedef struct fake {
        char *dir, *sock;
        pid_t pid;
} fake;

/* Serves one connection: reads the request up to its NUL, writes reply
 * (len bytes, sent as they are), then closes. */
static void fake_start(fake *f, const char *reply, size_t len)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        f->dir = tu_tmpdir();
        f->sock = tu_path(f->dir, "sock");
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(fd, 4), 0);
        f->pid = fork();
        ck_assert_int_ge(f->pid, 0);
        if (f->pid == 0) {
                char c;
                int cfd;

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                cfd = accept(fd, NULL, NULL);
                if (cfd < 0)
                        _exit(1);
                while (read(cfd, &c, 1) == 1 && c != '\0')
                        ;
                for (size_t off = 0; off < len;) {
                        ssize_t n = send(cfd, reply + off, len - off, MSG_NOSIGNAL);

                        if (n <= 0)
                                break;
                        off += (size_t)n;
                }
                close(cfd);
                _exit(0);
        }
        close(fd);
}

static void fake_stop(fake *f)
{
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
        free(f->sock);
        tu_tmpdir_free(f->dir);
}

/* plughostctl [--json] CMD [ARG] against a stand-in answering reply. */
static int hostile(run_out *r, const char *reply, size_t len, bool json, const char *cmd,
                   const char *arg)
{
        fake f;

        fake_start(&f, reply, len);
        if (json)
                run(r, "--json", "--socket", f.sock, cmd, arg, NULL);
        else
                run(r, "--socket", f.sock, cmd, arg, NULL);
        fake_stop(&f);
        return r->status;
}

#define HOSTILE(r, text, cmd, arg) hostile(r, text, sizeof(text), false, cmd, arg)

START_TEST(test_hostile_not_varlink)
{
        static const char *const replies[] = {
                "nonsense", "[1,2]", "\"a string\"", "{\"parameters\":5}", "{}", "null",
                "{\"parameters\":{}} trailing",
        };
        run_out r;

        for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
                ck_assert_msg(hostile(&r, replies[i], strlen(replies[i]) + 1, false, "status", NULL) == 1,
                              "reply %s: exit %d", replies[i], r.status);
                assert_prefixed(r.err);
                ck_assert_str_eq(r.out, "");
                run_free(&r);
        }
}
END_TEST

START_TEST(test_hostile_closed)
{
        run_out r;

        ck_assert_int_eq(hostile(&r, "", 0, false, "status", NULL), 1);
        ck_assert_str_eq(r.err, "plughostctl: plughostd closed the connection\n");
        run_free(&r);
        /* Half a reply, then gone. */
        ck_assert_int_eq(hostile(&r, "{\"parameters\":", 14, false, "status", NULL), 1);
        ck_assert_str_eq(r.err, "plughostctl: plughostd closed the connection mid-reply\n");
        run_free(&r);
}
END_TEST

/* More than the message limit without a NUL: cut, not buffered without end. */
START_TEST(test_hostile_huge)
{
        size_t len = 3u * 1024 * 1024;
        char *big = malloc(len);
        run_out r;

        ck_assert_ptr_nonnull(big);
        memset(big, ' ', len);
        ck_assert_int_eq(hostile(&r, big, len, false, "status", NULL), 1);
        assert_prefixed(r.err);
        ck_assert_msg(strstr(r.err, "larger than"), "%s", r.err);
        run_free(&r);
        free(big);
}
END_TEST

/* Nested past jansson's depth limit: an error, not a crash. */
START_TEST(test_hostile_deep)
{
        size_t depth = 100000;
        char *deep = malloc(depth + 1);
        run_out r;

        ck_assert_ptr_nonnull(deep);
        memset(deep, '[', depth);
        deep[depth] = '\0';
        ck_assert_int_eq(hostile(&r, deep, depth + 1, false, "status", NULL), 1);
        assert_prefixed(r.err);
        run_free(&r);
        free(deep);
}
END_TEST

/* Valid Varlink, wrong shapes: a failure named as such, not an empty table. */
START_TEST(test_hostile_wrong_types)
{
        run_out r;

        ck_assert_int_eq(HOSTILE(&r, "{\"parameters\":{\"plugins\":\"x\",\"rejected\":7}}", "list", NULL), 1);
        ck_assert_str_eq(r.out, "");
        ck_assert_msg(strstr(r.err, "plughostctl: malformed reply"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(HOSTILE(&r, "{\"parameters\":{\"plugins\":[3]}}", "query", "a.b"), 1);
        ck_assert_msg(strstr(r.err, "plughostctl: malformed reply"), "%s", r.err);
        run_free(&r);
        ck_assert_int_eq(HOSTILE(&r, "{\"parameters\":{\"plugin\":[]}}", "info", "x"), 1);
        ck_assert_msg(strstr(r.err, "plughostctl: malformed reply"), "%s", r.err);
        run_free(&r);
        /* Wrong types inside a plugin: shown as "-", not trusted. */
        ck_assert_int_eq(HOSTILE(&r, "{\"parameters\":{\"plugins\":[{\"name\":5,\"version\":\"1\","
                                    "\"interfaces\":\"x\"}],\"rejected\":[]}}", "list", NULL), 0);
        ck_assert_msg(strstr(r.out, "-"), "%s", r.out);
        run_free(&r);
        /* An error reply whose name is not a string. */
        ck_assert_int_eq(HOSTILE(&r, "{\"error\":5,\"parameters\":{}}", "status", NULL), 1);
        assert_prefixed(r.err);
        run_free(&r);
}
END_TEST

/* Escape sequences in a daemon's error never reach the terminal raw. */
START_TEST(test_hostile_error_text)
{
        static const char reply[] = "{\"error\":\"io.plughost.X\\u001b[2J\",\"parameters\":"
                                    "{\"message\":\"a\\u001b]0;owned\\u0007\\nb\\u009b\"}}";
        run_out r;
        json_t *j;

        ck_assert_int_eq(hostile(&r, reply, sizeof(reply), false, "status", NULL), 1);
        assert_prefixed(r.err);
        ck_assert_ptr_null(strchr(r.err, '\x1b'));
        ck_assert_ptr_null(strchr(r.err, '\a'));
        ck_assert_ptr_null(strstr(r.err, "\xc2\x9b"));
        ck_assert_uint_eq(strchr(r.err, '\n') - r.err + 1, strlen(r.err));
        run_free(&r);
        ck_assert_int_eq(hostile(&r, reply, sizeof(reply), true, "status", NULL), 1);
        for (const char *p = r.err; *p; p++)
                ck_assert_msg((unsigned char)*p < 0x80 && ((unsigned char)*p >= 0x20 || *p == '\n'),
                              "raw byte in %s", r.err);
        j = one_json(r.err);
        ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "io.plughost.X\x1b[2J");
        json_decref(j);
        run_free(&r);
}
END_TEST

/* ---- bash completion ---- */

/* Completes the words given (the last one is being typed) with the
 * completion file sourced, after the shell code in pre; returns the
 * candidates, one per line. */
static char *complete_after(const char *pre, const char *words)
{
        char *script, *out;
        char *argv[] = { "/bin/bash", "--norc", "--noprofile", "-c", NULL, NULL };
        run_out r;

        ck_assert_int_ge(asprintf(&script,
                                  "%s source '%s' || exit 9; COMP_WORDS=(%s); "
                                  "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                                  "COMP_LINE=\"${COMP_WORDS[*]}\"; COMP_POINT=${#COMP_LINE}; "
                                  "_plughostctl plughostctl \"${COMP_WORDS[COMP_CWORD]}\" "
                                  "\"${COMP_WORDS[COMP_CWORD-1]}\" || exit 8; "
                                  "printf '%%s\\n' \"${COMPREPLY[@]}\" | sort",
                                  pre, completion, words), 0);
        argv[4] = script;
        run_argv(&r, argv);
        ck_assert_msg(r.status == 0, "bash exited %d: %s", r.status, r.err);
        ck_assert_msg(r.err[0] == '\0', "completion wrote to stderr: %s", r.err);
        out = r.out;
        free(r.err);
        free(script);
        return out;
}

static char *complete(const char *words)
{
        return complete_after("", words);
}

START_TEST(test_completion_offline)
{
        char *out, *words;

        out = complete("plughostctl ''");
        ck_assert_msg(strstr(out, "list\n") && strstr(out, "inspect\n") && strstr(out, "help\n"), "%s", out);
        free(out);
        out = complete("plughostctl li");
        ck_assert_str_eq(out, "list\n");
        free(out);
        out = complete("plughostctl --so");
        ck_assert_str_eq(out, "--socket\n");
        free(out);
        out = complete("plughostctl list --state ''");
        ck_assert_str_eq(out, "discovered\nfailed\nloaded\nloading\nquarantined\n");
        free(out);
        out = complete("plughostctl list --");
        ck_assert_msg(strstr(out, "--state\n") && strstr(out, "--interface\n") && strstr(out, "--no-legend\n"),
                      "%s", out);
        free(out);
        out = complete("plughostctl help ''");
        ck_assert_msg(strstr(out, "call\n") && strstr(out, "monitor\n"), "%s", out);
        free(out);
        /* No daemon there: no names, and not a word on stderr. */
        ck_assert_int_ge(asprintf(&words, "plughostctl --socket %s info ''", NO_SOCKET), 0);
        out = complete(words);
        ck_assert_str_eq(out, "\n");
        free(out);
        free(words);
}
END_TEST

/* bash splits "--state=lo" at "=" (COMP_WORDBREAKS): the words the
 * function sees are "--state", "=", "lo". */
START_TEST(test_completion_equals)
{
        char *out;

        out = complete("plughostctl list --state =");
        ck_assert_str_eq(out, "discovered\nfailed\nloaded\nloading\nquarantined\n");
        free(out);
        out = complete("plughostctl list --state = lo");
        ck_assert_str_eq(out, "loaded\nloading\n");
        free(out);
        /* The socket's path is not the command. */
        out = complete("plughostctl --socket = /S li");
        ck_assert_str_eq(out, "list\n");
        free(out);
        out = complete("plughostctl --socket = /S list --st");
        ck_assert_str_eq(out, "--state\n");
        free(out);
        out = complete("plughostctl --field = version info --js");
        ck_assert_str_eq(out, "--json\n");
        free(out);
        out = complete("plughostctl list --interface = org.example.X --state = f");
        ck_assert_str_eq(out, "failed\n");
        free(out);
        /* Where "=" does not break words, the word is "--state=lo" whole
         * and so are the candidates. */
        out = complete_after("COMP_WORDBREAKS=' ';", "plughostctl list --state=lo");
        ck_assert_str_eq(out, "--state=loaded\n--state=loading\n");
        free(out);
}
END_TEST

START_TEST(test_completion_plugin_names)
{
        char *out, *words;

        ck_assert_int_ge(asprintf(&words, "'%s' --socket '%s' info h", ctl, D.socket), 0);
        out = complete(words);
        ck_assert_str_eq(out, "hello\n");
        free(out);
        free(words);
        /* --socket=PATH, as bash hands it over: "--socket", "=", PATH. */
        ck_assert_int_ge(asprintf(&words, "'%s' --socket = '%s' info h", ctl, D.socket), 0);
        out = complete(words);
        ck_assert_str_eq(out, "hello\n");
        free(out);
        free(words);
        /* plughostctl run as typed: "~/" is the home directory. */
        {
                char *home = tu_tmpdir(), *bin = tu_path(home, "bin"), *prog = tu_path(bin, "plughostctl");
                FILE *f;

                ck_assert_int_eq(mkdir(bin, 0700), 0);
                f = fopen(prog, "w");
                ck_assert_ptr_nonnull(f);
                fprintf(f, "#!/bin/sh\nexec '%s' \"$@\"\n", ctl);
                ck_assert_int_eq(fclose(f), 0);
                ck_assert_int_eq(chmod(prog, 0700), 0);
                ck_assert_int_eq(setenv("HOME", home, 1), 0);
                ck_assert_int_ge(asprintf(&words, "'~/bin/plughostctl' --socket '%s' info h", D.socket), 0);
                out = complete(words);
                ck_assert_str_eq(out, "hello\n");
                free(out);
                free(words);
                free(prog);
                free(bin);
                tu_tmpdir_free(home);
        }
        ck_assert_int_ge(asprintf(&words, "'%s' -s '%s' call ''", ctl, D.socket), 0);
        out = complete(words);
        ck_assert_str_eq(out, "good\nhello\nupper\n");
        free(out);
        free(words);
        /* Every command the binary lists, the completion offers. */
        {
                run_out r;
                const char *cmds[] = { "list", "info", "query", "load", "unload", "call",
                                       "rescan", "status", "monitor", "inspect", "help" };

                ck_assert_int_eq(run(&r, "help", NULL), 0);
                out = complete("plughostctl ''");
                for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
                        char want[64];

                        snprintf(want, sizeof(want), "  %s ", cmds[i]);
                        ck_assert_msg(strstr(r.out, want), "help lacks %s", cmds[i]);
                        snprintf(want, sizeof(want), "%s\n", cmds[i]);
                        ck_assert_msg(strstr(out, want), "completion lacks %s", cmds[i]);
                }
                free(out);
                run_free(&r);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("ctl");
        TCase *cli = tcase_create("cli");
        TCase *daemon = tcase_create("daemon");
        TCase *hostile_tc = tcase_create("hostile");
        TCase *comp = tcase_create("completion");

        /* Each test runs plughostctl (a libtool wrapper) many times: under a
         * loaded make -j check, Check's 4 s default is too tight a ceiling. */
        tcase_add_checked_fixture(cli, setup, NULL);
        tcase_set_timeout(cli, 120);
        tcase_add_test(cli, test_inspect_plugin_table);
        tcase_add_test(cli, test_inspect_json_mixed);
        tcase_add_test(cli, test_inspect_option_after_command);
        tcase_add_test(cli, test_inspect_every_metadata_field);
        tcase_add_test(cli, test_inspect_no_legend);
        tcase_add_test(cli, test_inspect_field);
        tcase_add_test(cli, test_inspect_dashdash);
        tcase_add_test(cli, test_field_before_command);
        tcase_add_test(cli, test_usage_errors);
        tcase_add_test(cli, test_help);
        tcase_add_test(cli, test_messages_prefixed);
        tcase_add_test(cli, test_arguments_validated);
        tcase_add_test(cli, test_connect_failures);
        tcase_add_test(cli, test_json_usage_error);
        suite_add_tcase(s, cli);

        tcase_add_checked_fixture(daemon, daemon_setup, daemon_teardown);
        tcase_set_timeout(daemon, 120);
        tcase_add_test(daemon, test_query);
        tcase_add_test(daemon, test_list_no_legend);
        tcase_add_test(daemon, test_info_field);
        tcase_add_test(daemon, test_monitor_rejected);
        tcase_add_test(daemon, test_info_every_metadata_field);
        tcase_add_test(daemon, test_json_daemon_error);
        tcase_add_test(daemon, test_completion_plugin_names);
        suite_add_tcase(s, daemon);

        tcase_add_checked_fixture(hostile_tc, setup, NULL);
        tcase_set_timeout(hostile_tc, 120);
        tcase_add_test(hostile_tc, test_hostile_not_varlink);
        tcase_add_test(hostile_tc, test_hostile_closed);
        tcase_add_test(hostile_tc, test_hostile_huge);
        tcase_add_test(hostile_tc, test_hostile_deep);
        tcase_add_test(hostile_tc, test_hostile_wrong_types);
        tcase_add_test(hostile_tc, test_hostile_error_text);
        suite_add_tcase(s, hostile_tc);

        tcase_add_checked_fixture(comp, setup, NULL);
        tcase_set_timeout(comp, 120);
        tcase_add_test(comp, test_completion_offline);
        tcase_add_test(comp, test_completion_equals);
        suite_add_tcase(s, comp);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
