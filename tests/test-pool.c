/* Tests for daemon/pool.c on its own: jobs handed over once per loop
 * turn, threads woken only when none is on its way, and what that must
 * not cost: a job behind one stuck in plugin code still gets a thread, a
 * job taken back before its turn never runs, the queue's cap counts the
 * jobs of the turn, and jobs submitted just before the pool is freed run.
 * Lanes: at most cap of a lane's jobs at once, the next one queued by the
 * thread that finished the last (no round trip through the loop), and a
 * job taken back from a lane or the queue makes room for the next. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "pool.h"
#include "testutil.h"

#define WAIT_MS 3000u
#define BURST 200u

typedef struct tjob {
        ph_job job;
        atomic_bool *gate;              /* NULL: returns at once; else waits for it */
        atomic_int ran;                 /* work() calls */
        int done;                       /* done() calls, on the loop */
} tjob;

static void tjob_work(ph_job *job)
{
        tjob *t = (tjob *)job;

        while (t->gate && !atomic_load(t->gate))
                usleep(1000);
        atomic_fetch_add(&t->ran, 1);
}

static int all_done;

static void tjob_done(ph_job *job)
{
        ((tjob *)job)->done++;
        all_done++;
}

static void tjob_init(tjob *t, atomic_bool *gate)
{
        *t = (tjob){ .job = { .work = tjob_work, .done = tjob_done }, .gate = gate };
}

static void timeout_cb(uv_timer_t *t)
{
        *(bool *)t->data = true;
}

