/* systemd integration of plughostd (daemon/notify.c, socket activation in
 * daemon/server.c) against the real daemon: an activator passes a listening
 * socket named "varlink" and a NOTIFY_SOCKET bound here, and the test reads
 * what the daemon tells systemd. Also checks the units with systemd-analyze. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define WAIT_MS 20000

static char *tmp;

static void setup(void)
{
        tmp = tu_tmpdir();
}

static void teardown(void)
{
        tu_tmpdir_free(tmp);
}

static int bind_unix(int type, const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        if (type == SOCK_STREAM)
                ck_assert_int_eq(listen(fd, 16), 0);
        return fd;
}

/* Reads notify datagrams until one contains want; returns that message. */
static char *notify_wait(int nfd, const char *want)
{
        static char msg[4096];
        struct pollfd p = { .fd = nfd, .events = POLLIN };

        for (;;) {
                ssize_t n;

                ck_assert_msg(poll(&p, 1, WAIT_MS) == 1, "no '%s' from the daemon", want);
                n = recv(nfd, msg, sizeof(msg) - 1, 0);
                ck_assert_int_gt(n, 0);
                msg[n] = '\0';
                if (strstr(msg, want))
                        return msg;
        }
}

/* Starts plughostd as socket activation would: listener on fd 3. */
static pid_t start_activated(int listen_fd, const char *notify, const char *watchdog_usec)
{
        char plugins[4096], state[4096], daemon[4096];
        pid_t pid;

        snprintf(plugins, sizeof(plugins), "%s/plugins", tmp);
        snprintf(state, sizeof(state), "%s/state", tmp);
        snprintf(daemon, sizeof(daemon), "%s/.libs/plughostd", getenv("PH_BUILDDIR"));
        mkdir(plugins, 0755);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char pidbuf[32], lib[4096];

                if (dup2(listen_fd, 3) < 0)
                        _exit(126);
                snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
                snprintf(lib, sizeof(lib), "%s/lib/.libs", getenv("PH_BUILDDIR"));
                setenv("LD_LIBRARY_PATH", lib, 1);
                setenv("LISTEN_PID", pidbuf, 1);
                setenv("LISTEN_FDS", "1", 1);
                setenv("LISTEN_FDNAMES", "varlink", 1);
                setenv("NOTIFY_SOCKET", notify, 1);
                if (watchdog_usec)
                        setenv("WATCHDOG_USEC", watchdog_usec, 1);
                execl(daemon, daemon, "-p", plugins, "-S", state, "-s", "/nonexistent/unused.sock",
                      (char *)NULL);
                _exit(127);
        }
        return pid;
}

static bool status_answers(const char *sock_path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[4096];
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const char req[] = "{\"method\":\"io.plughost.Status\"}";
        ssize_t n;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            write(fd, req, sizeof(req)) != (ssize_t)sizeof(req)) {
                close(fd);
                return false;
        }
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        return strstr(buf, "\"plugins\"") != NULL;
}

