/* Operations on the plugin pool and the clients waiting for them.
 *
 * DESIGN: an operation is a self-contained job (inputs copied, the
 * configuration it started with referenced, outputs in its own fields);
 * its work runs on a pool thread and touches nothing else, except the
 * cache (which locks) and, for a call, the instance lifecycle.c lent it.
 * Everything else happens on the loop: waiters join and leave, deadlines
 * fire, the outcome is applied. A waiter is answered exactly once, by
 * whichever comes first of the outcome, its deadline, or a stop; it is
 * freed right after. An operation whose waiters all left still runs to the
 * end: a thread cannot be taken back from plugin code. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crash.h"
#include "log.h"
#include "ops.h"
#include "policy.h"
#include "state.h"
#include "varlink.h"
#include "vec.h"

typedef struct uid_slot {
        uid_t uid;
        unsigned n;
} uid_slot;

struct ph_ops {
        uv_loop_t *loop;
        ph_pool *pool;
        ph_deadlines *deadlines;
        const ph_config *cfg;           /* borrowed: the daemon's current one */
        void *userdata;
        uid_slot *uids;                 /* plugin threads held per uid */
        size_t n_uids, cap_uids;
        ph_op *all;                     /* every operation not yet freed */
        unsigned running;
};

int ph_ops_new(uv_loop_t *loop, ph_pool *pool, void *userdata, ph_ops **ret)
{
        ph_ops *ops = calloc(1, sizeof(*ops));
        int r;

        if (!ops)
                return -ENOMEM;
        ops->userdata = userdata;
        ops->loop = loop;
        ops->pool = pool;
        r = ph_deadlines_new(loop, &ops->deadlines);
        if (r < 0) {
                free(ops);
                return r;
        }
        *ret = ops;
        return 0;
}

void ph_ops_free(ph_ops *ops)
{
        if (!ops)
                return;
        ph_deadlines_free(ops->deadlines);
        free(ops->uids);
        free(ops);
}

void ph_ops_set_config(ph_ops *ops, const ph_config *cfg)
{
        ops->cfg = cfg;
}

/* ---- plugin threads per uid ---- */

static uid_slot *uid_find(ph_ops *ops, uid_t uid, bool create)
{
        uid_slot s = { uid, 0 };

        for (size_t i = 0; i < ops->n_uids; i++)
                if (ops->uids[i].uid == uid)
                        return &ops->uids[i];
        if (!create ||
            ph__vec_push((void **)&ops->uids, &ops->n_uids, &ops->cap_uids, sizeof(s), &s) < 0)
                return NULL;
        return &ops->uids[ops->n_uids - 1];
}

bool ph_ops_uid_has_room(ph_ops *ops, uid_t uid, unsigned *ret_now)
{
        uid_slot *s = uid_find(ops, uid, false);

        *ret_now = s ? s->n : 0;
        /* Root and the daemon's own user administer it: never capped. */
        if (uid == 0 || uid == geteuid())
                return true;
        return *ret_now < ops->cfg->max_calls_per_uid;
}

static void uid_release(ph_ops *ops, uid_t uid)
{
        uid_slot *s = uid_find(ops, uid, false);

        if (s && s->n > 0 && --s->n == 0)
                *s = ops->uids[--ops->n_uids];  /* a uid with nothing running takes no room */
}

/* ---- the work, on a pool thread ---- */

/* The cache's trust hook for this operation: the file as opened and the
 * sealed copy of its bytes, judged with the configuration the operation
 * started with. */
int ph_ops_check_cb(const struct stat *file_st, int image_fd, const ph_load_request *req, char *err,
                    size_t err_size)
{
        ph_op *op = req->userdata;
        char why[256], hex[65];
        int r;

        /* Its directory passed when op_work opened it. */
        if (ph_policy_check_file(file_st, why, sizeof(why)) < 0) {
                snprintf(err, err_size, "untrusted file: %s", why);
                return -EPERM;
        }
        if (!op->cfg->digests)
                return 0;
        /* The hash is of the sealed copy: the very bytes that will run. */
        r = ph_digests_match(op->cfg->digests, image_fd, hex);
        if (r == 1)
                return 0;
        if (r < 0)
                snprintf(err, err_size, "hashing: %s", strerror(-r));
        else
                snprintf(err, err_size, "SHA-256 %s is not in the digests file", hex);
        return -EPERM;
}

