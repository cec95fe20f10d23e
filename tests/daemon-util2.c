/* More helpers of the daemon tests: start from a configuration file, crash
 * and restart, Monitor events and polling with deadlines. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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

#include "daemon-util2.h"
#include "testutil.h"

/* Between two polls of the daemon. */
#define DU2_POLL_MS 5

long long du2_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void du2_nap_ms(long ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

void du2_start_from_config(du_daemon *d)
{
        d->dirs_from_config = true;
        du_start(d);
}

int du2_wait_exit(du_daemon *d, int ms)
{
        long long deadline = du2_now_ms() + ms;
        int status = 0;
        pid_t r;

        ck_assert_int_gt(d->pid, 0);
        while ((r = waitpid(d->pid, &status, WNOHANG)) == 0 && du2_now_ms() < deadline)
                du2_nap_ms(DU2_POLL_MS);
        ck_assert_msg(r == d->pid, "plughostd is still running after %d ms", ms);
        d->pid = 0;
        return status;
}

void du2_kill9(du_daemon *d)
{
        int status;

        ck_assert_int_gt(d->pid, 0);
        ck_assert_int_eq(kill(d->pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(d->pid, &status, 0), d->pid);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        d->pid = 0;
}

du_conn *du2_monitor(du_daemon *d)
{
        du_conn *m = du_connect(d);
        json_t *r;

        du_send(m, "{\"method\":\"io.plughost.Monitor\",\"more\":true}");
        r = du_recv(m);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_null(du_error(r));
        json_decref(r);
        return m;
}

/* Waits until c has a complete message or bytes to read, before the
 * deadline; false on timeout. */
static bool du2_readable(du_conn *c, long long deadline_ms)
{
        for (;;) {
                struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
                long long left = deadline_ms - du2_now_ms();
                int r;

                if (c->len && memchr(c->buf, '\0', c->len))
                        return true;
                if (left <= 0)
                        return false;
                r = poll(&pfd, 1, (int)left);
                if (r < 0 && errno == EINTR)
                        continue;
                ck_assert_int_ge(r, 0);
                if (r > 0)
                        return true;    /* du_recv reads it (or sees the end) */
        }
}

json_t *du2_wait_event(du_conn *c, const char *kind, const char *name, long long deadline_ms)
{
        for (;;) {
                json_t *r, *ev;

                if (!du2_readable(c, deadline_ms))
                        return NULL;
                r = du_recv(c);
                if (!r)
                        return NULL;
                ck_assert_ptr_null(du_error(r));
                ev = json_object_get(du_params(r), "event");
                ck_assert(json_is_object(ev));
                if ((!kind || strcmp(du_str(ev, "kind"), kind) == 0) &&
                    (!name || strcmp(du_str(ev, "name"), name) == 0)) {
                        json_incref(ev);
                        json_decref(r);
                        return ev;
                }
                json_decref(r);
        }
}

static json_t *du2_params_of(json_t *r)
{
        json_t *p;
        char *text = json_dumps(r, JSON_COMPACT);

        ck_assert_msg(du_error(r) == NULL, "error reply: %.300s", text);
        free(text);
        p = du_params(r);
        json_incref(p);
        json_decref(r);
        return p;
}

json_t *du2_list(du_daemon *d)
{
        return du2_params_of(du_request(d, "{\"method\":\"io.plughost.List\"}"));
}

json_t *du2_info(du_daemon *d, const char *name)
{
        json_t *r = du_requestf(d, "{\"method\":\"io.plughost.Info\",\"parameters\":{\"name\":\"%s\"}}",
                                name);

        if (du_error(r) && strcmp(du_error(r), "io.plughost.NoSuchPlugin") == 0) {
                json_decref(r);
                return NULL;
        }
        return du2_params_of(r);
}

long long du2_status_int(du_daemon *d, const char *key)
{
        json_t *p = du2_params_of(du_request(d, "{\"method\":\"io.plughost.Status\"}"));
        long long v = du_int(p, key);

        json_decref(p);
        return v;
}

json_t *du2_find(json_t *list, const char *name)
{
        size_t i;
        json_t *p;

        json_array_foreach(json_object_get(list, "plugins"), i, p)
                if (strcmp(du_str(p, "name"), name) == 0)
                        return p;
        return NULL;
}

bool du2_rejected_has(json_t *list, const char *base)
{
        size_t i, n = strlen(base);
        json_t *f;

        json_array_foreach(json_object_get(list, "rejected"), i, f) {
                const char *path = du_str(f, "file");
                size_t m = strlen(path);

                if (m > n && path[m - n - 1] == '/' && strcmp(path + m - n, base) == 0)
                        return true;
        }
        return false;
}

bool du2_wait_state(du_daemon *d, const char *name, const char *state, int ms)
{
        long long deadline = du2_now_ms() + ms;

        for (;;) {
                json_t *info = du2_info(d, name);
                bool done = state ? info && strcmp(du_str(info, "plugin.state"), state) == 0 : !info;

                json_decref(info);
                if (done)
                        return true;
                if (du2_now_ms() > deadline)
                        return false;
                du2_nap_ms(DU2_POLL_MS);
        }
}

json_t *du2_call(du_conn *c, const char *name, const char *method)
{
        char *req;
        json_t *r;

        ck_assert_int_ge(asprintf(&req, "{\"method\":\"io.plughost.Call\",\"parameters\":"
                                        "{\"name\":\"%s\",\"method\":\"%s\"}}", name, method), 0);
        du_send(c, req);
        free(req);
        r = du_recv(c);
        ck_assert_msg(r != NULL, "the daemon hung up on a call of %s.%s", name, method);
        return r;
}

bool du2_log_wait(du_daemon *d, const char *text, int ms)
{
        long long deadline = du2_now_ms() + ms;

        for (;;) {
                size_t size;
                unsigned char *log = tu_read_file(d->log, &size);
                bool found;

                log[size] = '\0';
                found = strstr((char *)log, text) != NULL;
                free(log);
                if (found)
                        return true;
                if (du2_now_ms() > deadline)
                        return false;
                du2_nap_ms(DU2_POLL_MS);
        }
}

void du2_copy_over(const char *src, const char *dst)
{
        char *tmp;

        ck_assert_int_ge(asprintf(&tmp, "%s.tmp", dst), 0);
        tu_copy_file(src, tmp);
        ck_assert_int_eq(rename(tmp, dst), 0);
        free(tmp);
}

void du2_copy_renamed(const char *src, const char *old_name, const char *new_name, const char *dst)
{
        char old_key[128], new_key[128];
        size_t size, n;
        unsigned char *data = tu_read_file(src, &size), *at = NULL;

        ck_assert_uint_eq(strlen(old_name), strlen(new_name));
        snprintf(old_key, sizeof(old_key), "\"name\":\"%s\"", old_name);
        snprintf(new_key, sizeof(new_key), "\"name\":\"%s\"", new_name);
        n = strlen(old_key);
        for (size_t i = 0; i + n <= size; i++)
                if (memcmp(data + i, old_key, n) == 0) {
                        ck_assert_msg(at == NULL, "%s names itself twice", src);
                        at = data + i;
                }
        ck_assert_msg(at != NULL, "no %s in %s", old_key, src);
        memcpy(at, new_key, n);
        tu_write_file(dst, data, size);
        free(data);
}
