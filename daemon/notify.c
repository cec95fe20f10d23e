/* systemd integration: readiness, status, watchdog, reload and stop
 * notifications (sd_notify), all harmless without $NOTIFY_SOCKET. */
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon.h"
#include "lifecycle.h"
#include "log.h"
#include "ratelimit.h"

/* How often STATUS= is refreshed while nothing else changes. */
#define NOTIFY_STATUS_MS 5000

static void notify_status_text(ph_daemon *d, char *buf, size_t size)
{
        size_t rejected, n = ph_registry_count(d->reg, &rejected), loaded = ph_life_loaded_count(d);

        snprintf(buf, size, "STATUS=%zu plugins (%zu loaded, %zu rejected), %u clients", n, loaded,
                 rejected, d->server ? ph_server_clients(d->server) : 0);
}

void ph_notify_status(ph_daemon *d)
{
        char status[256];

        if (!d->ready || d->stopping)
                return;
        notify_status_text(d, status, sizeof(status));
        sd_notify(0, status);
}

static void notify_timer_cb(uv_timer_t *t)
{
        ph_daemon *d = t->data;

        ph_notify_status(d);
        /* Summaries of refusals not logged (the server's have a timer). */
        ph_ratelimit_flush(d->rl_denied, uv_now(d->loop));
        ph_ratelimit_flush(d->rl_rejected, uv_now(d->loop));
}

static void watchdog_cb(uv_timer_t *t)
{
        (void)t;
        /* From a loop timer: a stuck loop stops the pings. */
        sd_notify(0, "WATCHDOG=1");
}

void ph_notify_ready(ph_daemon *d)
{
        ph_notify_reloaded(d);
        uv_timer_start(&d->status_timer, notify_timer_cb, NOTIFY_STATUS_MS, NOTIFY_STATUS_MS);
}

void ph_notify_start(ph_daemon *d)
{
        uint64_t usec = 0;

        uv_timer_init(d->loop, &d->status_timer);
        d->status_timer.data = d;
        uv_timer_init(d->loop, &d->watchdog_timer);
        d->watchdog_timer.data = d;
        if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
                uint64_t ms = usec / 2000;      /* half the interval */

                if (ms == 0)
                        ms = 1;
                log_info("watchdog every %llu ms", (unsigned long long)ms);
                uv_timer_start(&d->watchdog_timer, watchdog_cb, ms, ms);
        }
}

void ph_notify_reloading(void)
{
        struct timespec ts;
        char msg[128];

        /* systemd 253+ wants MONOTONIC_USEC= with RELOADING=1, in one message. */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
        sd_notify(0, msg);
}

void ph_notify_reloaded(ph_daemon *d)
{
        char status[256], msg[300];

        notify_status_text(d, status, sizeof(status));
        snprintf(msg, sizeof(msg), "READY=1\n%s", status);
        sd_notify(0, msg);
}

void ph_notify_stopping(void)
{
        sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void ph_notify_extend(uint64_t usec)
{
        sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
}

void ph_notify_stop(ph_daemon *d)
{
        uv_timer_stop(&d->status_timer);
        uv_timer_stop(&d->watchdog_timer);
}
