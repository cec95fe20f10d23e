/* Status and Metrics: the daemon's figures, written by one writer for
 * both, the call latency histogram, and Metrics' per-plugin counters. A
 * reply is written in one loop callback: every figure in it is of the
 * same moment. Loop thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "lifecycle.h"
#include "metrics.h"
#include "varlink.h"
#include "worker.h"

/* Metrics lists plugins until its text reaches this much, then only
 * counts the rest (pluginsOmitted): the reply stays within the 1 MiB
 * reply cap whatever the number of plugins (one entry is at most some
 * 25 KiB: a 4 KiB path written with every byte escaped). */
#define METRICS_PLUGINS_BUDGET (PH_VARLINK_MESSAGE_MAX / 2u)

/* ... and within what one connection may hold (MaxBufferPerConnection=,
 * 64 KiB at least): a quarter of it, so that the list, its last entry and
 * the rest of the reply fit, and one Metrics never disconnects its
 * client. */
static size_t metrics_budget(const ph_daemon *d)
{
        size_t conn = d->cfg->max_buffer_per_conn / 4;

        return conn < METRICS_PLUGINS_BUDGET ? conn : METRICS_PLUGINS_BUDGET;
}
/* A Metrics reply this long or longer (some 280 plugins with counters;
 * writing 512 KiB of them is some 4 ms of the loop), or one that walked
 * this many plugins (the walk alone is some 6 ms at 100,000), is kept,
 * and copied as the reply to every Metrics request of the next
 * METRICS_REUSE_MS: however many clients ask, however often, the loop
 * writes such a reply at most once a second. Any other is written afresh
 * each time. By size and count rather than by time taken, so that what a
 * client gets does not depend on how busy the machine was. */
#define METRICS_REUSE_BYTES (64u << 10)
#define METRICS_REUSE_PLUGINS 10000u
#define METRICS_REUSE_MS 1000u

/* The bounds in nanoseconds, and as the JSON text Metrics writes. */
static const struct {
        uint64_t ns;
        const char *text;
} latency_bounds[PH_LATENCY_BOUNDS] = {
        { 100000ull, "0.0001" },      { 250000ull, "0.00025" },     { 500000ull, "0.0005" },
        { 1000000ull, "0.001" },      { 2500000ull, "0.0025" },     { 5000000ull, "0.005" },
        { 10000000ull, "0.01" },      { 25000000ull, "0.025" },     { 50000000ull, "0.05" },
        { 100000000ull, "0.1" },      { 250000000ull, "0.25" },     { 500000000ull, "0.5" },
        { 1000000000ull, "1.0" },     { 2500000000ull, "2.5" },     { 5000000000ull, "5.0" },
        { 10000000000ull, "10.0" },
};

void ph_latency_observe(ph_latency *h, uint64_t ns)
{
        unsigned i = 0;

        while (i < PH_LATENCY_BOUNDS && ns > latency_bounds[i].ns)
                i++;
        h->buckets[i]++;
        h->count++;
        h->sum_ns += ns;
}

static void count_write(ph_jw *w, const char *key, uint64_t v)
{
        ph_jw_key(w, key);
        ph_jw_int(w, (long long)v);
}

void ph_metrics_write_counters(ph_jw *w, uint64_t calls, uint64_t failed, uint64_t in_flight,
                               uint64_t loads, uint64_t load_failures, uint64_t unloads)
{
        ph_jw_object_open(w);
        count_write(w, "calls", calls);
        count_write(w, "callsFailed", failed);
        count_write(w, "callsInFlight", in_flight);
        count_write(w, "loads", loads);
        count_write(w, "loadFailures", load_failures);
        count_write(w, "unloads", unloads);
        ph_jw_object_close(w);
}

/* Status's members, in the parameters object begun in w. */
static void status_write(ph_jw *w, ph_daemon *d)
{
        size_t rejected, n = ph_registry_count(d->reg, &rejected);
        const ph_daemon_counters *k = &d->counters;

        ph_jw_key(w, "version");
        ph_jw_string(w, PACKAGE_VERSION);
        count_write(w, "uptimeSeconds", (ph_now_ms() - d->started_ms) / 1000);
        ph_jw_key(w, "pluginDirectories");
        ph_jw_array_open(w);
        for (size_t i = 0; i < d->cfg->n_plugin_dirs; i++)
                ph_jw_text(w, d->cfg->plugin_dirs[i]);
        ph_jw_array_close(w);
        count_write(w, "plugins", n);
        count_write(w, "loaded", ph_life_loaded_count(d));
        count_write(w, "rejected", rejected);
        count_write(w, "clients", ph_server_clients(d->server));
        count_write(w, "bufferedBytes", ph_server_buffered(d->server));
        count_write(w, "disconnected", ph_server_disconnects(d->server));
        ph_jw_key(w, "counters");
        ph_metrics_write_counters(w, k->calls, k->calls_failed, k->in_flight, k->loads,
                                  k->load_failures, k->unloads);
}

void ph_metrics_status(ph_daemon *d, ph_conn *c, struct ph_request *req, ph_reply *r)
{
        ph_jw w;

        (void)c;
        (void)req;
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        status_write(&w, d);
        ph_reply_jw(r, &w);
}

