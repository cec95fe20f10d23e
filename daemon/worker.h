/* Isolated plugins (Isolation=process): each loaded generation runs in a
 * plughost-worker process of its own, started with exec and sandboxed
 * there, that gets the sealed image the cache checked. This is the
 * daemon's side: a ph_runner for the cache. Its hooks run on plugin
 * threads (load, call, reap), one exchange with a worker at a time; a
 * worker that dies, exits or misses its deadline is killed and reaped
 * there, and its fault goes back to the caller (ph_worker_take_fault).
 * The next call restarts it, after a backoff; a generation that faults
 * PH_WORKER_CRASH_LIMIT times within PH_WORKER_CRASH_WINDOW_MS is
 * quarantined: every call is refused until a new file replaces it. */
#ifndef PH_WORKER_H
#define PH_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "plughost/plughost.h"
#include "isolation.h"

#define PH_WORKER_CRASH_LIMIT 5u
#define PH_WORKER_CRASH_WINDOW_MS 60000u
#define PH_WORKER_BACKOFF_MS 100u       /* doubled per recent crash */

/* What a load passes as ph_load_request.runner_data (the caller's, read
 * during start only). */
typedef struct ph_worker_opts {
        const char *path;               /* the plughost-worker binary */
        ph_isolation iso;
        unsigned timeout_ms;            /* init, a call or fini past this: killed */
} ph_worker_opts;

typedef enum ph_fault_kind {
        PH_FAULT_NONE,
        PH_FAULT_CRASHED,               /* the worker died, exited or hung up */
        PH_FAULT_TIMEOUT,               /* killed at its deadline */
        PH_FAULT_QUARANTINED,           /* refused: too many faults */
} ph_fault_kind;

/* How the last call on this thread failed, when the worker did. */
typedef struct ph_fault {
        ph_fault_kind kind;
        int signal;                     /* it was killed by this signal, or 0 */
        int exit_status;                /* it exited with this status, or -1 */
        bool quarantined_now;           /* this fault quarantined the generation */
        char what[160];                 /* "signal 11 (SIGSEGV)", "exit status 0", ... */
} ph_fault;

typedef struct ph_worker_stats {
        pid_t pid;                      /* 0 while none runs */
        unsigned restarts;              /* starts after the first */
        unsigned faults;
        bool quarantined;
        char last_fault[200];           /* empty: none yet */
} ph_worker_stats;

extern const ph_runner ph_worker_runner;

struct ph_pool;

/* A call made from the loop (ph_worker_call_async): no plugin thread waits
 * for it. Embedded in the caller's operation. */
typedef struct ph_wcall {
        const char *method, *params;    /* the caller's, until done */
        char *err;                      /* the caller's buffer for a message */
        size_t err_size;
        void (*done)(struct ph_wcall *c);       /* loop thread; never inside
                                                 * ph_worker_call_async */
        uint64_t deadline_ms;           /* CLOCK_MONOTONIC ms: its client's deadline; the
                                         * worker does not start it later, and the
                                         * worker is killed if it still runs then */
        uint64_t id;                    /* the worker's; answers carry it */
        bool cancelled;                 /* set by the caller when nobody waits for it
                                         * any more: if not sent yet (or sent to a
                                         * worker that died before it ran), it is not
                                         * sent again, and done gets -ECANCELED */
        /* The outcome, when done runs. */
        int r;                          /* 0 or a negative errno */
        char *result;                   /* malloc'd JSON text, NULL for null; the caller's */
        ph_fault fault;                 /* how the worker failed it, if it did */
        struct ph_wcall *next;          /* the worker's queue */
} ph_wcall;

/* Sends c to the worker of handle over the loop, behind the calls it has
 * in flight (the worker runs them one at a time, in order); starts a
 * worker first when none runs (after the backoff of the last fault, on a
 * plugin thread). A call whose worker faults (crash, exit, hang-up, or
 * its deadline, c->deadline_ms, passing while the worker runs it,
 * which kills it) gets that fault; the calls behind it were
 * not run and go to the next worker. While a call is outstanding, the
 * instance of handle must stay alive. Loop thread. */
void ph_worker_call_async(void *handle, uv_loop_t *loop, struct ph_pool *pool, ph_wcall *c);

/* cb(handle, why, userdata) runs on the loop when a generation is
 * quarantined by faults that no call carried (its worker died between
 * calls); a call that faults carries quarantined_now instead. */
void ph_worker_set_quarantine_cb(void (*cb)(void *handle, const char *why, void *userdata),
                                 void *userdata);

/* The loop lets go of the worker (no call is outstanding): before the
 * instance's reference is dropped, so that its stop can run elsewhere.
 * Loop thread. Accepts NULL. */
void ph_worker_detach(void *handle);

/* The fault of this thread's last ph_worker_runner call, cleared by the
 * taking. False when it had none. */
bool ph_worker_take_fault(ph_fault *ret);

/* A snapshot of a worker handle (ph_instance_runner_handle). Any thread;
 * never waits for an exchange. */
void ph_worker_stats_get(void *handle, ph_worker_stats *ret);
/* Restarts and faults of every worker since the daemon started (any
 * thread). */
void ph_worker_totals(uint64_t *ret_restarts, uint64_t *ret_faults);

#endif
