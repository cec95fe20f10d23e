/* The loop's side of isolated plugins: calls go to the worker over a
 * non-blocking pipe on the loop, without a plugin thread between (a call
 * is then two wake-ups, the worker's and the loop's, as an in-process one
 * is the plugin thread's and the loop's). The worker answers in order;
 * the calls in flight are a FIFO, and the head's deadline kills the worker.
 * What blocks (reaping a dead worker, starting a new one, which runs
 * init) runs as a job on the plugin pool. Loop thread. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>

#include "log.h"
#include "pool.h"
#include "worker-internal.h"
#include "../protocol/worker.h"

/* One worker process's connection. */
typedef struct wk_chan {
        uv_pipe_t pipe;
        uv_timer_t deadline;            /* the head's */
        int closing;                    /* handles not yet closed */
        struct wk_side *side;           /* NULL once it failed or was detached */
        ph_framer *fr;
        ph_wcall *head, *tail;          /* sent, not answered, in order */
        pid_t pid;
        bool timed_out;                 /* we killed it at the head's deadline */
        bool graced;                    /* the head's deadline waited once for I/O */
        uint64_t next_id;
} wk_chan;

typedef enum { SIDE_IDLE, SIDE_REAPING, SIDE_STARTING } side_job;

typedef struct wk_side {
        wk *w;
        uv_loop_t *loop;
        ph_pool *pool;
        wk_chan *chan;                  /* the running worker's, or NULL */
        ph_wcall *pending, *pending_tail;       /* waiting for a worker */
        ph_wcall *soon, *soon_tail;     /* answered already, completed from the timer */
        uv_timer_t timer;               /* soon completions; the restart's backoff */
        bool closing;
        /* The job on the pool, if any (one at a time). */
        ph_job job;
        side_job kind;                  /* the job running, or SIDE_IDLE */
        bool reap_owed;                 /* a reap the full pool did not take yet */
        ph_wcall *victim;               /* REAPING: the call the worker failed, or NULL */
        bool timed_out;
        bool garbled;                   /* it sent what is not an answer: killed */
        ph_fault fault;
        int r;
        char err[512];
} wk_side;

static void side_kick(wk_side *s);
static void side_submit(wk_side *s, side_job kind);

/* ---- queues ---- */

static void q_push(ph_wcall **head, ph_wcall **tail, ph_wcall *c)
{
        c->next = NULL;
        if (*tail)
                (*tail)->next = c;
        else
                *head = c;
        *tail = c;
}

static ph_wcall *q_pop(ph_wcall **head, ph_wcall **tail)
{
        ph_wcall *c = *head;

        if (c) {
                *head = c->next;
                if (!*head)
                        *tail = NULL;
                c->next = NULL;
        }
        return c;
}

static void soon_cb(uv_timer_t *t);

/* Completes c from the timer, never inside the caller. */
static void side_soon(wk_side *s, ph_wcall *c)
{
        q_push(&s->soon, &s->soon_tail, c);
        uv_timer_start(&s->timer, soon_cb, 0, 0);
}

/* c's outcome: f, r and the message "NAME: why". */
static void fail_call(ph_wcall *c, const ph_fault *f, int r, const char *name, const char *why)
{
        c->r = r;
        c->result = NULL;
        c->fault = *f;
        if (c->err_size)
                snprintf(c->err, c->err_size, "%s: %s", name, why);
}

static void quarantined_fault(ph_fault *f)
{
        memset(f, 0, sizeof(*f));
        f->kind = PH_FAULT_QUARANTINED;
        f->exit_status = -1;
        snprintf(f->what, sizeof(f->what), "quarantined after %u faults within %u s",
                 PH_WORKER_CRASH_LIMIT, PH_WORKER_CRASH_WINDOW_MS / 1000u);
}

/* Every pending call gets f (the worker could not be started, or the
 * generation is quarantined). */
static void fail_pending(wk_side *s, const ph_fault *f, int r, const char *why)
{
        for (ph_wcall *c; (c = q_pop(&s->pending, &s->pending_tail));) {
                fail_call(c, f, r, s->w->name, why);
                side_soon(s, c);
        }
}

