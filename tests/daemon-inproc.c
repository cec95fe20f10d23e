/* plughostd's modules inside the test process (see daemon-inproc.h):
 * daemon_start and the SIGTERM path of daemon/main.c, without signals,
 * systemd, the watcher or the listening-socket checks. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon-inproc.h"
#include "lifecycle.h"
#include "listing.h"
#include "log.h"
#include "ratelimit.h"
#include "testutil.h"

#define IP_POOL_QUEUE_MAX 4096

static bool clock_frozen;
static uint64_t clock_value;

static uint64_t clock_real(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t ph_now_ms(void)
{
        return clock_frozen ? clock_value : clock_real();
}

void ip_clock_freeze(bool freeze)
{
        clock_value = clock_real();
        clock_frozen = freeze;
}

void ip_init(ip_daemon *h)
{
        memset(h, 0, sizeof(*h));
        h->dir = tu_tmpdir();
        h->plugins = tu_path(h->dir, "plugins");
        h->odd = tu_path(h->dir, "odd\x01\xff\xe2\x82-dir");
        h->config = tu_path(h->dir, "plughostd.conf");
        h->socket = tu_path(h->dir, "sock");
        h->state = tu_path(h->dir, "state");
        ck_assert_int_eq(mkdir(h->plugins, 0755), 0);
        ck_assert_int_eq(mkdir(h->odd, 0755), 0);
        ck_assert_int_eq(mkdir(h->state, 0700), 0);
        tu_write_file(h->config, "", 0);
}

void ip_write_config(ip_daemon *h, const char *text)
{
        tu_write_file(h->config, text, strlen(text));
}

static ph_config *config_build(ip_daemon *h)
{
        ph_config *cfg;
        char err[1024] = "";
        bool replaced = false;

        ck_assert_int_eq(ph_config_new(&cfg), 0);
        ck_assert_msg(ph_config_load(cfg, h->config, true, err, sizeof(err)) == 0, "config: %s", err);
        ck_assert_int_eq(ph_config_add_dir(cfg, h->plugins, &replaced), 0);
        ck_assert_int_eq(ph_config_add_dir(cfg, h->odd, &replaced), 0);
        free(cfg->socket_path);
        free(cfg->state_dir);
        cfg->socket_path = strdup(h->socket);
        cfg->state_dir = strdup(h->state);
        ck_assert(cfg->socket_path && cfg->state_dir);
        ph_config_resolve(cfg, 1024);
        ck_assert_msg(ph_config_check(cfg, err, sizeof(err)) == 0, "config: %s", err);
        return cfg;
}

static void apply_hook(void *userdata, unsigned dir_index, const char *dir, bool full,
                       ph_scanned *items, size_t n_items, ph_apply_counts *counts)
{
        ph_daemon *d = userdata;

        ph_registry_apply(d->reg, dir_index, dir, full, items, n_items, counts);
}

static void scan_done(void *userdata, const ph_scan_result *res)
{
        int *done = userdata;

        *done = res->error < 0 ? res->error : 1;
}

/* Turns the loop until *flag is set. */
static void pump_until(ip_daemon *h, const int *flag)
{
        uint64_t end = clock_real() + IP_TIMEOUT_MS;

        while (!*flag) {
                ck_assert_msg(clock_real() < end, "the loop did not finish in time");
                uv_run(&h->loop, UV_RUN_NOWAIT);
                if (!*flag)
                        poll(NULL, 0, 1);
        }
}

void ip_pump(ip_daemon *h, int ms)
{
        uint64_t end = clock_real() + (uint64_t)ms;

        do {
                uv_run(&h->loop, UV_RUN_NOWAIT);
                poll(NULL, 0, 1);
        } while (clock_real() < end);
}

void ip_rescan(ip_daemon *h)
{
        int done = 0;

        ck_assert_int_eq(ph_scan_all(h->d.scanner, scan_done, &done), 0);
        pump_until(h, &done);
        ck_assert_int_eq(done, 1);
}

void ip_start(ip_daemon *h, ph_server_dispatch_fn dispatch)
{
        ph_daemon *d = &h->d;
        ph_cache_config cc = { .garbage_cb = ph_life_garbage_cb, .init_cb = ph_ops_init_cb,
                               .check_cb = ph_ops_check_cb, .fini_cb = ph_life_fini_cb,
                               .userdata = d };
        ph_scanner_hooks sh = { .apply = apply_hook, .userdata = d };

        ph_log_init(PH_LOG_WARNING);
        ck_assert_int_eq(uv_loop_init(&h->loop), 0);
        d->loop = &h->loop;
        d->cfg = config_build(h);
        d->started_ms = ph_now_ms();
        ck_assert_int_eq(ph_cache_new(&cc, &d->cache), 0);
        ck_assert_int_eq(ph_registry_new(ph_life_registry_event, ph_life_held, ph_life_registry_rejected,
                                         d, &d->reg), 0);
        ck_assert_int_eq(ph_pool_new(d->loop, d->cfg->workers, IP_POOL_QUEUE_MAX, &d->pool), 0);
        ck_assert_int_eq(ph_ops_new(d->loop, d->pool, d, &d->ops), 0);
        ck_assert_int_eq(ph_life_reaper_init(d), 0);
        ck_assert_int_eq(ph_scanner_new(d->loop, d->cfg, &sh, &d->scanner), 0);
        ph_ops_set_config(d->ops, d->cfg);
        d->rl_denied = ph_ratelimit_new("refused requests", 5, 50, 10000);
        d->rl_rejected = ph_ratelimit_new("refused plugin files", 20, 100, 10000);
        ck_assert_int_eq(ph_server_new(d->loop, d->cfg, dispatch, d, &d->server), 0);
        ck_assert_int_eq(ph_state_open(d->cfg->state_dir, &d->state), 0);
        ip_rescan(h);
        d->ready = true;
        ph_life_restore(d);
        ph_server_start(d->server);
        h->started = true;
}

