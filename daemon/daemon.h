/* plughostd's state, owned by the loop thread: the modules main.c wires
 * together. Each module's header says what it does; this struct only holds
 * them. */
#ifndef PH_DAEMON_H
#define PH_DAEMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "jw.h"
#include "metrics.h"
#include "ops.h"
#include "plughost/plughost.h"
#include "pool.h"
#include "registry.h"
#include "scan.h"
#include "server.h"
#include "state.h"
#include "watch.h"

typedef struct ph_daemon_counters {
        uint64_t calls, calls_failed, loads, load_failures, unloads;
        uint64_t in_flight;             /* calls running now */
} ph_daemon_counters;

typedef struct ph_daemon {
        uv_loop_t *loop;
        ph_config *cfg;                 /* the current configuration (a reference) */
        ph_cache *cache;
        ph_registry *reg;
        ph_pool *pool;
        ph_ops *ops;
        ph_server *server;
        ph_scanner *scanner;
        ph_watch *watch;
        ph_state *state;
        struct ph_rank_index *ranks;    /* Query's index (listing.c) */
        struct ph_ratelimit *rl_denied; /* PermissionDenied log lines */
        struct ph_ratelimit *rl_rejected; /* refused-file log lines, by owner */
        uint64_t started_ms;
        bool ready;                     /* first scan done */
        bool stopping;
        ph_daemon_counters counters;
        ph_latency latency;             /* calls by duration (lifecycle.c counts, metrics.c shows) */
        ph_metrics_kept metrics;        /* a costly Metrics reply, reused for a second */
        size_t n_loaded;                /* plugins in state loaded (lifecycle.c) */
        /* Finalising retired instances (lifecycle.c). */
        uv_async_t reap_async;
        atomic_bool reap_queued;        /* a reap job waits for a thread */
        atomic_bool garbage;            /* instances to finalise since a reap began */
        unsigned reaps_running;         /* reap jobs submitted, not yet done */
        struct ph_signals *signals;     /* SIGTERM, SIGINT, SIGHUP (signals.c) */
        uv_timer_t listen_timer;        /* the listening socket is still ours */
        uv_timer_t stop_timer;
        uv_timer_t status_timer, watchdog_timer;
} ph_daemon;

/* ---- notify.c: systemd notifications ---- */

void ph_notify_start(ph_daemon *d);             /* watchdog timer, if asked for */
void ph_notify_ready(ph_daemon *d);             /* READY=1 + STATUS= */
void ph_notify_status(ph_daemon *d);
void ph_notify_reloading(void);                 /* RELOADING=1 + MONOTONIC_USEC= */
void ph_notify_reloaded(ph_daemon *d);          /* READY=1 again */
void ph_notify_stopping(void);
void ph_notify_extend(uint64_t usec);           /* EXTEND_TIMEOUT_USEC= */
void ph_notify_stop(ph_daemon *d);

/* ---- methods.c: io.plughost and org.varlink.service ---- */

/* The server's dispatch callback (userdata: the daemon). */
void ph_methods_dispatch(void *userdata, ph_conn *c, struct ph_request *req, ph_reply *r);

/* ---- plugin-json.c: what clients see of a plugin ---- */

/* A plugin as an object (Plugin in docs/io.plughost.varlink). Its
 * metadata-derived members are rendered once per generation and kept in
 * p->life, hence not const. */
void ph_plugin_write(ph_jw *w, const ph_daemon *d, ph_plugin *p);
/* The metadata object Info shows, likewise rendered once. */
void ph_plugin_write_metadata(ph_jw *w, ph_plugin *p);

uint64_t ph_now_ms(void);

#endif