/* CallLatency: the bounds, the cumulative counts, the total and the sum. */
static void latency_write(ph_jw *w, const ph_latency *h)
{
        uint64_t below = 0;

        ph_jw_object_open(w);
        ph_jw_key(w, "le");
        ph_jw_array_open(w);
        for (unsigned i = 0; i < PH_LATENCY_BOUNDS; i++)
                ph_jw_raw(w, latency_bounds[i].text, strlen(latency_bounds[i].text));
        ph_jw_array_close(w);
        ph_jw_key(w, "buckets");
        ph_jw_array_open(w);
        for (unsigned i = 0; i < PH_LATENCY_BOUNDS; i++) {
                below += h->buckets[i];
                ph_jw_int(w, (long long)below);
        }
        ph_jw_array_close(w);
        count_write(w, "count", h->count);
        count_write(w, "sumNanoseconds", h->sum_ns);
        ph_jw_object_close(w);
}

/* Whether a plugin has anything to show: never loaded and every counter
 * 0 is the common case at 100,000 plugins, and is left out. */
static bool plugin_active(const ph_life *l)
{
        const ph_plugin_counters *k = &l->counters;

        return l->state != PH_PSTATE_DISCOVERED || k->calls || k->calls_failed || k->in_flight ||
               k->loads || k->load_failures || k->unloads;
}

/* One PluginMetrics object. */
static void plugin_write(ph_jw *w, const ph_plugin *p)
{
        const ph_life *l = p->life;
        const ph_plugin_counters *k = &l->counters;
        const ph_meta *m = ph_life_meta(p);
        void *h = l->serving ? ph_instance_runner_handle(l->serving->inst) : NULL;
        ph_worker_stats st;

        ph_jw_object_open(w);
        ph_jw_key(w, "name");
        ph_jw_string(w, p->name);
        ph_jw_key(w, "version");
        ph_jw_string(w, m ? m->version : NULL);
        ph_jw_key(w, "state");
        ph_jw_string(w, ph_pstate_name(l->state));
        ph_jw_key(w, "file");
        ph_jw_text(w, l->serving ? l->serving->file : p->file->path);
        count_write(w, "calls", k->calls);
        count_write(w, "callsFailed", k->calls_failed);
        count_write(w, "callsInFlight", k->in_flight);
        count_write(w, "loads", k->loads);
        count_write(w, "loadFailures", k->load_failures);
        count_write(w, "unloads", k->unloads);
        if (h)
                ph_worker_stats_get(h, &st);
        ph_jw_key(w, "workerRestarts");
        if (h)
                ph_jw_int(w, st.restarts);
        else
                ph_jw_null(w);
        ph_jw_key(w, "workerFaults");
        if (h)
                ph_jw_int(w, st.faults);
        else
                ph_jw_null(w);
        ph_jw_object_close(w);
}

/* Metrics' members, in the parameters object begun in w. */
static void metrics_write(ph_jw *w, ph_daemon *d)
{
        uint64_t states[_PH_PSTATE_MAX] = { 0 }, omitted = 0, restarts, faults;
        size_t budget = metrics_budget(d);

        status_write(w, d);
        ph_worker_totals(&restarts, &faults);
        count_write(w, "workerRestarts", restarts);
        count_write(w, "workerFaults", faults);
        ph_jw_key(w, "latency");
        latency_write(w, &d->latency);
        /* One pass: the plugins by state, the list, and what it left out. */
        ph_jw_key(w, "pluginCounters");
        ph_jw_array_open(w);
        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p)) {
                if (!p->life)
                        continue;
                states[p->life->state]++;
                if (!plugin_active(p->life))
                        continue;
                if (ph_jw_len(w) >= budget)
                        omitted++;
                else
                        plugin_write(w, p);
        }
        ph_jw_array_close(w);
        count_write(w, "pluginsOmitted", omitted);
        ph_jw_key(w, "states");
        ph_jw_object_open(w);
        for (int i = 0; i < _PH_PSTATE_MAX; i++)
                count_write(w, ph_pstate_name(i), states[i]);
        ph_jw_object_close(w);
}

/* Answers r with a copy of the kept reply, if there is one young enough. */
static bool metrics_reuse(ph_daemon *d, ph_reply *r, uint64_t now)
{
        char *msg;

        if (!d->metrics.msg || now - d->metrics.at_ms >= METRICS_REUSE_MS)
                return false;
        msg = malloc(d->metrics.len);
        if (!msg) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                return true;
        }
        memcpy(msg, d->metrics.msg, d->metrics.len);
        ph_reply_send(r, msg, d->metrics.len);
        return true;
}

void ph_metrics_metrics(ph_daemon *d, ph_conn *c, struct ph_request *req, ph_reply *r)
{
        uint64_t now = uv_now(d->loop);
        char *msg;
        size_t len;
        ph_jw w;

        (void)c;
        (void)req;
        if (metrics_reuse(d, r, now))
                return;
        ph_metrics_free(d);
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        metrics_write(&w, d);
        if (ph_jw_len(&w) < METRICS_REUSE_BYTES &&
            ph_registry_count(d->reg, NULL) < METRICS_REUSE_PLUGINS) {
                ph_reply_jw(r, &w);
                return;
        }
        /* Costly: kept for the requests of the next second. (The list's
         * budget keeps it well under the reply cap.) */
        if (ph_jw_message_end(&w, false, &msg, &len) < 0) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                return;
        }
        d->metrics.msg = malloc(len);
        if (d->metrics.msg) {
                memcpy(d->metrics.msg, msg, len);
                d->metrics.len = len;
                d->metrics.at_ms = now;
        }
        ph_reply_send(r, msg, len);
}

void ph_metrics_free(ph_daemon *d)
{
        free(d->metrics.msg);
        d->metrics.msg = NULL;
        d->metrics.len = 0;
}