static void close_walk_cb(uv_handle_t *handle, void *arg)
{
        (void)arg;
        if (!uv_is_closing(handle))
                uv_close(handle, NULL);
}

void ip_stop(ip_daemon *h)
{
        ph_daemon *d = &h->d;
        uint64_t end = clock_real() + IP_TIMEOUT_MS;

        if (h->started) {
                d->stopping = true;
                ph_server_stop(d->server);
                ph_scanner_stop(d->scanner);
                ph_life_stop_begin(d);
                while ((ph_life_finalising(d) || ph_pool_busy(d->pool) > 0 ||
                        ph_ops_running(d->ops) > 0 || ph_scanner_busy(d->scanner)) &&
                       clock_real() < end)
                        ip_pump(h, 5);
                ph_life_stop_end(d);
                ph_server_free(d->server);
                d->server = NULL;
                ph_life_shutdown(d);
                ph_listing_free(d);
                ph_metrics_free(d);
                ph_registry_free(d->reg);
                ph_cache_free(d->cache);
                ph_pool_free(d->pool);
                ph_scanner_free(d->scanner);
                ph_state_free(d->state);
                ph_ratelimit_free(d->rl_denied);
                ph_ratelimit_free(d->rl_rejected);
                ph_ops_free(d->ops);
                uv_walk(&h->loop, close_walk_cb, NULL);
                uv_run(&h->loop, UV_RUN_DEFAULT);
                uv_loop_close(&h->loop);
                ph_config_unref(d->cfg);
                h->started = false;
        }
        tu_tmpdir_free(h->dir);
        free(h->plugins);
        free(h->odd);
        free(h->config);
        free(h->socket);
        free(h->state);
        h->dir = NULL;
}

ip_conn *ip_connect(ip_daemon *h)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ip_conn *c = calloc(1, sizeof(*c));

        ck_assert_ptr_nonnull(c);
        ck_assert_uint_lt(strlen(h->socket), sizeof(sa.sun_path));
        strcpy(sa.sun_path, h->socket);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(c->fd, 0);
        ck_assert_msg(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
                      strerror(errno));
        ck_assert_int_eq(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
        return c;
}

void ip_close(ip_conn *c)
{
        if (!c)
                return;
        close(c->fd);
        free(c->buf);
        free(c);
}

void ip_send(ip_conn *c, const char *json)
{
        size_t n = strlen(json) + 1, off = 0;

        /* Small requests: the socket takes them whole, or nearly. */
        while (off < n) {
                ssize_t k = write(c->fd, json + off, n - off);

                if (k < 0 && errno == EAGAIN) {
                        poll(&(struct pollfd){ .fd = c->fd, .events = POLLOUT }, 1, 10);
                        continue;
                }
                ck_assert_msg(k > 0, "write: %s", strerror(errno));
                off += (size_t)k;
        }
}

/* The first whole message in c's buffer, taken out of it, or NULL. */
static char *take_message(ip_conn *c)
{
        char *nul = c->len ? memchr(c->buf, '\0', c->len) : NULL, *msg;
        size_t n;

        if (!nul)
                return NULL;
        n = (size_t)(nul - c->buf);
        msg = strndup(c->buf, n);
        ck_assert_ptr_nonnull(msg);
        memmove(c->buf, nul + 1, c->len - n - 1);
        c->len -= n + 1;
        return msg;
}

char *ip_recv(ip_daemon *h, ip_conn *c)
{
        uint64_t end = clock_real() + IP_TIMEOUT_MS;
        char *msg;

        while (!(msg = take_message(c))) {
                ssize_t k;

                ck_assert_msg(clock_real() < end, "no reply in %d ms", IP_TIMEOUT_MS);
                uv_run(&h->loop, UV_RUN_NOWAIT);
                poll(&(struct pollfd){ .fd = c->fd, .events = POLLIN }, 1, 1);
                if (c->cap - c->len < 65536) {
                        c->cap = c->cap ? c->cap * 2 : 131072;
                        c->buf = realloc(c->buf, c->cap);
                        ck_assert_ptr_nonnull(c->buf);
                }
                k = read(c->fd, c->buf + c->len, c->cap - c->len);
                if (k < 0 && errno == EAGAIN)
                        continue;
                ck_assert_msg(k > 0, "the daemon closed the connection (%s)",
                              k < 0 ? strerror(errno) : "EOF");
                c->len += (size_t)k;
        }
        return msg;
}

char *ip_request(ip_daemon *h, const char *json)
{
        ip_conn *c = ip_connect(h);
        char *reply;

        ip_send(c, json);
        reply = ip_recv(h, c);
        ip_close(c);
        return reply;
}