/* The cache's init hook: the quarantine marker around init. */
void ph_ops_init_cb(const ph_load_request *req, bool done)
{
        ph_op *op = req->userdata;

        if (!done)
                ph_state_init_mark(op->cfg->state_dir, op->name, &op->id);
        else
                ph_state_init_clear(op->cfg->state_dir, op->name);
}

/* A call's result: a JSON object (or nothing, for null) of at most
 * max_result bytes, checked here by jansson, the one parser, so the loop
 * never parses plugin output; the text is then sent as the plugin wrote
 * it (valid JSON without a NUL: it cannot break the framing), so its size
 * as sent is its size. */
static void op_take_result(ph_op *op, char *text)
{
        json_error_t jerr;
        json_t *j;

        if (!text)
                return;
        op->result_size = strnlen(text, op->max_result + 1);
        if (op->result_size > op->max_result) {
                op->result_size = strlen(text);
                op->r = -EMSGSIZE;
                snprintf(op->err, sizeof(op->err), "the result is %zu bytes, the limit is %zu",
                         op->result_size, op->max_result);
        } else if (!(j = json_loadb(text, op->result_size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                                    &jerr))) {
                op->r = -EBADMSG;
                op->call_failed = true;
                snprintf(op->err, sizeof(op->err), "returned invalid JSON: %s", jerr.text);
        } else if (json_is_null(j)) {
                json_decref(j);         /* the same as no result */
        } else if (!json_is_object(j)) {
                json_decref(j);
                op->r = -EBADMSG;
                op->call_failed = true;
                snprintf(op->err, sizeof(op->err), "returned JSON that is not an object");
        } else {
                json_decref(j);
                op->result = text;
                return;
        }
        free(text);
}

/* The file is opened in its directory as the policy walked it (see
 * ph_policy_open_dir), by name, with O_NOFOLLOW: no path is resolved
 * again between the check and the load. */
static void op_load(ph_op *op)
{
        const char *slash = strrchr(op->path, '/');
        char dir[PATH_MAX], why[512];
        int dirfd = -1;

        if (!slash || (size_t)(slash - op->path) >= sizeof(dir)) {
                op->r = -EINVAL;
                snprintf(op->err, sizeof(op->err), "%s: not an absolute path: %s", op->name, op->path);
                return;
        }
        memcpy(dir, op->path, (size_t)(slash - op->path));
        dir[slash - op->path] = '\0';
        op->r = ph_policy_open_dir(dir[0] ? dir : "/", &dirfd, why, sizeof(why));
        if (op->r < 0) {
                if (op->r == -EPERM)
                        snprintf(op->err, sizeof(op->err), "%s: untrusted directory: %s", op->name, why);
                else
                        snprintf(op->err, sizeof(op->err), "%s: %.512s: %s", op->name, dir, strerror(-op->r));
                return;
        }
        ph_load_request req = { .name = op->name, .generation = op->generation, .dirfd = dirfd,
                                .path = slash + 1, .config_json = op->config_json, .userdata = op,
                                .runner = op->isolated ? &ph_worker_runner : NULL,
                                .runner_data = &op->wopts };

        /* dlopen runs the plugin's constructors, then init: both "init". */
        ph_crash_enter(op->name, "init", NULL);
        op->r = ph_cache_get(op->cache, &req, &op->inst, op->err, sizeof(op->err));
        ph_crash_leave();
        close(dirfd);
}

static void op_work(ph_job *job)
{
        ph_op *op = (ph_op *)job;
        char *text = NULL;

        atomic_store_explicit(&op->started, true, memory_order_relaxed);
        if (op->kind == PH_OP_LOAD) {
                op_load(op);
                return;
        }
        /* Serialised here, off the loop. jansson's reference counts are
         * atomic and nothing changes the object any more: the loop holds
         * its reference only to drop it. */
        if (!op->params)
                op->params = op->params_json ? json_dumps(op->params_json, JSON_COMPACT)
                                             : strdup("{}");
        if (!op->params) {
                op->r = -ENOMEM;
                snprintf(op->err, sizeof(op->err), "out of memory");
                return;
        }
        /* op's name and method outlive the call: op is freed on the loop. */
        ph_crash_enter(op->name, "call", op->method);
        op->r = ph_instance_call(op->call_inst, op->method, op->params, &text, op->err,
                                 sizeof(op->err));
        ph_crash_leave();
        if (op->r < 0) {
                op->call_failed = true;
                ph_worker_take_fault(&op->fault);
        } else {
                op_take_result(op, text);
        }
}