static void soon_cb(uv_timer_t *t)
{
        wk_side *s = t->data;

        for (ph_wcall *c; (c = q_pop(&s->soon, &s->soon_tail));)
                c->done(c);
        side_kick(s);
}

/* ---- the connection ---- */

static void chan_closed(uv_handle_t *h)
{
        wk_chan *ch = h->data;

        if (--ch->closing == 0) {
                ph_framer_free(ch->fr);
                free(ch);
        }
}

static void chan_close(wk_chan *ch)
{
        if (ch->side && ch->side->chan == ch)
                ch->side->chan = NULL;
        ch->side = NULL;
        ch->closing = 2;
        uv_close((uv_handle_t *)&ch->pipe, chan_closed);
        uv_close((uv_handle_t *)&ch->deadline, chan_closed);
}

static void deadline_cb(uv_timer_t *t)
{
        wk_chan *ch = t->data;
        struct pollfd pfd = { .events = POLLIN };
        uv_os_fd_t fd;

        /* libuv runs timers before I/O: an answer may be waiting already
         * (a slow loop iteration). Read it first, once. */
        if (!ch->graced && uv_fileno((uv_handle_t *)&ch->pipe, &fd) == 0) {
                pfd.fd = fd;
                if (poll(&pfd, 1, 0) > 0) {
                        ch->graced = true;
                        uv_timer_start(&ch->deadline, deadline_cb, 10, 0);
                        return;
                }
        }
        /* Real cancellation: the worker goes, threads and all; its EOF
         * comes next and the reap says the rest. */
        ch->timed_out = true;
        kill(-ch->pid, SIGKILL);
        kill(ch->pid, SIGKILL);
}

/* The head's deadline is its client's (the worker does not start a call
 * past it, and is killed if the head runs past it); a call without one
 * gets CallTimeoutSec= from when it became the head. */
static void chan_arm(wk_chan *ch)
{
        uint64_t now = wk_now_ms(), in;

        ch->graced = false;
        if (!ch->head) {
                uv_timer_stop(&ch->deadline);
                return;
        }
        in = ch->head->deadline_ms ? (ch->head->deadline_ms > now ? ch->head->deadline_ms - now : 0)
                                   : ch->side->w->timeout_ms;
        uv_timer_start(&ch->deadline, deadline_cb, in, 0);
}

/* The worker is gone (or must go): its current call waits for the reap's
 * verdict; the calls behind it never ran and wait for the next worker. */
static void chan_fail(wk_chan *ch, bool garbled)
{
        wk_side *s = ch->side;
        ph_wcall *rest;

        if (!s)
                return;
        if (garbled && !ch->timed_out) {
                /* A garbled frame from a live worker: it goes too. (After
                 * an EOF the reap looks first: a crashed worker's own
                 * signal is what counts.) */
                kill(-ch->pid, SIGKILL);
                kill(ch->pid, SIGKILL);
        }
        s->victim = q_pop(&ch->head, &ch->tail);
        s->timed_out = ch->timed_out;
        s->garbled = garbled && !ch->timed_out;
        rest = ch->head;
        if (rest) {
                ch->tail->next = s->pending;
                if (!s->pending)
                        s->pending_tail = ch->tail;
                s->pending = rest;
        }
        ch->head = ch->tail = NULL;
        chan_close(ch);
        side_submit(s, SIDE_REAPING);
}

/* One answer, for the head. */
static int chan_answer(wk_chan *ch, const char *msg, size_t len)
{
        ph_wcall *c = ch->head;
        json_t *reply = json_loadb(msg, len, 0, NULL), *result;
        json_int_t id = -1;

        /* An answer for the head, by its id: a frame sent ahead of time
         * cannot shift answers onto other calls (other clients'). */
        json_unpack(reply, "{s:{s:I}}", "parameters", "id", &id);
        if (!c || !reply || id != (json_int_t)c->id) {
                json_decref(reply);
                return -EPROTO;
        }
        q_pop(&ch->head, &ch->tail);
        memset(&c->fault, 0, sizeof(c->fault));
        c->result = NULL;
        if (json_object_get(reply, "error")) {
                c->r = wk_failed(reply, c->err, c->err_size);
        } else {
                result = json_object_get(json_object_get(reply, "parameters"), "result");
                c->r = 0;
                if (json_is_string(result)) {
                        c->result = strndup(json_string_value(result), json_string_length(result));
                        if (!c->result)
                                c->r = -ENOMEM;
                } else if (!json_is_null(result)) {
                        c->r = -EPROTO;
                }
                if (c->r < 0 && c->err_size)
                        snprintf(c->err, c->err_size, "%s.%s: %s", ch->side->w->name, c->method,
                                 strerror(-c->r));
        }
        json_decref(reply);
        chan_arm(ch);
        c->done(c);
        return 0;
}

