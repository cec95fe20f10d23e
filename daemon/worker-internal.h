/* Internal to daemon/worker*.c: one worker handle (a loaded isolated
 * generation) as worker.c (the process, the blocking exchanges, the
 * runner) and worker-chan.c (the loop's exchanges) share it. */
#ifndef PH_WORKER_INTERNAL_H
#define PH_WORKER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "varlink.h"
#include "worker.h"

/* Room for a reply: a result the daemon accepts (its message limit),
 * escaped as a JSON string (at most 6 bytes a byte), and its envelope. */
#define WK_MESSAGE_MAX (6u * PH_VARLINK_MESSAGE_MAX + 4096u)

struct wk_side;

typedef struct wk {
        pthread_mutex_t lock;           /* the process and the fault record; held
                                         * across a blocking exchange */
        /* Set at start, then only read. */
        char *name, *config, *path;
        int image_fd;                   /* a dup of the sealed image, ours */
        ph_isolation iso;
        unsigned timeout_ms;
        /* The running worker, under lock. */
        pid_t pid;                      /* 0: none */
        int fd;
        ph_framer *fr;                  /* the blocking exchanges' */
        uint64_t fault_ms[PH_WORKER_CRASH_LIMIT];       /* the last faults, a ring */
        unsigned n_faults;
        unsigned starts;
        uint64_t next_start_ms;
        bool quarantined;
        /* What Info shows; never held across an exchange. */
        pthread_mutex_t stats_lock;
        ph_worker_stats stats;
        /* The loop's side (worker-chan.c), loop thread only. */
        struct wk_side *side;
} wk;

uint64_t wk_now_ms(void);
/* Under lock. Reaps the worker (killed first if kill_now, or if it is
 * still alive after a grace) into f; closes the blocking side's socket. */
void wk_reap(wk *w, bool kill_now, ph_fault *f);
/* Under lock. Counts a fault, sets the backoff, and the quarantine when
 * they come too often (f->quarantined_now); logs it. */
void wk_faulted(wk *w, ph_fault *f, const char *during);
/* The errno and message of a worker's error reply. */
int wk_failed(json_t *reply, char *err, size_t err_size);
/* Under lock. Spawns a worker and runs Start (sandbox, map, init).
 * *ret_host (may be NULL): the failure was the spawn's (no process, fd or
 * memory), not the plugin's. */
int wk_start(wk *w, ph_fault *f, bool *ret_host, char *err, size_t err_size);

#endif
