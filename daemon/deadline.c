/* The deadline heap: a binary min-heap of armed deadlines by time, and one
 * uv_timer set for the earliest. Arming, cancelling and firing are
 * O(log n); the timer is re-set only when the earliest deadline changes. */
#include <errno.h>
#include <stdlib.h>

#include "deadline.h"
#include "vec.h"

struct ph_deadlines {
        uv_timer_t timer;
        ph_deadline **heap;
        size_t n, cap;
        uint64_t timer_at;              /* what the timer is set for; 0: stopped */
};

static void heap_set(ph_deadlines *q, size_t i, ph_deadline *dl)
{
        q->heap[i] = dl;
        dl->index = i + 1;
}

static void heap_up(ph_deadlines *q, size_t i)
{
        ph_deadline *dl = q->heap[i];

        while (i > 0) {
                size_t parent = (i - 1) / 2;

                if (q->heap[parent]->at <= dl->at)
                        break;
                heap_set(q, i, q->heap[parent]);
                i = parent;
        }
        heap_set(q, i, dl);
}

static void heap_down(ph_deadlines *q, size_t i)
{
        ph_deadline *dl = q->heap[i];

        for (;;) {
                size_t child = 2 * i + 1;

                if (child >= q->n)
                        break;
                if (child + 1 < q->n && q->heap[child + 1]->at < q->heap[child]->at)
                        child++;
                if (dl->at <= q->heap[child]->at)
                        break;
                heap_set(q, i, q->heap[child]);
                i = child;
        }
        heap_set(q, i, dl);
}

static void heap_remove(ph_deadlines *q, ph_deadline *dl)
{
        size_t i = dl->index - 1;
        ph_deadline *last = q->heap[--q->n];

        dl->index = 0;
        if (last == dl)
                return;
        heap_set(q, i, last);
        heap_down(q, i);
        heap_up(q, last->index - 1);
}

static void timer_cb(uv_timer_t *t);

/* Points the timer at the earliest deadline. */
static void timer_update(ph_deadlines *q)
{
        uint64_t now, at;

        if (q->n == 0) {
                if (q->timer_at)
                        uv_timer_stop(&q->timer);
                q->timer_at = 0;
                return;
        }
        at = q->heap[0]->at;
        if (at == q->timer_at)
                return;
        now = uv_now(q->timer.loop);
        q->timer_at = at;
        uv_timer_start(&q->timer, timer_cb, at > now ? at - now : 0, 0);
}

static void timer_cb(uv_timer_t *t)
{
        ph_deadlines *q = t->data;
        uint64_t now = uv_now(t->loop);

        q->timer_at = 0;
        /* A callback may arm or cancel others: take the root each time. */
        while (q->n > 0 && q->heap[0]->at <= now) {
                ph_deadline *dl = q->heap[0];

                heap_remove(q, dl);
                dl->cb(dl);
        }
        timer_update(q);
}

int ph_deadlines_new(uv_loop_t *loop, ph_deadlines **ret)
{
        ph_deadlines *q = calloc(1, sizeof(*q));

        if (!q)
                return -ENOMEM;
        uv_timer_init(loop, &q->timer);
        q->timer.data = q;
        *ret = q;
        return 0;
}

static void close_cb(uv_handle_t *h)
{
        ph_deadlines *q = h->data;

        free(q->heap);
        free(q);
}

void ph_deadlines_free(ph_deadlines *q)
{
        if (!q)
                return;
        for (size_t i = 0; i < q->n; i++)
                q->heap[i]->index = 0;
        q->n = 0;
        uv_close((uv_handle_t *)&q->timer, close_cb);
}

int ph_deadline_arm(ph_deadlines *q, ph_deadline *dl, uint64_t ms, void (*cb)(ph_deadline *dl))
{
        uint64_t at = uv_now(q->timer.loop) + ms;

        dl->cb = cb;
        if (dl->index) {
                dl->at = at;
                heap_down(q, dl->index - 1);
                heap_up(q, dl->index - 1);
        } else {
                if (ph__vec_reserve((void **)&q->heap, &q->cap, q->n + 1, sizeof(*q->heap)) < 0)
                        return -ENOMEM;
                dl->at = at;
                q->heap[q->n] = dl;
                dl->index = ++q->n;
                heap_up(q, q->n - 1);
        }
        timer_update(q);
        return 0;
}

void ph_deadline_cancel(ph_deadlines *q, ph_deadline *dl)
{
        if (!dl->index)
                return;
        heap_remove(q, dl);
        timer_update(q);
}

size_t ph_deadlines_count(const ph_deadlines *q)
{
        return q->n;
}