static void lane_pump(ph_lane *lane);

static void op_done(ph_job *job)
{
        ph_op *op = (ph_op *)job;

        op->running = false;
        op->ops->running--;
        if (op->counted)
                uid_release(op->ops, op->uid);
        op->counted = false;
        if (op->lane) {
                /* Its room goes to the next in line before done() may free
                 * the lane's owner (op still holds it here). */
                ph_lane *lane = op->lane;

                op->lane = NULL;
                lane->running--;
                lane_pump(lane);
        }
        op->done(op);
}

/* ---- operations ---- */

ph_op *ph_op_new(ph_ops *ops, ph_op_kind kind, const ph_plugin *p, ph_cache *cache)
{
        ph_op *op = calloc(1, sizeof(*op));

        if (!op)
                return NULL;
        op->ops = ops;
        op->kind = kind;
        op->userdata = ops->userdata;
        op->cache = cache;
        op->plugin_id = p->id;
        op->generation = p->file->generation;
        op->id = p->file->id;
        op->cfg = ph_config_ref((ph_config *)ops->cfg);
        /* What fits in a reply, with room for its envelope. */
        op->max_result = (ops->cfg->max_message < PH_VARLINK_MESSAGE_MAX ? ops->cfg->max_message
                                                                        : PH_VARLINK_MESSAGE_MAX) - 256;
        op->started_ms = uv_now(ops->loop);
        op->started_ns = uv_hrtime();
        if (kind == PH_OP_LOAD) {
                ph_config_isolation(op->cfg, p->name, p->file->path, &op->wopts.iso);
                op->isolated = op->wopts.iso.mode == PH_ISOLATION_PROCESS;
                op->wopts.path = op->cfg->worker_path;
                op->wopts.timeout_ms = (unsigned)(op->cfg->call_timeout_sec * 1000.0);
        }
        op->job.work = op_work;
        op->job.done = op_done;
        if (!(op->name = strdup(p->name)) ||
            (kind == PH_OP_LOAD &&
             (!(op->path = strdup(p->file->path)) ||
              !(op->config_json = strdup(ph_config_plugin_json(ops->cfg, p->name)))))) {
                ph_op_free(op);
                return NULL;
        }
        op->all_next = ops->all;
        if (ops->all)
                ops->all->all_prev = op;
        ops->all = op;
        return op;
}

/* An operation holds its uid's place from admission (a call waiting in
 * a lane included) to its end: MaxCallsPerUser= counts both. */
static void op_charge(ph_op *op, bool has_uid, uid_t uid)
{
        uid_slot *s = has_uid ? uid_find(op->ops, uid, true) : NULL;

        if (s) {
                s->n++;
                op->uid = uid;
                op->counted = true;
        }
}

/* An isolated plugin's call is done: as op_work and op_done would. */
static void op_wcall_done(ph_wcall *c)
{
        ph_op *op = (ph_op *)((char *)c - offsetof(ph_op, wcall));

        op->r = c->r;
        op->fault = c->fault;
        /* Not run (nobody waited any more, or its deadline passed before
         * the worker came to it): counted nowhere, as a call taken back. */
        op->abandoned = c->cancelled && (c->r == -ECANCELED ||
                                         (c->r == -ETIMEDOUT && c->fault.kind == PH_FAULT_NONE));
        if (op->r < 0) {
                free(c->result);
                op->call_failed = true;
        } else {
                /* The result is parsed here, on the loop (bounded by the
                 * message limit; the worker answered with it as a string). */
                op_take_result(op, c->result);
        }
        c->result = NULL;
        op_done(&op->job);
}

/* Submits op to the pool (through plane, if not NULL) or, for an
 * isolated call, to its worker. */
