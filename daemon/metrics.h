/* The daemon's figures as clients see them: the members Status writes,
 * which Metrics writes too, the call latency histogram, and Metrics' list
 * of per-plugin counters. Loop thread. */
#ifndef PH_METRICS_H
#define PH_METRICS_H

#include <stdint.h>

#include "jw.h"
#include "server.h"

struct ph_daemon;
struct ph_request;

/* Upper bounds of the latency buckets, 0.0001 s to 10 s; a last bucket
 * takes what is slower (Prometheus's +Inf). */
#define PH_LATENCY_BOUNDS 16u

/* Calls by how long they took, from their submission to a plugin thread
 * (their plugin's lane included) to their outcome back on the loop. Each
 * bucket counts only its own calls; the writer makes them cumulative. */
typedef struct ph_latency {
        uint64_t buckets[PH_LATENCY_BOUNDS + 1];
        uint64_t count;
        uint64_t sum_ns;
} ph_latency;

/* The last costly Metrics reply, shared for a second (metrics.c). */
typedef struct ph_metrics_kept {
        char *msg;                      /* the whole message, NUL included */
        size_t len;
        uint64_t at_ms;                 /* uv_now() when it was written */
} ph_metrics_kept;

/* Counts one call that took ns nanoseconds (uv_hrtime differences). */
void ph_latency_observe(ph_latency *h, uint64_t ns);

/* A Counters object (io.plughost.varlink): a plugin's or the daemon's. */
void ph_metrics_write_counters(ph_jw *w, uint64_t calls, uint64_t failed, uint64_t in_flight,
                               uint64_t loads, uint64_t load_failures, uint64_t unloads);

/* Status's reply; Metrics' reply: Status's members and the rest, taken in
 * one loop callback, so at one moment. */
void ph_metrics_status(struct ph_daemon *d, ph_conn *c, struct ph_request *req, ph_reply *r);
void ph_metrics_metrics(struct ph_daemon *d, ph_conn *c, struct ph_request *req, ph_reply *r);
/* Frees the reply kept for reuse (at exit). */
void ph_metrics_free(struct ph_daemon *d);

#endif