/* Runs the loop until *done reaches want or WAIT_MS pass. */
static void run_until(uv_loop_t *loop, const int *done, int want)
{
        bool late = false;
        uv_timer_t timer;

        uv_timer_init(loop, &timer);
        timer.data = &late;
        uv_timer_start(&timer, timeout_cb, WAIT_MS, 0);
        while (*done < want && !late)
                uv_run(loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&timer, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
}

static void pool_end(uv_loop_t *loop, ph_pool *pool)
{
        ph_pool_free(pool);
        uv_run(loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(loop), 0);
}

/* Two jobs in one turn, the first stuck in plugin code: the thread that
 * took it woke another for the second before it ran it. */
START_TEST(test_job_behind_stuck_one)
{
        atomic_bool gate = false;
        uv_loop_t loop;
        ph_pool *pool;
        tjob stuck, quick;

        uv_loop_init(&loop);
        ck_assert_int_eq(ph_pool_new(&loop, 4, 16, &pool), 0);
        tjob_init(&stuck, &gate);
        tjob_init(&quick, NULL);
        ck_assert_int_eq(ph_pool_submit(pool, &stuck.job), 0);
        ck_assert_int_eq(ph_pool_submit(pool, &quick.job), 0);
        run_until(&loop, &quick.done, 1);
        ck_assert_int_eq(quick.done, 1);
        ck_assert_int_eq(atomic_load(&stuck.ran), 0);
        ck_assert_uint_eq(ph_pool_busy(pool), 1);
        atomic_store(&gate, true);
        run_until(&loop, &stuck.done, 1);
        ck_assert_int_eq(stuck.done, 1);
        ck_assert_uint_eq(ph_pool_busy(pool), 0);
        pool_end(&loop, pool);
}
END_TEST

/* A burst of short jobs in one turn: each runs once and is done once,
 * on no more threads than allowed. */
START_TEST(test_burst)
{
        tjob *jobs = calloc(BURST, sizeof(*jobs));
        uv_loop_t loop;
        ph_pool *pool;

        ck_assert_ptr_nonnull(jobs);
        uv_loop_init(&loop);
        ck_assert_int_eq(ph_pool_new(&loop, 16, 4096, &pool), 0);
        for (unsigned i = 0; i < BURST; i++) {
                tjob_init(&jobs[i], NULL);
                ck_assert_int_eq(ph_pool_submit(pool, &jobs[i].job), 0);
        }
        ck_assert_uint_eq(ph_pool_busy(pool), BURST);
        run_until(&loop, &all_done, BURST);
        ck_assert_int_eq(all_done, BURST);
        for (unsigned i = 0; i < BURST; i++) {
                ck_assert_int_eq(atomic_load(&jobs[i].ran), 1);
                ck_assert_int_eq(jobs[i].done, 1);
        }
        ck_assert_uint_eq(ph_pool_busy(pool), 0);
        ck_assert_uint_le(ph_pool_threads(pool), 16);
        pool_end(&loop, pool);
        free(jobs);
}
END_TEST

/* Taken back in the turn it was submitted: never run, never done. */
START_TEST(test_cancel_in_turn)
{
        uv_loop_t loop;
        ph_pool *pool;
        tjob a, b;

        uv_loop_init(&loop);
        ck_assert_int_eq(ph_pool_new(&loop, 2, 16, &pool), 0);
        tjob_init(&a, NULL);
        tjob_init(&b, NULL);
        ck_assert_int_eq(ph_pool_submit(pool, &a.job), 0);
        ck_assert_int_eq(ph_pool_submit(pool, &b.job), 0);
        ck_assert_int_eq(ph_pool_cancel(pool, &a.job), 0);
        ck_assert_uint_eq(ph_pool_busy(pool), 1);
        run_until(&loop, &b.done, 1);
        ck_assert_int_eq(b.done, 1);
        usleep(50 * 1000);
        uv_run(&loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(atomic_load(&a.ran), 0);
        ck_assert_int_eq(a.done, 0);
        /* Done already: nothing to take back. */
        ck_assert_int_eq(ph_pool_cancel(pool, &b.job), -EBUSY);
        ck_assert_uint_eq(ph_pool_busy(pool), 0);
        pool_end(&loop, pool);
}
END_TEST

/* max_queue counts the jobs of this turn as well as the queued ones. */
START_TEST(test_queue_cap)
{
        atomic_bool gate = false;
        uv_loop_t loop;
        ph_pool *pool;
        tjob first, waiting[3], more;
        int done = 0;

        uv_loop_init(&loop);
        ck_assert_int_eq(ph_pool_new(&loop, 1, 3, &pool), 0);
        tjob_init(&first, &gate);
        ck_assert_int_eq(ph_pool_submit(pool, &first.job), 0);
        /* The one thread takes it and stays. */
        for (unsigned i = 0; i < 100 && ph_pool_threads(pool) == 0; i++) {
                uv_run(&loop, UV_RUN_NOWAIT);
                usleep(10 * 1000);
        }
        usleep(50 * 1000);
        for (unsigned i = 0; i < 3; i++) {
                tjob_init(&waiting[i], NULL);
                ck_assert_int_eq(ph_pool_submit(pool, &waiting[i].job), 0);
        }
        tjob_init(&more, NULL);
        ck_assert_int_eq(ph_pool_submit(pool, &more.job), -EAGAIN);
        /* Queued now, not in the turn: still full. */
        uv_run(&loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(ph_pool_submit(pool, &more.job), -EAGAIN);
        atomic_store(&gate, true);
        run_until(&loop, &waiting[2].done, 1);
        for (unsigned i = 0; i < 3; i++)
                done += waiting[i].done;
        ck_assert_int_eq(done + first.done, 4);
        pool_end(&loop, pool);
}
END_TEST

/* Submitted in the last turn before the stop: run like the queued ones
 * (their done() is dropped, as for every job still out at the stop). */
START_TEST(test_free_runs_turn)
{
        uv_loop_t loop;
        ph_pool *pool;
        tjob a;

        uv_loop_init(&loop);
        ck_assert_int_eq(ph_pool_new(&loop, 2, 16, &pool), 0);
        tjob_init(&a, NULL);
        ck_assert_int_eq(ph_pool_submit(pool, &a.job), 0);
        ph_pool_free(pool);
        for (unsigned i = 0; i < 300 && !atomic_load(&a.ran); i++)
                usleep(10 * 1000);
        ck_assert_int_eq(atomic_load(&a.ran), 1);
        usleep(100 * 1000);     /* its thread leaves: the pool is not left behind */
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(a.done, 0);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* Waits up to WAIT_MS, without running the loop, for t to have run. */
static bool ran_within(tjob *t)
{
        for (unsigned i = 0; i < WAIT_MS / 10 && !atomic_load(&t->ran); i++)
                usleep(10 * 1000);
        return atomic_load(&t->ran) > 0;
}

/* cap 1: one at a time, in order; the thread that finished one queues the
 * next itself; one taken back from the lane never runs. */
START_TEST(test_lane_cap)
{
        atomic_bool gate1 = false, gate2 = false;
        ph_pool_lane lane = { 0 };
        uv_loop_t loop;
        ph_pool *pool;
        tjob a, b, c;

        uv_loop_init(&loop);
        ck_assert_int_eq(ph_pool_new(&loop, 4, 16, &pool), 0);
        tjob_init(&a, &gate1);
        tjob_init(&b, &gate2);
        tjob_init(&c, NULL);
        ck_assert_int_eq(ph_pool_submit_lane(pool, &lane, 1, &a.job), 0);
        ck_assert_int_eq(ph_pool_submit_lane(pool, &lane, 1, &b.job), 0);
        ck_assert_int_eq(ph_pool_submit_lane(pool, &lane, 1, &c.job), 0);
        uv_run(&loop, UV_RUN_NOWAIT);          /* the turn hands them over */
        usleep(100 * 1000);
        ck_assert_uint_eq(ph_pool_busy(pool), 3);
        /* c waits in the lane: taken back, it never runs. */
        ck_assert_int_eq(ph_pool_cancel(pool, &c.job), 0);
        ck_assert_uint_eq(ph_pool_busy(pool), 2);
        /* b waits for a, though three threads are free. */
        atomic_store(&gate2, true);
        usleep(100 * 1000);
        ck_assert_int_eq(atomic_load(&b.ran), 0);
        /* a ends: its thread queues b, with no loop turn in between. */
        atomic_store(&gate1, true);
        ck_assert_msg(ran_within(&b), "the lane's next job was not queued when the last one ended");
        run_until(&loop, &b.done, 1);
        ck_assert_int_eq(a.done, 1);
        ck_assert_int_eq(b.done, 1);
        ck_assert_int_eq(atomic_load(&c.ran), 0);
        ck_assert_int_eq(c.done, 0);
        ck_assert_uint_eq(ph_pool_busy(pool), 0);
        pool_end(&loop, pool);
}
END_TEST

/* A lane's cap raised while it has a backlog (a reload of
 * MaxCallsPerPlugin=): the waiting jobs start up to the new cap at once,
 * not one per finished job, though the job that holds the lane hangs. */
START_TEST(test_lane_cap_raised)
{
        atomic_bool gate = false;
        ph_pool_lane lane = { 0 };
        uv_loop_t loop;
        ph_pool *pool;
        tjob a, b, c, d;

        uv_loop_init(&loop);
        all_done = 0;
        ck_assert_int_eq(ph_pool_new(&loop, 4, 16, &pool), 0);
        tjob_init(&a, &gate);
        tjob_init(&b, NULL);
        tjob_init(&c, NULL);
        tjob_init(&d, NULL);
        ck_assert_int_eq(ph_pool_submit_lane(pool, &lane, 1, &a.job), 0);
        ck_assert_int_eq(ph_pool_submit_lane(pool, &lane, 1, &b.job), 0);
        ck_assert_int_eq(ph_pool_submit_lane(pool, &lane, 1, &c.job), 0);
        uv_run(&loop, UV_RUN_NOWAIT);           /* a runs (and hangs); b, c wait */
        usleep(100 * 1000);
        ck_assert_int_eq(atomic_load(&b.ran), 0);
        ck_assert_int_eq(ph_pool_submit_lane(pool, &lane, 3, &d.job), 0);
        uv_run(&loop, UV_RUN_NOWAIT);
        ck_assert_msg(ran_within(&b) && ran_within(&c),
                      "the raised cap did not let the waiting jobs start");
        atomic_store(&gate, true);
        run_until(&loop, &all_done, 4);
        ck_assert_int_eq(a.done + b.done + c.done + d.done, 4);
        ck_assert_uint_eq(ph_pool_busy(pool), 0);
        pool_end(&loop, pool);
}
END_TEST

/* A lane's job taken back from the queue (no thread free yet) gives its
 * place to the next one in the lane. */
START_TEST(test_lane_cancel_queued)
{
        atomic_bool gate = false;
        ph_pool_lane lane = { 0 };
        uv_loop_t loop;
        ph_pool *pool;
        tjob block, l1, l2;

        uv_loop_init(&loop);
        ck_assert_int_eq(ph_pool_new(&loop, 1, 16, &pool), 0);
        tjob_init(&block, &gate);
        tjob_init(&l1, NULL);
        tjob_init(&l2, NULL);
        ck_assert_int_eq(ph_pool_submit(pool, &block.job), 0);
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(100 * 1000);                     /* the one thread takes block */
        ck_assert_int_eq(ph_pool_submit_lane(pool, &lane, 1, &l1.job), 0);
        ck_assert_int_eq(ph_pool_submit_lane(pool, &lane, 1, &l2.job), 0);
        uv_run(&loop, UV_RUN_NOWAIT);           /* l1 queued, l2 in the lane */
        ck_assert_int_eq(ph_pool_cancel(pool, &l1.job), 0);
        atomic_store(&gate, true);
        run_until(&loop, &l2.done, 1);
        ck_assert_int_eq(l2.done, 1);
        ck_assert_int_eq(atomic_load(&l1.ran), 0);
        ck_assert_int_eq(l1.done, 0);
        pool_end(&loop, pool);
}
END_TEST

static Suite *pool_suite(void)
{
        Suite *s = suite_create("pool");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_job_behind_stuck_one);
        tcase_add_test(tc, test_burst);
        tcase_add_test(tc, test_cancel_in_turn);
        tcase_add_test(tc, test_queue_cap);
        tcase_add_test(tc, test_free_runs_turn);
        tcase_add_test(tc, test_lane_cap);
        tcase_add_test(tc, test_lane_cap_raised);
        tcase_add_test(tc, test_lane_cancel_queued);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(pool_suite()) == 0 ? 0 : 1;
}