static void chan_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        wk_chan *ch = h->data;
        size_t room = 0;
        char *p = NULL;

        (void)suggested;
        if (ph_framer_reserve(ch->fr, 65536, &p, &room) < 0)
                room = 0;
        *buf = uv_buf_init(p, (unsigned)room);
}

static void chan_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
        wk_chan *ch = st->data;
        const char *msg;
        size_t len;
        int r;

        (void)buf;
        if (n == 0)
                return;
        if (n < 0) {
                chan_fail(ch, false);
                return;
        }
        ph_framer_commit(ch->fr, (size_t)n);
        while (ch->side && (r = ph_framer_next(ch->fr, &msg, &len)) != 0) {
                if (r < 0 || chan_answer(ch, msg, len) < 0) {
                        chan_fail(ch, true);
                        return;
                }
        }
}

typedef struct chan_write {
        uv_write_t req;
        char text[];
} chan_write;

static void chan_written(uv_write_t *req, int status)
{
        (void)status;   /* a failed write shows as the read's EOF */
        free(req);
}

static void chan_send(wk_chan *ch, ph_wcall *c)
{
        bool first = !ch->head;
        chan_write *wr;
        uv_buf_t buf;
        json_t *msg;
        char *text;
        size_t len;

        c->id = ++ch->next_id;
        msg = json_pack("{s:s, s:{s:s, s:s, s:I, s:I}}", "method", PH_WORKER_CALL, "parameters",
                        "method", c->method, "params", c->params ? c->params : "{}", "id",
                        (json_int_t)c->id, "deadline", (json_int_t)c->deadline_ms);
        text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
        len = text ? strlen(text) + 1 : 0;
        wr = text ? malloc(sizeof(*wr) + len) : NULL;
        json_decref(msg);
        q_push(&ch->head, &ch->tail, c);
        if (first)
                chan_arm(ch);
        if (!wr) {
                free(text);
                chan_fail(ch, false);   /* out of memory: as a fault, retried */
                return;
        }
        memcpy(wr->text, text, len);
        free(text);
        buf = uv_buf_init(wr->text, (unsigned)len);
        if (uv_write(&wr->req, (uv_stream_t *)&ch->pipe, &buf, 1, chan_written) < 0) {
                free(wr);
                chan_fail(ch, false);
        }
}

/* The loop takes the worker's socket over (a dup of it: the blocking side
 * keeps its own for Stop). */
static int chan_attach(wk_side *s)
{
        wk *w = s->w;
        wk_chan *ch = calloc(1, sizeof(*ch));
        int fd = -1, r;

        if (!ch)
                return -ENOMEM;
        pthread_mutex_lock(&w->lock);
        if (w->pid)
                fd = fcntl(w->fd, F_DUPFD_CLOEXEC, 3);
        ch->pid = w->pid;
        pthread_mutex_unlock(&w->lock);
        r = fd < 0 ? -EBADF : ph_framer_new(WK_MESSAGE_MAX, &ch->fr);
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                free(ch);
                return r;
        }
        uv_pipe_init(s->loop, &ch->pipe, 0);
        uv_timer_init(s->loop, &ch->deadline);
        ch->pipe.data = ch->deadline.data = ch;
        ch->side = s;
        s->chan = ch;
        if (uv_pipe_open(&ch->pipe, fd) < 0 ||
            uv_read_start((uv_stream_t *)&ch->pipe, chan_alloc, chan_read) < 0) {
                chan_close(ch);
                return -EIO;
        }
        return 0;
}

/* ---- jobs: reaping and starting, which block ---- */

