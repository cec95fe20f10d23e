/* Helpers of the daemon tests: the real plughostd in a mkdtemp directory,
 * and a small blocking Varlink client with deadlines. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
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

/* Between two connection attempts while the daemon starts. */
#define DU_POLL_MS 5

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

void du_init(du_daemon *d)
{
        memset(d, 0, sizeof(*d));
        d->dir = tu_tmpdir();
        d->plugins = tu_path(d->dir, "plugins");
        d->socket = tu_path(d->dir, "sock");
        d->state = tu_path(d->dir, "state");
        d->config = tu_path(d->dir, "plughostd.conf");
        d->log = tu_path(d->dir, "plughostd.log");
        ck_assert_int_eq(mkdir(d->plugins, 0755), 0);
        du_write_config(d, "");
}

void du_write_config(du_daemon *d, const char *text)
{
        tu_write_file(d->config, text, strlen(text));
}

void du_add_plugin(du_daemon *d, const char *src, const char *name)
{
        char *tmp, *dst = tu_path(d->plugins, name);

        ck_assert_int_ge(asprintf(&tmp, "%s.tmp", dst), 0);
        tu_copy_file(src, tmp);
        ck_assert_int_eq(rename(tmp, dst), 0);
        free(tmp);
        free(dst);
}

/* Prints the daemon's log on stderr, to explain a failure. */
static void du_dump_log(const du_daemon *d)
{
        char buf[4096];
        size_t n;
        FILE *f = fopen(d->log, "re");

        if (!f)
                return;
        fprintf(stderr, "---- %s ----\n", d->log);
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
                fwrite(buf, 1, n, stderr);
        fclose(f);
}

static du_conn *du_try_connect(const du_daemon *d)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        du_conn *c;
        int fd;

        ck_assert_uint_lt(strlen(d->socket), sizeof(sa.sun_path));
        strcpy(sa.sun_path, d->socket);
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

void du_start(du_daemon *d)
{
        const char *builddir = getenv("PH_BUILDDIR");
        char exe[4096];
        long long deadline;
        int status;
        pid_t parent = getpid();

        ck_assert_msg(builddir != NULL, "PH_BUILDDIR is not set (run through make check)");
        snprintf(exe, sizeof(exe), "%s/plughostd", builddir);
        d->pid = fork();
        ck_assert_int_ge(d->pid, 0);
        if (d->pid == 0) {
                int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                /* A failed test exits without its teardown: take the daemon along. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                if (d->child_setup)
                        d->child_setup(d);
                /* exe is libtool's wrapper script: it execs the daemon, same pid. */
                if (d->dirs_from_config)
                        execl(exe, exe, "-s", d->socket, "-S", d->state, "-c", d->config,
                              "-l", "info", (char *)NULL);
                else
                        execl(exe, exe, "-p", d->plugins, "-s", d->socket, "-S", d->state,
                              "-c", d->config, "-l", "info", (char *)NULL);
                _exit(127);
        }
        deadline = now_ms() + DU_TIMEOUT_MS;
        for (;;) {
                du_conn *c = du_try_connect(d);

                if (c) {
                        json_t *reply;

                        du_send(c, "{\"method\":\"io.plughost.Status\"}");
                        reply = du_recv(c);
                        du_close(c);
                        ck_assert_ptr_nonnull(reply);
                        ck_assert_ptr_null(du_error(reply));
                        json_decref(reply);
                        return;
                }
                if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
                        d->pid = 0;
                        du_dump_log(d);
                        ck_abort_msg("plughostd exited during start-up (status 0x%x)", status);
                }
                if (now_ms() > deadline) {
                        du_dump_log(d);
                        ck_abort_msg("plughostd did not open %s in time", d->socket);
                }
                nap_ms(DU_POLL_MS);
        }
}

void du_stop(du_daemon *d)
{
        if (d->pid > 0)
                ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
        du_wait_stop(d);
}

