/* The plugin-code thread pool.
 *
 * DESIGN: a mutex-protected FIFO of jobs and a condition variable for idle
 * threads; finished jobs go to a second list and a uv_async wakes the loop,
 * which takes the whole list in one locked swap and runs the done()
 * callbacks. One lock (pool->lock), never held while a job runs. The
 * loop hands jobs over once per loop turn: submit() puts them on a batch
 * only the loop touches, and a uv_prepare (before the loop polls) moves
 * the batch to the queue under one lock.
 * Waking: a thread is woken (or started, up to max_threads) only when no
 * woken thread is on its way to the queue yet; a thread that takes a job
 * and leaves others queued wakes the next one before it runs its job. So a
 * burst of short jobs wakes a thread or two instead of one per job, and a
 * job never waits behind one stuck in plugin code while a thread sleeps. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crash.h"
#include "log.h"
#include "pool.h"

/* How long ph_pool_free waits for idle threads to leave. */
#define POOL_EXIT_WAIT_SEC 2

struct ph_pool {
        pthread_mutex_t lock;
        pthread_cond_t wake;
        ph_job *queue_head, *queue_tail;
        ph_job *done_head, *done_tail;
        atomic_uint queued;             /* changed under lock; the loop reads it without */
        unsigned running, finished, threads, max_threads, max_queue;
        unsigned laned;                 /* waiting in lanes */
        unsigned idle;                  /* threads in pthread_cond_wait */
        unsigned waking;                /* woken or started, not yet at the queue */
        bool stopping;
        uv_async_t async;
        /* Loop only. */
        unsigned collected;             /* taken from done, done() not yet run */
        ph_job *batch_head, *batch_tail;        /* submitted this turn, not queued yet */
        unsigned batched;
        unsigned batched_free;          /* of them, not in a lane: count against max_queue */
        uv_prepare_t flush;             /* active while the batch has jobs */
        unsigned handles_closed;        /* of async and flush, by ph_pool_free */
};

static void *pool_thread(void *arg);

static void queue_append(ph_pool *pool, ph_job *job)
{
        job->next = NULL;
        if (pool->queue_tail)
                pool->queue_tail->next = job;
        else
                pool->queue_head = job;
        pool->queue_tail = job;
        atomic_store_explicit(&pool->queued, pool->queued + 1, memory_order_relaxed);
}

/* Moves lane's waiting jobs to the queue, oldest first, while it has room
 * under its cap (which a reload may have raised since they began to wait).
 * Called with the lock held. */
static void lane_fill(ph_pool *pool, ph_pool_lane *lane)
{
        while (lane->head && lane->running < lane->cap) {
                ph_job *job = lane->head;

                lane->head = job->next;
                if (!lane->head)
                        lane->tail = NULL;
                pool->laned--;
                lane->running++;
                queue_append(pool, job);
        }
}

/* Queues job, or makes it wait in its lane when the lane is full. Called
 * with the lock held. */
static void queue_admit(ph_pool *pool, ph_job *job)
{
        ph_pool_lane *lane = job->lane;

        if (!lane) {
                queue_append(pool, job);
                return;
        }
        lane->cap = job->lane_cap;
        job->next = NULL;
        if (lane->tail)
                lane->tail->next = job;
        else
                lane->head = job;
        lane->tail = job;
        pool->laned++;
        lane_fill(pool, lane);
}

/* One of lane's jobs left the queue or ended: the next in line is queued.
 * Called with the lock held. */
static void lane_next(ph_pool *pool, ph_pool_lane *lane)
{
        lane->running--;
        lane_fill(pool, lane);
}

/* Makes sure a thread comes for the queue: wakes an idle one, or starts
 * one, unless a thread is on its way already. Called with the lock held. */
static void pool_wake(ph_pool *pool)
{
        pthread_attr_t attr;
        pthread_t th;
        int r;

        if (pool->waking > 0 || !pool->queue_head)
                return;
        if (pool->idle > 0) {
                pool->waking++;
                pthread_cond_signal(&pool->wake);
                return;
        }
        if (pool->threads >= pool->max_threads)
                return;         /* the job waits for a thread that frees up */
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&th, &attr, pool_thread, pool);
        pthread_attr_destroy(&attr);
        if (r == 0) {
                pool->threads++;
                pool->waking++;
        } else {
                log_warning("cannot start a worker thread: %s", strerror(r));
        }
}

