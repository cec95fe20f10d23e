/* The pool of threads that run plugin code (load, init, call, fini), apart
 * from libuv's pool, which does the scans: a stuck plugin can take every
 * thread here and scanning still goes on. */
#ifndef PH_POOL_H
#define PH_POOL_H

#include <uv.h>

typedef struct ph_job ph_job;

/* The jobs of one lane: at most cap of them are queued or running at
 * once, the others wait in the lane, oldest first, holding no thread; a
 * thread that finishes one of them queues the next itself. Embedded in its
 * owner, which outlives every job submitted to it; its fields are the
 * pool's (under its lock). */
typedef struct ph_pool_lane {
        ph_job *head, *tail;            /* waiting */
        unsigned cap, running;          /* running: queued or running */
} ph_pool_lane;

struct ph_job {
        void (*work)(ph_job *job);      /* on a pool thread */
        void (*done)(ph_job *job);      /* on the loop thread, after work */
        ph_job *next;
        ph_pool_lane *lane;             /* set by ph_pool_submit_lane */
        unsigned lane_cap;
};

typedef struct ph_pool ph_pool;

/* Threads start on demand, up to max_threads; at most max_queue jobs wait. */
int ph_pool_new(uv_loop_t *loop, unsigned max_threads, unsigned max_queue, ph_pool **ret);

/* Queues job; done() runs on the loop once work() returned. Returns 0, or
 * -EAGAIN when the queue is full (the job is not taken). Loop thread. */
int ph_pool_submit(ph_pool *pool, ph_job *job);
/* The same through lane, with at most cap (>= 1) of its jobs queued or
 * running at once. Jobs waiting in a lane do not count against max_queue. */
int ph_pool_submit_lane(ph_pool *pool, ph_pool_lane *lane, unsigned cap, ph_job *job);

/* Takes back a job that has not started (in this turn's batch, the queue
 * or its lane): 0, or -EBUSY when it runs (or ran) already. Its done() is
 * not called. Loop thread. */
int ph_pool_cancel(ph_pool *pool, ph_job *job);

/* Jobs queued, running, or done whose done() has not run yet. */
unsigned ph_pool_busy(const ph_pool *pool);
unsigned ph_pool_threads(const ph_pool *pool);

/* Stops the threads once the queue is empty; threads stuck in plugin code
 * are left behind (detached). Pending done() callbacks are dropped. */
void ph_pool_free(ph_pool *pool);

#endif