static int op_submit(ph_op *op, ph_pool_lane *plane, unsigned cap, bool has_uid, uid_t uid)
{
        void *worker = op->kind == PH_OP_CALL ? ph_instance_runner_handle(op->call_inst) : NULL;
        int r;

        /* An isolated call's parameters go to the worker from the loop. */
        if (worker && !op->params &&
            !(op->params = op->params_json ? json_dumps(op->params_json, JSON_COMPACT) : strdup("{}")))
                return -ENOMEM;
        if (!worker) {
                r = plane ? ph_pool_submit_lane(op->ops->pool, plane, cap, &op->job)
                          : ph_pool_submit(op->ops->pool, &op->job);
                if (r < 0)
                        return r;
        }
        op->running = true;
        op->ops->running++;
        op_charge(op, has_uid, uid);
        if (worker) {
                /* No plugin thread: the loop talks to the worker. It counts
                 * as started (it cannot be taken back). */
                atomic_store_explicit(&op->started, true, memory_order_relaxed);
                uint64_t due = op->started_ms + (uint64_t)(op->cfg->call_timeout_sec * 1000.0);
                uint64_t now = uv_now(op->ops->loop);
                struct timespec ts;

                /* Its client's deadline, on the clock the worker reads. */
                clock_gettime(CLOCK_MONOTONIC, &ts);
                op->wcall = (ph_wcall){ .method = op->method, .params = op->params, .err = op->err,
                                        .err_size = sizeof(op->err), .done = op_wcall_done,
                                        .deadline_ms = (uint64_t)ts.tv_sec * 1000u +
                                                       (uint64_t)ts.tv_nsec / 1000000u +
                                                       (due > now ? due - now : 0) };
                ph_worker_call_async(worker, op->ops->loop, op->ops->pool, &op->wcall);
        }
        return 0;
}

int ph_op_submit(ph_op *op, bool has_uid, uid_t uid)
{
        return op_submit(op, NULL, 0, has_uid, uid);
}

/* ---- lanes ---- */

static void lane_unlink(ph_op *op)
{
        ph_lane *lane = op->lane;
        ph_op **pp = &lane->head, *prev = NULL;

        while (*pp != op) {
                prev = *pp;
                pp = &(*pp)->lane_next;
        }
        *pp = op->lane_next;
        if (lane->tail == op)
                lane->tail = prev;
        op->lane_next = NULL;
        op->lane = NULL;
        op->queued = false;
        lane->waiting--;
}

/* A queued op that will not run: done() with -ECANCELED, as a take-back. */
static void op_drop_queued(ph_op *op, const char *why)
{
        lane_unlink(op);
        if (op->counted)
                uid_release(op->ops, op->uid);
        op->counted = false;
        op->r = -ECANCELED;
        op->abandoned = true;
        snprintf(op->err, sizeof(op->err), "%s", why);
        op->done(op);
}

static void lane_pump(ph_lane *lane)
{
        while (lane->head && lane->running < lane->cap) {
                ph_op *op = lane->head;

                lane_unlink(op);
                if (ph_op_submit(op, false, 0) < 0) {   /* charged when queued */
                        ph_op_fail_waiters(op, PH_VERR_BUSY, "too many operations queued; try again");
                        if (op->counted)
                                uid_release(op->ops, op->uid);
                        op->counted = false;
                        op->r = -ECANCELED;
                        op->abandoned = true;
                        op->done(op);
                        continue;
                }
                op->lane = lane;
                lane->running++;
        }
}

int ph_op_submit_lane(ph_op *op, ph_lane *lane, unsigned cap, bool has_uid, uid_t uid)
{
        int r;

        lane->cap = cap ? cap : 1;
        /* In-process: the pool keeps the lane, so a plugin thread that
         * finishes a call takes the next one without a round trip through
         * the loop (and the loop does not wake a thread per call). */
        if (op->kind == PH_OP_CALL && !ph_instance_runner_handle(op->call_inst))
                return op_submit(op, &lane->pool, lane->cap, has_uid, uid);
        if (lane->running < lane->cap && !lane->head) {
                r = ph_op_submit(op, has_uid, uid);
                if (r < 0)
                        return r;
                op->lane = lane;
                lane->running++;
                return 0;
        }
        op_charge(op, has_uid, uid);
        op->lane = lane;
        op->queued = true;
        op->lane_next = NULL;
        if (lane->tail)
                lane->tail->lane_next = op;
        else
                lane->head = op;
        lane->tail = op;
        lane->waiting++;
        return 0;
}