static void *pool_thread(void *arg)
{
        ph_pool *pool = arg;
        ph_job *job;

        /* A stack overflow in plugin code still gets its crash line. */
        ph_crash_thread_init();
        pthread_mutex_lock(&pool->lock);
        if (pool->waking > 0)   /* counted as on its way when started */
                pool->waking--;
        for (;;) {
                while (!pool->queue_head && !pool->stopping) {
                        pool->idle++;
                        pthread_cond_wait(&pool->wake, &pool->lock);
                        pool->idle--;
                        /* A spurious wake may take a signal's count; the
                         * signalled thread wakes too and finds the queue. */
                        if (pool->waking > 0)
                                pool->waking--;
                }
                if (!pool->queue_head)
                        break;
                job = pool->queue_head;
                pool->queue_head = job->next;
                if (!pool->queue_head)
                        pool->queue_tail = NULL;
                pool->queued--;
                pool->running++;
                /* The job may never return: the rest of the queue gets a
                 * thread of its own. */
                pool_wake(pool);
                pthread_mutex_unlock(&pool->lock);

                job->work(job);

                pthread_mutex_lock(&pool->lock);
                /* Its lane's next job is queued here: this thread takes
                 * it without a round trip through the loop. */
                if (job->lane)
                        lane_next(pool, job->lane);
                pool->running--;
                pool->finished++;
                job->next = NULL;
                if (pool->done_tail)
                        pool->done_tail->next = job;
                else
                        pool->done_head = job;
                pool->done_tail = job;
                if (!pool->stopping)
                        uv_async_send(&pool->async);
        }
        pool->threads--;
        pthread_cond_broadcast(&pool->wake);   /* ph_pool_free may wait for us */
        pthread_mutex_unlock(&pool->lock);
        ph_crash_thread_done();
        return NULL;
}

static void pool_async_cb(uv_async_t *async)
{
        ph_pool *pool = async->data;
        ph_job *list, *next;

        pthread_mutex_lock(&pool->lock);
        list = pool->done_head;
        pool->done_head = pool->done_tail = NULL;
        pool->collected += pool->finished;
        pool->finished = 0;
        pthread_mutex_unlock(&pool->lock);
        for (; list; list = next) {
                next = list->next;
                pool->collected--;
                list->done(list);
        }
}

/* Moves the loop's batch to the queue: one lock and at most one wake for
 * every job submitted in a loop turn. */
static void pool_flush(ph_pool *pool)
{
        if (!pool->batch_head)
                return;
        pthread_mutex_lock(&pool->lock);
        for (ph_job *job = pool->batch_head, *next; job; job = next) {
                next = job->next;
                queue_admit(pool, job);
        }
        pool_wake(pool);
        pthread_mutex_unlock(&pool->lock);
        pool->batch_head = pool->batch_tail = NULL;
        pool->batched = pool->batched_free = 0;
}

static void pool_flush_cb(uv_prepare_t *h)
{
        ph_pool *pool = h->data;

        pool_flush(pool);
        uv_prepare_stop(h);
}

int ph_pool_new(uv_loop_t *loop, unsigned max_threads, unsigned max_queue, ph_pool **ret)
{
        ph_pool *pool = calloc(1, sizeof(*pool));
        int r;

        if (!pool)
                return -ENOMEM;
        pool->max_threads = max_threads;
        pool->max_queue = max_queue;
        r = uv_async_init(loop, &pool->async, pool_async_cb);
        if (r < 0) {
                free(pool);
                return r;
        }
        pthread_mutex_init(&pool->lock, NULL);
        pthread_cond_init(&pool->wake, NULL);
        uv_prepare_init(loop, &pool->flush);
        pool->async.data = pool;
        pool->flush.data = pool;
        *ret = pool;
        return 0;
}

static int pool_submit(ph_pool *pool, ph_pool_lane *lane, unsigned cap, ph_job *job)
{
        /* Only the loop sets stopping. Threads only shrink the queue, but
         * for a lane's next job, which its lane's cap bounds. */
        if (pool->stopping ||
            (!lane && atomic_load_explicit(&pool->queued, memory_order_relaxed) + pool->batched_free >=
                              pool->max_queue))
                return -EAGAIN;
        job->lane = lane;
        job->lane_cap = cap ? cap : 1;
        if (!lane)
                pool->batched_free++;
        job->next = NULL;
        if (pool->batch_tail)
                pool->batch_tail->next = job;
        else
                pool->batch_head = job;
        pool->batch_tail = job;
        if (pool->batched++ == 0)
                uv_prepare_start(&pool->flush, pool_flush_cb);
        return 0;
}