static void job_work(ph_job *j)
{
        wk_side *s = (wk_side *)((char *)j - offsetof(wk_side, job));
        wk *w = s->w;

        pthread_mutex_lock(&w->lock);
        memset(&s->fault, 0, sizeof(s->fault));
        s->fault.exit_status = -1;
        s->err[0] = '\0';
        if (s->kind == SIDE_REAPING) {
                char during[PH_NAME_MAX + 16];

                s->fault.kind = s->timed_out ? PH_FAULT_TIMEOUT : PH_FAULT_CRASHED;
                if (w->pid)
                        wk_reap(w, s->timed_out || s->garbled, &s->fault);
                if (s->timed_out)
                        snprintf(s->fault.what, sizeof(s->fault.what),
                                 "no answer within %u ms; the worker was killed", w->timeout_ms);
                else if (s->garbled)
                        snprintf(s->fault.what, sizeof(s->fault.what),
                                 "it sent a message that is not an answer; killed");
                if (s->victim)
                        snprintf(during, sizeof(during), "call \"%.*s\"", (int)PH_NAME_MAX,
                                 s->victim->method);
                else
                        snprintf(during, sizeof(during), "no call");
                wk_faulted(w, &s->fault, during);
        } else if (!w->quarantined && !w->pid) {
                uint64_t now = wk_now_ms();

                /* The backoff was waited out on the loop; a rest of it here. */
                if (now < w->next_start_ms)
                        usleep((useconds_t)((w->next_start_ms - now) * 1000u));
                s->r = wk_start(w, &s->fault, NULL, s->err, sizeof(s->err));
                if (s->r < 0 && s->fault.kind != PH_FAULT_NONE)
                        wk_faulted(w, &s->fault, "init");
        }
        pthread_mutex_unlock(&w->lock);
}

static bool side_quarantined(wk_side *s)
{
        bool q;

        pthread_mutex_lock(&s->w->lock);
        q = s->w->quarantined;
        pthread_mutex_unlock(&s->w->lock);
        return q;
}

static void (*quarantine_cb)(void *handle, const char *why, void *userdata);
static void *quarantine_userdata;

void ph_worker_set_quarantine_cb(void (*cb)(void *handle, const char *why, void *userdata),
                                 void *userdata)
{
        quarantine_cb = cb;
        quarantine_userdata = userdata;
}

static void job_done(ph_job *j)
{
        wk_side *s = (wk_side *)((char *)j - offsetof(wk_side, job));
        side_job kind = s->kind;
        char why[PH_NAME_MAX + sizeof(s->fault.what) + 128] = "";
        wk *w = s->w;
        ph_fault q;

        s->kind = SIDE_IDLE;
        if (kind == SIDE_REAPING) {
                ph_wcall *c = s->victim;

                /* A fault with no call to carry it (the worker died between
                 * calls, or sent what nobody asked for) still counts. */
                if (!c && s->fault.quarantined_now)
                        snprintf(why, sizeof(why), "%s: the worker faulted (%s); quarantined after "
                                 "too many faults, until its file changes", w->name, s->fault.what);

                s->victim = NULL;
                if (c) {
                        fail_call(c, &s->fault, s->timed_out ? -ETIMEDOUT : -EPIPE, s->w->name,
                                  s->timed_out ? "the worker hung" : "the worker died");
                        if (c->err_size) {
                                size_t n = strlen(c->err);

                                snprintf(c->err + n, c->err_size - n, " in %s: %s%s", c->method,
                                         s->fault.what,
                                         s->fault.quarantined_now
                                                 ? "; quarantined after too many faults, until "
                                                   "its file changes"
                                                 : "");
                        }
                        side_soon(s, c);
                }
        } else if (s->r < 0) {
                /* No worker for the calls that wait: each gets why. */
                ph_fault f = s->fault;

                if (f.kind == PH_FAULT_NONE)
                        f.kind = PH_FAULT_CRASHED;
                fail_pending(s, &f, s->r, s->err);
        } else if (s->pending && !s->chan && chan_attach(s) < 0) {
                ph_fault f = { .kind = PH_FAULT_CRASHED, .exit_status = -1 };

                snprintf(f.what, sizeof(f.what), "cannot watch the new worker");
                fail_pending(s, &f, -EIO, f.what);
        }
        if (side_quarantined(s)) {
                quarantined_fault(&q);
                fail_pending(s, &q, -EIO, q.what);
        }
        side_kick(s);
        /* Last: the lifecycle may retire the instance, and detach s. */
        if (why[0] && quarantine_cb)
                quarantine_cb(w, why, quarantine_userdata);
}