void ph_op_free(ph_op *op)
{
        ph_ops *ops;

        if (!op)
                return;
        ops = op->ops;
        if (op->queued)
                lane_unlink(op);
        if (op->counted && !op->running)
                uid_release(ops, op->uid);
        op->counted = false;
        while (op->waiters)
                ph_waiter_error(op->waiters, PH_VERR_BUSY, NULL, "operation abandoned");
        if (op->all_prev)
                op->all_prev->all_next = op->all_next;
        else if (ops->all == op)
                ops->all = op->all_next;
        if (op->all_next)
                op->all_next->all_prev = op->all_prev;
        free(op->result);
        if (op->inst)
                ph_instance_unref(op->inst);
        ph_config_unref(op->cfg);
        free(op->name);
        free(op->path);
        free(op->config_json);
        free(op->method);
        free(op->params);
        json_decref(op->params_json);
        free(op);
}

void ph_op_discard(ph_op *op, const char *why)
{
        ph_op_fail_waiters(op, PH_VERR_BUSY, "%s", why);
        ph_op_free(op);
}

/* ---- waiters ---- */

static void waiter_unlink(ph_waiter *w)
{
        if (w->prev)
                w->prev->next = w->next;
        else if (w->op)
                w->op->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->prev = w->next = NULL;
        w->op = NULL;
}

static void waiter_link(ph_waiter *w, ph_op *op)
{
        w->op = op;
        w->prev = NULL;
        w->next = op->waiters;
        if (op->waiters)
                op->waiters->prev = w;
        op->waiters = w;
}

static void waiter_uncharge(ph_waiter *w)
{
        if (w->charged)
                uid_release(w->ops, w->uid);
        w->charged = false;
}

void ph_waiter_charge(ph_waiter *w)
{
        uid_slot *s = w->has_uid && !w->charged ? uid_find(w->ops, w->uid, true) : NULL;

        if (s) {
                s->n++;
                w->charged = true;
        }
}

static void waiter_free(ph_waiter *w)
{
        waiter_uncharge(w);
        ph_deadline_cancel(w->ops->deadlines, &w->deadline);
        waiter_unlink(w);
        free(w->method);
        free(w->params);
        free(w);
}

/* A call nobody waits for any more that has not started is not run: it
 * would only take a plugin thread from someone who still waits. */
bool ph_op_take_back(ph_op *op)
{
        if (op->queued) {
                op_drop_queued(op, "taken back before it started");
                return true;
        }
        if (!op->running || atomic_load_explicit(&op->started, memory_order_relaxed) ||
            ph_pool_cancel(op->ops->pool, &op->job) < 0)
                return false;
        op->r = -ECANCELED;
        op->abandoned = true;
        snprintf(op->err, sizeof(op->err), "taken back before it started");
        op_done(&op->job);
        return true;
}

static void op_abandon(ph_op *op)
{
        if (op->kind == PH_OP_CALL && !op->waiters) {
                /* An isolated call the worker has not run yet is not sent
                 * (again). */
                op->wcall.cancelled = true;
                ph_op_take_back(op);
        }
}

void ph_ops_take_back_calls(ph_ops *ops, const struct ph_serving *srv, int verr, const char *why)
{
        for (ph_op *op = ops->all, *next; op; op = next) {
                next = op->all_next;
                if (op->kind != PH_OP_CALL || op->srv != srv || (!op->running && !op->queued) ||
                    atomic_load_explicit(&op->started, memory_order_relaxed))
                        continue;
                ph_op_fail_waiters(op, verr, "%s", why);
                ph_op_take_back(op);
        }
}

void ph_ops_clear_load_markers(ph_ops *ops)
{
        for (ph_op *op = ops->all; op; op = op->all_next)
                if (op->kind == PH_OP_LOAD && op->running)
                        ph_state_init_clear(op->cfg->state_dir, op->name);
}