int ph_pool_submit(ph_pool *pool, ph_job *job)
{
        return pool_submit(pool, NULL, 0, job);
}

int ph_pool_submit_lane(ph_pool *pool, ph_pool_lane *lane, unsigned cap, ph_job *job)
{
        return pool_submit(pool, lane, cap, job);
}

int ph_pool_cancel(ph_pool *pool, ph_job *job)
{
        ph_job **at, *prev = NULL;
        int r = -EBUSY;

        for (at = &pool->batch_head; *at; prev = *at, at = &(*at)->next)
                if (*at == job) {
                        *at = job->next;
                        if (pool->batch_tail == job)
                                pool->batch_tail = prev;
                        if (!job->lane)
                                pool->batched_free--;
                        if (--pool->batched == 0)
                                uv_prepare_stop(&pool->flush);
                        return 0;
                }
        prev = NULL;
        pthread_mutex_lock(&pool->lock);
        for (at = &pool->queue_head; *at; prev = *at, at = &(*at)->next)
                if (*at == job) {
                        *at = job->next;
                        if (pool->queue_tail == job)
                                pool->queue_tail = prev;
                        pool->queued--;
                        if (job->lane) {
                                lane_next(pool, job->lane);
                                pool_wake(pool);
                        }
                        r = 0;
                        break;
                }
        prev = NULL;
        for (at = job->lane && r < 0 ? &job->lane->head : NULL; at && *at; prev = *at, at = &(*at)->next)
                if (*at == job) {
                        *at = job->next;
                        if (job->lane->tail == job)
                                job->lane->tail = prev;
                        pool->laned--;
                        r = 0;
                        break;
                }
        pthread_mutex_unlock(&pool->lock);
        return r;
}

unsigned ph_pool_busy(const ph_pool *cpool)
{
        ph_pool *pool = (ph_pool *)cpool;
        unsigned n;

        pthread_mutex_lock(&pool->lock);
        n = pool->queued + pool->laned + pool->running + pool->finished;
        pthread_mutex_unlock(&pool->lock);
        return n + pool->collected + pool->batched;
}

unsigned ph_pool_threads(const ph_pool *cpool)
{
        ph_pool *pool = (ph_pool *)cpool;
        unsigned n;

        pthread_mutex_lock(&pool->lock);
        n = pool->threads;
        pthread_mutex_unlock(&pool->lock);
        return n;
}

/* Called for each of the two handles; the second one ends the pool. */
static void pool_close_cb(uv_handle_t *h)
{
        ph_pool *pool = h->data;
        bool last;

        if (++pool->handles_closed < 2)
                return;

        pthread_mutex_lock(&pool->lock);
        pool->stopping = true;
        pthread_cond_broadcast(&pool->wake);
        last = pool->threads == 0;
        pthread_mutex_unlock(&pool->lock);
        /* Threads still inside plugin code keep pool alive: leak it then. */
        if (last) {
                pthread_mutex_destroy(&pool->lock);
                pthread_cond_destroy(&pool->wake);
                free(pool);
        }
}

void ph_pool_free(ph_pool *pool)
{
        struct timespec deadline;

        if (!pool)
                return;
        /* Jobs submitted since the last turn run like the queued ones. */
        pool_flush(pool);
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += POOL_EXIT_WAIT_SEC;
        pthread_mutex_lock(&pool->lock);
        pool->stopping = true;
        pthread_cond_broadcast(&pool->wake);
        /* Idle threads are on their way out: wait for them, or the pool
         * would be left behind as if they were stuck in plugin code. */
        while (pool->threads > pool->running &&
               pthread_cond_timedwait(&pool->wake, &pool->lock, &deadline) == 0)
                ;
        pthread_mutex_unlock(&pool->lock);
        uv_close((uv_handle_t *)&pool->flush, pool_close_cb);
        uv_close((uv_handle_t *)&pool->async, pool_close_cb);
}