START_TEST(test_notify_lifecycle_and_activation)
{
        char sock[4096], notify[4096], *msg;
        int lfd, nfd, status;
        struct stat st;
        pid_t pid;

        snprintf(sock, sizeof(sock), "%s/io.plughost", tmp);
        snprintf(notify, sizeof(notify), "%s/notify", tmp);
        lfd = bind_unix(SOCK_STREAM, sock);
        nfd = bind_unix(SOCK_DGRAM, notify);
        pid = start_activated(lfd, notify, "200000");
        close(lfd);

        /* READY=1 comes with a STATUS= summary, and then the socket answers. */
        msg = notify_wait(nfd, "READY=1");
        ck_assert_ptr_nonnull(strstr(msg, "STATUS="));
        ck_assert(status_answers(sock));
        /* The watchdog is pinged at half of WATCHDOG_USEC. */
        notify_wait(nfd, "WATCHDOG=1");
        notify_wait(nfd, "WATCHDOG=1");

        /* SIGHUP: RELOADING=1 with MONOTONIC_USEC= in one message, then READY=1. */
        ck_assert_int_eq(kill(pid, SIGHUP), 0);
        msg = notify_wait(nfd, "RELOADING=1");
        ck_assert_ptr_nonnull(strstr(msg, "MONOTONIC_USEC="));
        notify_wait(nfd, "READY=1");
        ck_assert(status_answers(sock));

        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        notify_wait(nfd, "STOPPING=1");
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        /* The inherited socket belongs to systemd: it is still there. */
        ck_assert_int_eq(lstat(sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        close(nfd);
}
END_TEST

/* Without WATCHDOG_USEC there are no pings. */
START_TEST(test_no_watchdog_unless_asked)
{
        char sock[4096], notify[4096], buf[512];
        struct pollfd p;
        int lfd, nfd, status;
        pid_t pid;
        uint64_t end;
        struct timespec ts;

        snprintf(sock, sizeof(sock), "%s/io.plughost", tmp);
        snprintf(notify, sizeof(notify), "%s/notify", tmp);
        lfd = bind_unix(SOCK_STREAM, sock);
        nfd = bind_unix(SOCK_DGRAM, notify);
        pid = start_activated(lfd, notify, NULL);
        close(lfd);
        notify_wait(nfd, "READY=1");
        clock_gettime(CLOCK_MONOTONIC, &ts);
        end = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 600;
        p = (struct pollfd){ .fd = nfd, .events = POLLIN };
        for (;;) {
                uint64_t now;

                clock_gettime(CLOCK_MONOTONIC, &ts);
                now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
                if (now >= end || poll(&p, 1, (int)(end - now)) <= 0)
                        break;
                ssize_t n = recv(nfd, buf, sizeof(buf) - 1, 0);
                ck_assert_int_gt(n, 0);
                buf[n] = '\0';
                ck_assert_msg(!strstr(buf, "WATCHDOG=1"), "unexpected watchdog ping");
        }
        kill(pid, SIGTERM);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        close(nfd);
}
END_TEST

/* Activation without a descriptor named varlink is refused at start. */
START_TEST(test_activation_needs_varlink_name)
{
        char sock[4096], notify[4096], plugins[4096], daemon[4096];
        int lfd, status;
        pid_t pid;

        snprintf(sock, sizeof(sock), "%s/io.plughost", tmp);
        snprintf(notify, sizeof(notify), "%s/notify", tmp);
        snprintf(plugins, sizeof(plugins), "%s", tmp);
        snprintf(daemon, sizeof(daemon), "%s/.libs/plughostd", getenv("PH_BUILDDIR"));
        lfd = bind_unix(SOCK_STREAM, sock);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char pidbuf[32], lib[4096];

                dup2(lfd, 3);
                snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
                snprintf(lib, sizeof(lib), "%s/lib/.libs", getenv("PH_BUILDDIR"));
                setenv("LD_LIBRARY_PATH", lib, 1);
                setenv("LISTEN_PID", pidbuf, 1);
                setenv("LISTEN_FDS", "1", 1);
                setenv("LISTEN_FDNAMES", "other", 1);
                execl(daemon, daemon, "-p", plugins, "-S", plugins, (char *)NULL);
                _exit(127);
        }
        close(lfd);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_ne(WEXITSTATUS(status), 0);
}
END_TEST

/* Runs a shell command; returns its exit status and its stderr. */
static int run_sh(const char *cmd, char **ret_stderr)
{
        char *argv[] = { "/bin/sh", "-c", NULL, NULL };
        char *full;
        int r;

        ck_assert_int_ge(asprintf(&full, "%s 2>&1 1>/dev/null", cmd), 0);
        argv[2] = full;
        r = tu_run(argv, ret_stderr);
        free(full);
        return r;
}

/* The units as make install writes them, with ExecStart= pointing at this
 * build, pass systemd-analyze verify without a single warning; the man pages
 * they name are found in a MANPATH built from docs/man. */
START_TEST(test_units_verify_clean)
{
        const char *b = getenv("PH_BUILDDIR"), *s = getenv("PH_SRCDIR");
        char *cmd, *out;

        ck_assert_ptr_nonnull(b);
        ck_assert_ptr_nonnull(s);
        ck_assert_int_ge(asprintf(&cmd,
                "set -e; cd %s; mkdir -p man/man1 man/man8 units; "
                "cp %s/docs/man/plughostctl.1 man/man1/; cp %s/docs/man/plughostd.8 man/man8/; "
                "sed 's|^ExecStart=.*|ExecStart=%s/.libs/plughostd|' %s/systemd/plughostd.service "
                "> units/plughostd.service; cp %s/systemd/plughostd.socket units/; "
                "MANPATH=%s/man systemd-analyze verify units/plughostd.socket units/plughostd.service",
                tmp, s, s, b, b, s, tmp), 0);
        ck_assert_int_eq(run_sh(cmd, &out), 0);
        ck_assert_msg(out[0] == '\0', "systemd-analyze verify said: %s", out);
        free(out);
        free(cmd);
}
END_TEST

START_TEST(test_service_exposure)
{
        const char *b = getenv("PH_BUILDDIR");
        char *cmd, *out, *argv[] = { "/bin/sh", "-c", NULL, NULL };
        const char *at;
        double level;

        ck_assert_int_ge(asprintf(&cmd, "systemd-analyze security --offline=yes %s/systemd/plughostd.service "
                                        "2>&1 | grep 'Overall exposure level'", b), 0);
        argv[2] = cmd;
        ck_assert_int_eq(tu_run(argv, &out), 0);
        at = strstr(out, ": ");
        ck_assert_ptr_nonnull(at);
        level = strtod(at + 2, NULL);
        ck_assert_msg(level > 0 && level <= 2.0, "exposure %.1f (%s)", level, out);
        free(out);
        free(cmd);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("systemd");
        TCase *tc = tcase_create("systemd");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_notify_lifecycle_and_activation);
        tcase_add_test(tc, test_no_watchdog_unless_asked);
        tcase_add_test(tc, test_activation_needs_varlink_name);
        tcase_add_test(tc, test_units_verify_clean);
        tcase_add_test(tc, test_service_exposure);
        suite_add_tcase(s, tc);
        return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