static void waiter_deadline_cb(ph_deadline *dl)
{
        ph_waiter *w = (ph_waiter *)((char *)dl - offsetof(ph_waiter, deadline));
        ph_op *op = w->op;
        double secs = op->cfg->call_timeout_sec;
        const char *method = w->method ? w->method : op->method;

        if (!w->reply) {
                /* Nobody asked for an answer: say what is stuck, once. */
                log_warning("%s %s%s%s: no answer after %.1f s; %s",
                            op->kind == PH_OP_LOAD ? "load of" : "call", op->name,
                            method ? "." : "", method ? method : "", secs,
                            atomic_load_explicit(&op->started, memory_order_relaxed)
                                    ? "it keeps its plugin thread" : "it waits for a plugin thread");
                waiter_free(w);
                return;
        }
        log_warning("%s %s%s%s: no answer after %.1f s", method ? "call" : "load", op->name,
                    method ? "." : "", method ? method : "", secs);
        ph_waiter_error(w, PH_VERR_TIMEOUT,
                        json_pack("{s:s, s:s, s:f}", "name", op->name, "method", method ? method : "",
                                  "seconds", secs),
                        "%s did not answer within %.1f s", op->name, secs);
        op_abandon(op);
}

ph_waiter *ph_op_wait(ph_op *op, ph_reply *reply, bool has_uid, uid_t uid)
{
        ph_waiter *w = calloc(1, sizeof(*w));
        uint64_t ms = (uint64_t)(op->cfg->call_timeout_sec * 1000);

        if (!w || ph_deadline_arm(op->ops->deadlines, &w->deadline, ms, waiter_deadline_cb) < 0) {
                free(w);
                ph_reply_error(reply, PH_VERR_BUSY, NULL, "out of memory");
                return NULL;
        }
        w->ops = op->ops;
        w->reply = reply;
        w->has_uid = has_uid;
        w->uid = uid;
        waiter_link(w, op);
        return w;
}

void ph_waiter_move(ph_waiter *w, ph_op *to)
{
        waiter_uncharge(w);     /* the operation it joins is charged instead */
        waiter_unlink(w);
        waiter_link(w, to);
}

void ph_waiter_ok(ph_waiter *w, json_t *params)
{
        ph_reply_ok(w->reply, params);
        waiter_free(w);
}

void ph_waiter_ok_jw(ph_waiter *w, ph_jw *jw)
{
        ph_reply_jw(w->reply, jw);
        waiter_free(w);
}

void ph_waiter_error(ph_waiter *w, int verr, json_t *params, const char *fmt, ...)
{
        char text[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        if (w->reply)
                ph_reply_error(w->reply, verr, params, "%s", text);
        else
                json_decref(params);
        waiter_free(w);
}

void ph_op_fail_waiters(ph_op *op, int verr, const char *fmt, ...)
{
        char text[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        while (op->waiters) {
                json_t *params = verr == PH_VERR_BUSY ? NULL : json_pack("{s:s}", "name", op->name);

                ph_waiter_error(op->waiters, verr, params, "%s", text);
        }
}

/* ---- stop ---- */

unsigned ph_ops_running(const ph_ops *ops)
{
        return ops->running;
}

void ph_ops_log_running(ph_ops *ops, const char *why)
{
        uint64_t now = uv_now(ops->loop);

        for (ph_op *op = ops->all; op; op = op->all_next)
                if (op->running)
                        log_warning("%s: %s %s%s%s %s for %.1f s", why,
                                    op->kind == PH_OP_LOAD ? "load of" : "call", op->name,
                                    op->method ? "." : "", op->method ? op->method : "",
                                    atomic_load_explicit(&op->started, memory_order_relaxed)
                                            ? "stuck in plugin code" : "waiting for a plugin thread",
                                    (double)(now - op->started_ms) / 1000);
}

void ph_ops_fail_all(ph_ops *ops, const char *why)
{
        for (ph_op *op = ops->all, *next; op; op = next) {
                next = op->all_next;
                ph_op_fail_waiters(op, PH_VERR_BUSY, "%s", why);
                if (op->queued)
                        op_drop_queued(op, why);
                else if (op->job.lane)
                        ph_op_take_back(op);    /* waiting in the pool's lane */
        }
}