void du_wait_stop(du_daemon *d)
{
        long long deadline = now_ms() + DU_TIMEOUT_MS;
        int status = 0;
        pid_t r = 0;

        if (d->pid > 0) {
                while ((r = waitpid(d->pid, &status, WNOHANG)) == 0 && now_ms() < deadline)
                        nap_ms(DU_POLL_MS);
                if (r == 0)
                        kill(d->pid, SIGKILL), waitpid(d->pid, &status, 0);
                d->pid = 0;
                if (r == 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        du_dump_log(d);
                ck_assert_msg(r != 0, "plughostd did not stop on SIGTERM");
                ck_assert_msg(WIFEXITED(status), "plughostd died of signal %d",
                              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
                ck_assert_msg(WEXITSTATUS(status) == 0, "plughostd exited with %d",
                              WEXITSTATUS(status));
        }
        tu_tmpdir_free(d->dir);
        free(d->plugins);
        free(d->socket);
        free(d->state);
        free(d->config);
        free(d->log);
        memset(d, 0, sizeof(*d));
}

long du_rss_kb(pid_t pid)
{
        char path[64], line[256];
        long kb = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
                        break;
        fclose(f);
        ck_assert_int_gt(kb, 0);
        return kb;
}

du_conn *du_connect(const du_daemon *d)
{
        du_conn *c = du_try_connect(d);

        ck_assert_msg(c != NULL, "connect %s: %s", d->socket, strerror(errno));
        return c;
}

void du_close(du_conn *c)
{
        if (!c)
                return;
        close(c->fd);
        free(c->buf);
        free(c);
}

bool du_send_raw(du_conn *c, const void *data, size_t n)
{
        const char *p = data;

        while (n > 0) {
                ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
                        return false;
                ck_assert_msg(w > 0, "send: %s", strerror(errno));
                p += w;
                n -= (size_t)w;
        }
        return true;
}

void du_send(du_conn *c, const char *json)
{
        ck_assert(du_send_raw(c, json, strlen(json) + 1));
}

/* Reads what is there within ms; false on EOF or a reset. */
static bool du_fill(du_conn *c, int ms)
{
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        ssize_t n;
        int r;

        do
                r = poll(&pfd, 1, ms);
        while (r < 0 && errno == EINTR);
        ck_assert_int_ge(r, 0);
        if (r == 0)
                return true;
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

json_t *du_recv(du_conn *c)
{
        long long deadline = now_ms() + DU_TIMEOUT_MS;
        json_error_t err;
        json_t *reply;
        char *nul;
        size_t len;

        while (!(nul = c->len ? memchr(c->buf, '\0', c->len) : NULL)) {
                long long left = deadline - now_ms();

                ck_assert_msg(left > 0, "no reply within %d ms", DU_TIMEOUT_MS);
                if (!du_fill(c, (int)left))
                        return NULL;
        }
        len = (size_t)(nul - c->buf);
        reply = json_loadb(c->buf, len, 0, &err);
        ck_assert_msg(json_is_object(reply), "reply is not a JSON object: %s: %.200s", err.text,
                      c->buf);
        memmove(c->buf, nul + 1, c->len - len - 1);
        c->len -= len + 1;
        return reply;
}

bool du_quiet(du_conn *c, int ms)
{
        size_t before = c->len;

        return before == 0 && du_fill(c, ms) && c->len == 0;
}

json_t *du_request(du_daemon *d, const char *json)
{
        du_conn *c = du_connect(d);
        json_t *reply;

        du_send(c, json);
        reply = du_recv(c);
        du_close(c);
        ck_assert_msg(reply != NULL, "the daemon hung up on %.200s", json);
        return reply;
}

json_t *du_requestf(du_daemon *d, const char *fmt, ...)
{
        char *json;
        json_t *reply;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&json, fmt, ap);
        va_end(ap);
        ck_assert_int_ge(n, 0);
        reply = du_request(d, json);
        free(json);
        return reply;
}

const char *du_error(json_t *reply)
{
        return json_string_value(json_object_get(reply, "error"));
}

json_t *du_params(json_t *reply)
{
        json_t *p = json_object_get(reply, "parameters");

        ck_assert_msg(json_is_object(p), "reply without parameters");
        return p;
}

/* Follows a dotted path through objects. */
static json_t *du_get(json_t *obj, const char *path)
{
        char key[256];

        while (obj && *path) {
                size_t n = strcspn(path, ".");

                ck_assert_uint_lt(n, sizeof(key));
                memcpy(key, path, n);
                key[n] = '\0';
                obj = json_object_get(obj, key);
                path += n + (path[n] == '.');
        }
        return obj;
}

const char *du_str(json_t *obj, const char *path)
{
        json_t *v = du_get(obj, path);

        ck_assert_msg(json_is_string(v), "%s is not a string", path);
        return json_string_value(v);
}

long long du_int(json_t *obj, const char *path)
{
        json_t *v = du_get(obj, path);

        ck_assert_msg(json_is_integer(v), "%s is not an integer", path);
        return (long long)json_integer_value(v);
}

void du_assert_serving(du_daemon *d)
{
        json_t *reply = du_request(d, "{\"method\":\"io.plughost.Status\"}");

        ck_assert_ptr_null(du_error(reply));
        ck_assert_str_eq(du_str(du_params(reply), "version"), PACKAGE_VERSION);
        json_decref(reply);
}

void du_assert_error(du_daemon *d, json_t *reply, const char *name)
{
        char *text = json_dumps(reply, JSON_COMPACT);

        ck_assert_msg(du_error(reply) && strcmp(du_error(reply), name) == 0,
                      "expected %s, got %.300s", name, text);
        free(text);
        json_decref(reply);
        du_assert_serving(d);
}