static void side_submit(wk_side *s, side_job kind)
{
        s->kind = kind;
        s->reap_owed = false;
        s->job.work = job_work;
        s->job.done = job_done;
        if (ph_pool_submit(s->pool, &s->job) < 0) {
                /* The queue is full: try again shortly. */
                s->kind = SIDE_IDLE;
                s->reap_owed = kind == SIDE_REAPING;
                uv_timer_start(&s->timer, soon_cb, 50, 0);
        }
}

/* Moves things on: the pending calls to the worker, or a start when none
 * runs (after the backoff). */
static void side_kick(wk_side *s)
{
        uint64_t wait = 0, now;

        if (s->closing || s->kind != SIDE_IDLE)
                return;
        if (s->reap_owed) {
                side_submit(s, SIDE_REAPING);
                return;
        }
        /* Calls nobody waits for any more are not run (or run again). */
        for (ph_wcall **pp = &s->pending, *prev = NULL, *c; (c = *pp);) {
                if (!c->cancelled) {
                        prev = c;
                        pp = &c->next;
                        continue;
                }
                *pp = c->next;
                if (s->pending_tail == c)
                        s->pending_tail = prev;
                c->r = -ECANCELED;
                c->result = NULL;
                q_push(&s->soon, &s->soon_tail, c);
                uv_timer_start(&s->timer, soon_cb, 0, 0);
        }
        if (s->chan) {
                for (ph_wcall *c; s->chan && (c = q_pop(&s->pending, &s->pending_tail));)
                        chan_send(s->chan, c);
                return;
        }
        if (!s->pending)
                return;
        pthread_mutex_lock(&s->w->lock);
        now = wk_now_ms();
        if (s->w->next_start_ms > now)
                wait = s->w->next_start_ms - now;
        pthread_mutex_unlock(&s->w->lock);
        if (wait > 0) {
                uv_timer_start(&s->timer, soon_cb, wait, 0);
                return;
        }
        side_submit(s, SIDE_STARTING);
}

/* ---- the API ---- */

void ph_worker_call_async(void *handle, uv_loop_t *loop, ph_pool *pool, ph_wcall *c)
{
        wk *w = handle;
        wk_side *s = w->side;

        c->r = 0;
        c->result = NULL;
        memset(&c->fault, 0, sizeof(c->fault));
        if (!s) {
                s = calloc(1, sizeof(*s));
                if (!s) {
                        /* No way to answer later without memory: the caller's
                         * deadline will. */
                        log_err("plugin %s: out of memory for a call", w->name);
                        return;
                }
                s->w = w;
                s->loop = loop;
                s->pool = pool;
                uv_timer_init(loop, &s->timer);
                s->timer.data = s;
                w->side = s;
                /* The worker the load started, if it still runs. */
                chan_attach(s);
        }
        if (side_quarantined(s)) {
                ph_fault q;

                quarantined_fault(&q);
                snprintf(q.what + strlen(q.what), sizeof(q.what) - strlen(q.what),
                         "; replace its file to try again");
                fail_call(c, &q, -EIO, w->name, q.what);
                side_soon(s, c);
                return;
        }
        if (s->chan && !s->pending) {
                chan_send(s->chan, c);
                return;
        }
        q_push(&s->pending, &s->pending_tail, c);
        side_kick(s);
}

static void side_closed(uv_handle_t *h)
{
        free(h->data);
}

void ph_worker_detach(void *handle)
{
        wk *w = handle;
        wk_side *s = w ? w->side : NULL;

        if (!s)
                return;
        s->closing = true;
        if (s->chan)
                chan_close(s->chan);
        w->side = NULL;
        uv_close((uv_handle_t *)&s->timer, side_closed);
}
