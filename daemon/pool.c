/* The plugin-code thread pool.
 *
 * DESIGN: a mutex-protected FIFO of jobs and a condition variable for idle
 * threads; finished jobs go to a second list and a uv_async wakes the loop,
 * which runs their done() callbacks. One lock (pool->lock), never held
 * while a job runs. A thread is added when a job arrives and none is idle,
 * up to max_threads, so jobs stuck in plugin code only shrink the pool. */
#include <errno.h>
#include <pthread.h>
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
        unsigned queued, running, finished, threads, idle, max_threads, max_queue;
        bool stopping;
        uv_async_t async;
};

static void *pool_thread(void *arg)
{
        ph_pool *pool = arg;
        ph_job *job;

        /* A stack overflow in plugin code still gets its crash line. */
        ph_crash_thread_init();
        pthread_mutex_lock(&pool->lock);
        for (;;) {
                while (!pool->queue_head && !pool->stopping) {
                        pool->idle++;
                        pthread_cond_wait(&pool->wake, &pool->lock);
                        pool->idle--;
                }
                if (!pool->queue_head)
                        break;
                job = pool->queue_head;
                pool->queue_head = job->next;
                if (!pool->queue_head)
                        pool->queue_tail = NULL;
                pool->queued--;
                pool->running++;
                pthread_mutex_unlock(&pool->lock);

                job->work(job);

                pthread_mutex_lock(&pool->lock);
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
        pthread_mutex_unlock(&pool->lock);
        for (; list; list = next) {
                next = list->next;
                pthread_mutex_lock(&pool->lock);
                pool->finished--;
                pthread_mutex_unlock(&pool->lock);
                list->done(list);
        }
}

int ph_pool_new(uv_loop_t *loop, unsigned max_threads, unsigned max_queue, ph_pool **ret)
{
        ph_pool *pool = calloc(1, sizeof(*pool));
        int r;

        if (!pool)
                return -ENOMEM;
        pool->max_threads = max_threads;
        pool->max_queue = max_queue;
        pthread_mutex_init(&pool->lock, NULL);
        pthread_cond_init(&pool->wake, NULL);
        r = uv_async_init(loop, &pool->async, pool_async_cb);
        if (r < 0) {
                free(pool);
                return r;
        }
        pool->async.data = pool;
        *ret = pool;
        return 0;
}

int ph_pool_submit(ph_pool *pool, ph_job *job)
{
        pthread_t th;
        pthread_attr_t attr;
        int r = 0;

        pthread_mutex_lock(&pool->lock);
        if (pool->stopping || pool->queued >= pool->max_queue) {
                pthread_mutex_unlock(&pool->lock);
                return -EAGAIN;
        }
        job->next = NULL;
        if (pool->queue_tail)
                pool->queue_tail->next = job;
        else
                pool->queue_head = job;
        pool->queue_tail = job;
        pool->queued++;
        if (pool->idle >= pool->queued) {
                pthread_cond_signal(&pool->wake);
        } else if (pool->threads < pool->max_threads) {
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                r = pthread_create(&th, &attr, pool_thread, pool);
                pthread_attr_destroy(&attr);
                if (r == 0)
                        pool->threads++;
                else
                        log_warning("cannot start a worker thread: %s", strerror(r));
                r = 0;  /* the job waits for a thread that frees up */
        }
        pthread_mutex_unlock(&pool->lock);
        return r;
}

int ph_pool_cancel(ph_pool *pool, ph_job *job)
{
        ph_job **at, *prev = NULL;
        int r = -EBUSY;

        pthread_mutex_lock(&pool->lock);
        for (at = &pool->queue_head; *at; prev = *at, at = &(*at)->next)
                if (*at == job) {
                        *at = job->next;
                        if (pool->queue_tail == job)
                                pool->queue_tail = prev;
                        pool->queued--;
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
        n = pool->queued + pool->running + pool->finished;
        pthread_mutex_unlock(&pool->lock);
        return n;
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

static void pool_async_close_cb(uv_handle_t *h)
{
        ph_pool *pool = h->data;
        bool last;

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
        uv_close((uv_handle_t *)&pool->async, pool_async_close_cb);
}
