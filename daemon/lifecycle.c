/* The plugin lifecycle: transitions, the serving instance, loads and calls.
 *
 * DESIGN: every fact about a plugin's runtime lives in its ph_life and
 * changes here only, in the transitions below (load, call, unload, file
 * added, changed or removed, config changed, stop, and the outcome of each
 * operation). After each, life_settle derives the state from the facts and
 * reports a change as an event; nothing assigns a state. Operations
 * reference a plugin by name and incarnation (ph_plugin.id), never by
 * pointer: a plugin removed and added again is a new incarnation, and the
 * old one's outcomes and counters cannot land on it. A call borrows the
 * serving instance; the serving record counts borrowers on the loop and
 * drops the daemon's reference when it is retired and the last one is
 * back. The cache keeps its own reference per ready generation and is only
 * asked at loads, unloads and removals. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "daemon.h"
#include "ratelimit.h"
#include "events.h"
#include "lifecycle.h"
#include "log.h"
#include "varlink.h"

/* The protocol's words (protocol/names.c), in ph_pstate's order. */
#define pstate_names ph_varlink_plugin_states

static const char quarantine_why[] = "quarantined: the daemon stopped while this version was "
                                     "initialising; replace the file to try again";

const char *ph_pstate_name(ph_pstate s)
{
        return (unsigned)s < _PH_PSTATE_MAX ? pstate_names[s] : "unknown";
}

int ph_pstate_from_name(const char *name)
{
        for (int i = 0; i < _PH_PSTATE_MAX; i++)
                if (strcmp(pstate_names[i], name) == 0)
                        return i;
        return -EINVAL;
}

const ph_meta *ph_life_meta(const ph_plugin *p)
{
        const ph_serving *srv = p->life ? p->life->serving : NULL;

        return srv ? ph_instance_meta(srv->inst) : p->file->meta;
}

size_t ph_life_loaded_count(const ph_daemon *d)
{
        return d->n_loaded;
}

bool ph_life_held(const ph_plugin *p, void *userdata)
{
        (void)userdata;
        return p->life && p->life->serving;
}

/* The plugin of an operation, if it is still the incarnation it ran for.
 * One being removed is not: an operation that ends while the removal
 * takes it back (a queued load) must not settle a plugin with no file. */
static ph_plugin *op_plugin(ph_daemon *d, const ph_op *op)
{
        ph_plugin *p = ph_registry_lookup(d->reg, op->name);

        return p && p->id == op->plugin_id && p->life && !p->life->leaving ? p : NULL;
}

static void set_error(ph_life *l, const char *msg)
{
        free(l->error);
        l->error = msg ? strdup(msg) : NULL;
}

/* An event names the version it is about: the instance for loaded and
 * unloaded (srv: the one that went), the file for the others. */
static void emit_for(ph_daemon *d, ph_event_kind kind, const ph_plugin *p, const ph_serving *srv,
                     const char *message)
{
        const ph_meta *m = srv ? ph_instance_meta(srv->inst) : p->file ? p->file->meta : NULL;
        ph_event ev = { .kind = kind, .name = p->name, .version = m ? m->version : NULL,
                        .generation = srv ? srv->generation : p->file ? p->file->generation : 0,
                        .file = p->file ? p->file->path : NULL, .message = message, .uid = -1,
                        .quiet = kind == PH_EVENT_ADDED && !d->ready };

        ph_event_emit(d->server, &ev);
}

/* An event the registry explained: removed (its file went, or is refused
 * now) or failed (a held plugin's new file was refused). */
static void emit_why(ph_daemon *d, ph_event_kind kind, const ph_plugin *p, const ph_registry_why *why)
{
        const ph_serving *srv = p->life ? p->life->serving : NULL;
        const ph_meta *m = srv ? ph_instance_meta(srv->inst) : p->file ? p->file->meta : NULL;
        ph_event ev = { .kind = kind, .name = p->name, .version = m ? m->version : NULL,
                        .generation = p->file ? p->file->generation : 0, .uid = -1 };

        if (why) {
                ev.file = why->file;
                ev.reason = why->reason;
                ev.message = why->message;
                ev.fix = ph_event_fix(why->reason);
                ev.uid = why->uid;
        }
        ph_event_emit(d->server, &ev);
}

void ph_life_registry_rejected(const ph_file *f, void *userdata)
{
        ph_daemon *d = userdata;
        const char *reason = ph_file_reason_name(f);
        ph_event ev = { .kind = PH_EVENT_REJECTED, .name = f->meta ? f->meta->name : NULL,
                        .version = f->meta ? f->meta->version : NULL, .generation = f->generation,
                        .file = f->path, .reason = reason, .message = f->message,
                        .fix = ph_event_fix(reason), .uid = f->owner };

        ev.unlogged = !ph_ratelimit_ok(d->rl_rejected, f->owner, uv_now(d->loop));
        ph_event_emit(d->server, &ev);
}

static void emit(ph_daemon *d, ph_event_kind kind, const ph_plugin *p, const char *message)
{
        emit_for(d, kind, p, kind == PH_EVENT_LOADED && p->life ? p->life->serving : NULL, message);
}

/* The cache's messages start with the plugin's name; replies and events
 * add it themselves. */
static const char *without_name(const char *msg, const char *name)
{
        size_t n = strlen(name);

        return strncmp(msg, name, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ' ? msg + n + 2 : msg;
}

/* ---- state ---- */

static ph_pstate life_state(ph_daemon *d, const ph_plugin *p)
{
        const ph_life *l = p->life;

        if (l->serving)
                return PH_PSTATE_LOADED;
        if (l->load)
                return PH_PSTATE_LOADING;
        if (l->quarantined_generation == p->file->generation)
                return PH_PSTATE_QUARANTINED;
        if (ph_state_quarantined(d->state, p->name, &p->file->id))
                return PH_PSTATE_QUARANTINED;
        if (l->failed_generation == p->file->generation)
                return PH_PSTATE_FAILED;
        return PH_PSTATE_DISCOVERED;
}

/* Derives the state from the facts and reports a change; gone is the
 * instance that stopped serving, if one did (unloaded names it). */
static void life_settle_gone(ph_daemon *d, ph_plugin *p, const ph_serving *gone)
{
        ph_life *l = p->life;
        ph_pstate old = l->state, now = life_state(d, p);

        if (now == old)
                return;
        l->state = now;
        if (old == PH_PSTATE_LOADED)
                d->n_loaded--;
        if (now == PH_PSTATE_LOADED)
                d->n_loaded++;
        if (now == PH_PSTATE_LOADED)
                emit(d, PH_EVENT_LOADED, p, NULL);
        else if (old == PH_PSTATE_LOADED)
                emit_for(d, PH_EVENT_UNLOADED, p, gone, NULL);
        if (now == PH_PSTATE_FAILED) {
                emit(d, PH_EVENT_FAILED, p, l->error);
        } else if (now == PH_PSTATE_QUARANTINED && l->quarantined_generation == p->file->generation) {
                emit(d, PH_EVENT_FAILED, p, l->error);
        } else if (now == PH_PSTATE_QUARANTINED) {
                set_error(l, quarantine_why);
                emit(d, PH_EVENT_FAILED, p, quarantine_why);
        }
}

static void life_settle(ph_daemon *d, ph_plugin *p)
{
        life_settle_gone(d, p, NULL);
}

/* ---- serving instances ---- */

static void serving_free(ph_serving *srv)
{
        /* An isolated instance's worker: the loop lets go of it first. */
        ph_worker_detach(ph_instance_runner_handle(srv->inst));
        ph_instance_unref(srv->inst);   /* fini runs later, in a reap */
        free(srv->file);
        free(srv);
}

/* No longer serving: goes when its last call returns. */
static void serving_retire(ph_serving *srv)
{
        if (!srv)
                return;
        srv->retired = true;
        if (srv->in_flight == 0)
                serving_free(srv);
}

/* Counts an instance of p that stopped serving (Unload, a newer version,
 * removal, a stop); l may be NULL once the plugin is gone. */
static void count_unload(ph_daemon *d, ph_life *l)
{
        d->counters.unloads++;
        if (l)
                l->counters.unloads++;
}

/* ---- operations ---- */

static void load_done(ph_op *op);
static void call_done(ph_op *op);

/* {"plugin": ...}, begun in jw (for ph_reply_jw). */
static ph_jw *plugin_reply(ph_jw *jw, ph_daemon *d, ph_plugin *p)
{
        ph_jw_init(jw, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(jw);
        ph_jw_key(jw, "plugin");
        ph_plugin_write(jw, d, p);
        return jw;
}

void ph__life_result_reply(ph_jw *jw, const char *result, size_t size)
{
        ph_jw_init(jw, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(jw);
        ph_jw_key(jw, "result");
        if (result)
                ph_jw_raw(jw, result, size);
        else
                ph_jw_null(jw);
}

static void waiter_result(ph_waiter *w, const ph_op *op)
{
        ph_jw jw;

        ph__life_result_reply(&jw, op->result, op->result_size);
        ph_waiter_ok_jw(w, &jw);
}

/* Why the current file of p cannot be loaded now, or NULL. */
static const char *load_refusal(ph_daemon *d, ph_plugin *p)
{
        ph_life *l = p->life;

        if (l->failed_generation == p->file->generation && !l->failed_retry)
                return l->error ? l->error : "load failed";
        if (l->quarantined_generation == p->file->generation)
                return l->error ? l->error : "quarantined";
        if (ph_state_quarantined(d->state, p->name, &p->file->id)) {
                life_settle(d, p);
                return quarantine_why;
        }
        return NULL;
}

/* The load of p's current file: the one under way, or a new one. NULL
 * when none can start (*ret_verr and *ret_why say why). */
static ph_op *load_op(ph_daemon *d, ph_plugin *p, bool has_uid, uid_t uid, int *ret_verr,
                      const char **ret_why)
{
        ph_life *l = p->life;
        ph_op *op;

        if (l->load && l->load->generation == p->file->generation)
                return l->load;
        if ((*ret_why = load_refusal(d, p))) {
                *ret_verr = PH_VERR_LOAD_FAILED;
                return NULL;
        }
        *ret_verr = PH_VERR_BUSY;
        op = ph_op_new(d->ops, PH_OP_LOAD, p, d->cache);
        if (!op) {
                *ret_why = "out of memory";
                return NULL;
        }
        op->done = load_done;
        if (ph_op_submit(op, has_uid, uid) < 0) {
                ph_op_free(op);
                *ret_why = "too many operations queued; try again";
                return NULL;
        }
        /* An older load goes on; its outcome is applied if it is still useful. */
        l->load = op;
        life_settle(d, p);
        return op;
}

/* A load nobody answers for (hot replace, restore, a reload's retry). Its
 * deadline logs a load that hangs. */
static void load_internal(ph_daemon *d, ph_plugin *p)
{
        const char *why = NULL;
        int verr;
        ph_op *op = load_op(d, p, false, 0, &verr, &why);

        if (op)
                ph_op_wait(op, NULL, false, 0);
        else if (verr == PH_VERR_BUSY)
                log_warning("plugin %s: cannot load: %s", p->name, why);
}

static void call_start(ph_daemon *d, ph_plugin *p, ph_serving *srv, ph_waiter *w,
                       const char *method, json_t *params, ph_reply *r, bool has_uid, uid_t uid);

static json_t *name_param(const char *name)
{
        return json_pack("{s:s}", "name", name);
}

/* A load that was cancelled may have reached the cache only after the
 * Unload or removal told the cache to forget the name (it waited for a
 * plugin thread): then the cache holds an instance nobody will ever
 * retire. Unless a newer load or a serving instance of the name uses the
 * cache, it forgets the name again. */
static void cache_forget_if_idle(ph_daemon *d, const char *name)
{
        ph_plugin *p = ph_registry_lookup(d->reg, name);

        if (!p || !p->life || (!p->life->load && !p->life->serving))
                ph_cache_unload(d->cache, name);
}

/* A load that Unload (or a stop) cancelled. Calls that waited for it were
 * in flight when the Unload came: they run on the instance, which never
 * serves anyone else and goes when they are done. Loads were answered
 * then. */
static void load_cancelled_done(ph_daemon *d, ph_plugin *p, ph_op *op, const char *why)
{
        ph_serving *srv = NULL;

        if (op->r == 0) {
                /* init ran: a load, and the instance goes at once. */
                p->life->counters.loads++;
                d->counters.loads++;
                count_unload(d, p->life);
        }
        /* Loads (a stop leaves them waiting) are answered; calls run. */
        for (ph_waiter *w = op->waiters, *next; w; w = next) {
                next = w->next;
                if (!w->method)
                        ph_waiter_error(w, PH_VERR_LOAD_FAILED, name_param(op->name), "%s %s",
                                        op->name, why);
        }
        if (op->r == 0 && op->waiters && (srv = calloc(1, sizeof(*srv))) &&
            (srv->file = strdup(op->path))) {
                srv->inst = op->inst;
                op->inst = NULL;
                srv->generation = op->generation;
                srv->retired = true;
                srv->in_flight++;       /* held while the calls start */
                while (op->waiters)
                        call_start(d, p, srv, op->waiters, NULL, NULL, NULL, op->waiters->has_uid,
                                   op->waiters->uid);
                if (--srv->in_flight == 0)
                        serving_free(srv);
        } else {
                if (srv)
                        free(srv);
                ph_op_fail_waiters(op, PH_VERR_LOAD_FAILED, "%s %s: %s", op->name, why,
                                   op->r < 0 ? without_name(op->err, op->name) : "out of memory");
        }
        cache_forget_if_idle(d, op->name);
        life_settle(d, p);
        ph_op_free(op);
}

/* A load's outcome, on the loop. */
static void load_done(ph_op *op)
{
        ph_daemon *d = op->userdata;
        ph_plugin *p = op_plugin(d, op);
        ph_life *l = p ? p->life : NULL;
        bool config_moved;
        ph_serving *srv;

        if (l && l->load == op)
                l->load = NULL;
        if (!p) {
                /* Removed meanwhile: its waiters were answered then; the
                 * instance (if any) is dropped with the op. */
                ph_op_fail_waiters(op, PH_VERR_NO_SUCH_PLUGIN, "%s was removed while loading",
                                   op->name);
                cache_forget_if_idle(d, op->name);
                ph_op_free(op);
                return;
        }
        if (op->cancelled || d->stopping) {
                load_cancelled_done(d, p, op, d->stopping ? "was loading when the daemon stopped"
                                                          : "was unloaded while loading");
                return;
        }
        if (op->r == -ESTALE && l->serving) {
                /* A newer generation got ready first: that is the answer. */
                op->r = 0;
        } else if (op->r < 0) {
                l->counters.load_failures++;
                d->counters.load_failures++;
                /* An error of the host (no fd, no memory) is not the file's:
                 * the next Load tries again (the cache decides for good).
                 * Nor is a failure with a Config= that a reload replaced
                 * meanwhile. */
                config_moved = strcmp(op->config_json, ph_config_plugin_json(d->cfg, op->name)) != 0;
                if (config_moved)
                        ph_cache_forget(d->cache, op->name);
                if (op->generation == p->file->generation) {
                        l->failed_generation = op->generation;
                        l->failed_retry = ph_cache_error_transient(op->r) || config_moved;
                }
                set_error(l, without_name(op->err, op->name));
                if (l->serving)
                        emit(d, PH_EVENT_FAILED, p, l->error);  /* the old version serves on */
                life_settle(d, p);
                while (op->waiters)
                        ph_waiter_error(op->waiters, PH_VERR_LOAD_FAILED, name_param(op->name),
                                        "%s: %s", op->name, without_name(op->err, op->name));
                ph_op_free(op);
                /* A client's plugin tries again with the new Config=. */
                if (config_moved && l->wanted && !l->serving && !l->load)
                        load_internal(d, p);
                return;
        }
        /* Installed unless an equal or newer generation serves already. */
        if (op->inst && (!l->serving || l->serving->generation < op->generation)) {
                srv = calloc(1, sizeof(*srv));
                if (srv && (srv->file = strdup(op->path))) {
                        srv->inst = op->inst;
                        op->inst = NULL;
                        srv->generation = op->generation;
                        if (l->serving)
                                count_unload(d, l);     /* the older version drains */
                        serving_retire(l->serving);
                        l->serving = srv;
                        ph_registry_touch(d->reg);      /* its metadata is the instance's now */
                        l->counters.loads++;
                        d->counters.loads++;
                        if (op->generation == p->file->generation) {
                                l->failed_generation = 0;
                                set_error(l, NULL);
                        }
                        if (l->state == PH_PSTATE_LOADED)
                                emit(d, PH_EVENT_LOADED, p, NULL);      /* a new version */
                        life_settle(d, p);
                        /* A serving plugin follows its file: one replaced
                         * while this load ran is loaded next. */
                        if (srv->generation < p->file->generation && !l->load && !load_refusal(d, p))
                                load_internal(d, p);
                } else {
                        free(srv);
                        ph_op_fail_waiters(op, PH_VERR_BUSY, "out of memory");
                }
        }
        while (op->waiters) {
                ph_waiter *w = op->waiters;
                ph_jw jw;

                if (!l->serving)
                        ph_waiter_error(w, PH_VERR_BUSY, NULL, "out of memory");
                else if (w->method)
                        call_start(d, p, l->serving, w, NULL, NULL, NULL, w->has_uid, w->uid);
                else
                        ph_waiter_ok_jw(w, plugin_reply(&jw, d, p));
        }
        ph_op_free(op);
}

/* Starts a call on srv: for a new request (r, with the request's params
 * object, NULL for {}) or for a waiter that waited for the load (w, with
 * its params as text). */
static void call_start(ph_daemon *d, ph_plugin *p, ph_serving *srv, ph_waiter *w,
                       const char *method, json_t *params, ph_reply *r, bool has_uid, uid_t uid)
{
        ph_op *op = ph_op_new(d->ops, PH_OP_CALL, p, d->cache);
        unsigned now;

        if (op && !(op->method = strdup(w ? w->method : method)))
                op = (ph_op_free(op), NULL);
        if (op && w && !(op->params = strdup(w->params)))
                op = (ph_op_free(op), NULL);
        if (op && !w && json_is_object(params))        /* null reads as absent: {} */
                op->params_json = json_incref(params);
        if (!op) {
                if (w)
                        ph_waiter_error(w, PH_VERR_BUSY, NULL, "out of memory");
                else
                        ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                return;
        }
        op->done = call_done;
        op->srv = srv;
        op->call_inst = srv->inst;
        if (w)
                ph_waiter_move(w, op);
        else if (!ph_op_wait(op, r, has_uid, uid)) {
                ph_op_free(op);
                return;
        }
        /* A waiter's uid was checked when it asked; it may have filled up since. */
        if (has_uid && !ph_ops_uid_has_room(d->ops, uid, &now)) {
                ph_op_fail_waiters(op, PH_VERR_BUSY, "uid %u has %u operations in flight already",
                                   (unsigned)uid, now);
                ph_op_free(op);
                return;
        }
        /* One thread for a serial plugin; for the others, a share of the
         * pool, so one that hangs cannot take every thread. */
        if (ph_op_submit_lane(op, &srv->lane,
                              ph_instance_meta(srv->inst)->serial ? 1 : op->cfg->max_calls_per_plugin,
                              has_uid, uid) < 0) {
                ph_op_discard(op, "too many operations queued; try again");
                return;
        }
        srv->in_flight++;
        p->life->counters.in_flight++;
        d->counters.in_flight++;
}

static ph_serving *life_drop(ph_daemon *d, ph_plugin *p, int verr, const char *why);

/* The serving generation's worker faulted too often: it stops serving and
 * is not loaded again until its file changes. A newer file already
 * loading takes over instead. */
static void life_quarantine(ph_daemon *d, ph_plugin *p, const char *why)
{
        ph_life *l = p->life;
        ph_serving *gone;

        if (l->load)
                return;
        l->quarantined_generation = l->serving->generation;
        count_unload(d, l);
        gone = life_drop(d, p, PH_VERR_LOAD_FAILED, "was quarantined");
        set_error(l, without_name(why, p->name));       /* a Load's error names it */
        life_settle_gone(d, p, gone);
        serving_retire(gone);
}

/* The parameters of PluginCrashed for a call an isolated plugin's worker
 * failed. */
static json_t *fault_params(const ph_op *op)
{
        const ph_fault *f = &op->fault;
        json_t *j = json_pack("{s:s, s:s, s:s}", "name", op->name, "method", op->method, "reason",
                              f->kind == PH_FAULT_QUARANTINED ? "quarantined" : "crashed");

        if (j && f->signal > 0)
                json_object_set_new(j, "signal", json_integer(f->signal));
        if (j && f->exit_status >= 0)
                json_object_set_new(j, "exitStatus", json_integer(f->exit_status));
        return j;
}

static void call_done(ph_op *op)
{
        ph_daemon *d = op->userdata;
        ph_plugin *p = op_plugin(d, op);
        ph_plugin_counters *k = p ? &p->life->counters : NULL;
        ph_serving *srv = op->srv;

        /* Too many faults: this generation serves no more, until a new
         * file comes (life_state derives "quarantined" from this). */
        if (op->fault.quarantined_now && p && p->life->serving == srv)
                life_quarantine(d, p, op->err);
        if (--srv->in_flight == 0 && srv->retired)
                serving_free(srv);
        op->srv = NULL;
        op->call_inst = NULL;
        if (k)
                k->in_flight--;
        d->counters.in_flight--;
        if (op->abandoned) {
                ph_op_free(op);
                return;
        }
        d->counters.calls++;
        ph_latency_observe(&d->latency, uv_hrtime() - op->started_ns);
        if (k)
                k->calls++;
        if (op->r < 0) {
                d->counters.calls_failed++;
                if (k)
                        k->calls_failed++;
        }
        while (op->waiters) {
                ph_waiter *w = op->waiters;

                if (op->r == 0)
                        waiter_result(w, op);
                else if (op->fault.kind == PH_FAULT_TIMEOUT)
                        ph_waiter_error(w, PH_VERR_TIMEOUT,
                                        json_pack("{s:s, s:s, s:f}", "name", op->name, "method",
                                                  op->method, "seconds", op->cfg->call_timeout_sec),
                                        "%s", op->err);
                else if (op->fault.kind != PH_FAULT_NONE)
                        ph_waiter_error(w, PH_VERR_PLUGIN_CRASHED, fault_params(op), "%s", op->err);
                else if (op->r == -EMSGSIZE && !op->call_failed)
                        ph_waiter_error(w, PH_VERR_RESULT_TOO_LARGE,
                                        json_pack("{s:s, s:s, s:I, s:I}", "name", op->name, "method",
                                                  op->method, "size", (json_int_t)op->result_size,
                                                  "limit", (json_int_t)op->max_result),
                                        "%s.%s: %s", op->name, op->method, op->err);
                else
                        ph_waiter_error(w, PH_VERR_CALL_FAILED,
                                        json_pack("{s:s, s:s, s:i}", "name", op->name, "method",
                                                  op->method, "errno", -op->r),
                                        "%s", op->err);
        }
        ph_op_free(op);
}

/* ---- transitions asked by methods ---- */

static bool uid_room(ph_daemon *d, const ph_conn *c, ph_reply *r)
{
        unsigned now;

        if (!c || ph_ops_uid_has_room(d->ops, ph_conn_uid(c), &now))
                return true;
        ph_reply_error(r, PH_VERR_BUSY, NULL, "uid %u has %u operations in flight already",
                       (unsigned)ph_conn_uid(c), now);
        return false;
}

void ph_life_load(ph_daemon *d, ph_plugin *p, ph_reply *r, const ph_conn *c)
{
        ph_life *l = p->life;
        const char *why = NULL;
        ph_jw jw;
        ph_op *op;
        int verr;

        l->wanted = true;
        ph_state_want(d->state, p->name, true);
        if (l->serving && l->serving->generation == p->file->generation) {
                ph_reply_jw(r, plugin_reply(&jw, d, p));
                return;
        }
        if (!(l->load && l->load->generation == p->file->generation) && !uid_room(d, c, r))
                return;
        op = load_op(d, p, c != NULL, c ? ph_conn_uid(c) : 0, &verr, &why);
        if (!op) {
                ph_reply_error(r, verr, verr == PH_VERR_BUSY ? NULL : name_param(p->name), "%s: %s",
                               p->name, why);
                return;
        }
        /* A oneway Load still gets a waiter: its deadline logs a hang. */
        ph_op_wait(op, r, false, 0);
}

void ph_life_call(ph_daemon *d, ph_plugin *p, const char *method, json_t *params, ph_reply *r,
                  const ph_conn *c)
{
        ph_life *l = p->life;
        bool has_uid = c != NULL;
        uid_t uid = c ? ph_conn_uid(c) : 0;
        const char *why = NULL;
        char *text;
        ph_waiter *w;
        ph_op *op;
        int verr;

        if (!uid_room(d, c, r))
                return;
        /* The serving instance's calls serialise their parameters on the
         * plugin thread. */
        if (l->serving) {
                call_start(d, p, l->serving, NULL, method, params, r, has_uid, uid);
                return;
        }
        text = params ? json_dumps(params, JSON_COMPACT) : strdup("{}");
        if (!text) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                return;
        }
        op = load_op(d, p, has_uid, uid, &verr, &why);
        if (!op) {
                ph_reply_error(r, verr, verr == PH_VERR_BUSY ? NULL : name_param(p->name), "%s: %s",
                               p->name, why);
                free(text);
                return;
        }
        w = ph_op_wait(op, r, has_uid, uid);
        if (w)
                ph_waiter_charge(w);
        if (w && !(w->method = strdup(method)))
                ph_waiter_error(w, PH_VERR_BUSY, NULL, "out of memory");
        else if (w)
                w->params = text, text = NULL;
        free(text);
}

/* Drops what p has loaded or is loading; waiters of a load get verr.
 * Returns the instance that served, detached but not yet retired (the
 * caller reports it, then retires it). */
static ph_serving *life_drop(ph_daemon *d, ph_plugin *p, int verr, const char *why)
{
        ph_serving *gone = p->life->serving;
        ph_life *l = p->life;

        if (l->load) {
                ph_op *op = l->load;
                bool calls = false;

                op->cancelled = true;
                l->load = NULL;
                /* Not started and only Loads wait: it never runs. */
                for (ph_waiter *w = op->waiters; w; w = w->next)
                        calls |= w->method != NULL;
                if (!calls) {
                        ph_op_fail_waiters(op, verr, "%s %s", p->name, why);
                        if (ph_op_take_back(op))
                                op = NULL;
                }
                /* Loads are answered now; calls (in flight before the
                 * Unload) run on the instance if it comes, unless the
                 * plugin is gone. */
                for (ph_waiter *w = op ? op->waiters : NULL, *next; w; w = next) {
                        next = w->next;
                        if (!w->method || verr == PH_VERR_NO_SUCH_PLUGIN)
                                ph_waiter_error(w, verr, name_param(p->name), "%s %s", p->name, why);
                }
        }
        /* The cache drops its references, cancels a load in progress and
         * forgets failures. */
        ph_cache_unload(d->cache, p->name);
        l->serving = NULL;
        ph_registry_touch(d->reg);
        return gone;
}

void ph_life_unload(ph_daemon *d, ph_plugin *p)
{
        ph_life *l = p->life;
        ph_serving *gone;

        l->wanted = false;
        ph_state_want(d->state, p->name, false);
        if (l->serving)
                count_unload(d, l);
        gone = life_drop(d, p, PH_VERR_LOAD_FAILED, "was unloaded while loading");
        /* An unload is a fresh start: the next Load tries again; a
         * quarantine keeps its reason (only a new file ends it). */
        l->failed_generation = 0;
        if (l->quarantined_generation != p->file->generation)
                set_error(l, NULL);
        life_settle_gone(d, p, gone);
        serving_retire(gone);
}

void ph_life_restore(ph_daemon *d)
{
        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p))
                if (p->life && p->life->wanted && !p->life->serving && !load_refusal(d, p))
                        load_internal(d, p);
}

static bool same_string(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

void ph_life_config_changed(ph_daemon *d, const ph_config *old, const ph_config *cfg)
{
        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p)) {
                ph_life *l = p->life;

                if (!l || same_string(ph_config_plugin_json(old, p->name), ph_config_plugin_json(cfg, p->name)))
                        continue;
                /* A new Config= is a new chance for a version that failed. */
                ph_cache_forget(d->cache, p->name);
                if (l->failed_generation) {
                        l->failed_generation = 0;
                        set_error(l, NULL);
                        life_settle(d, p);
                        if (l->wanted && !l->serving && d->ready)
                                load_internal(d, p);
                }
        }
}

void ph_life_stop_begin(ph_daemon *d)
{
        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p)) {
                ph_life *l = p->life;
                ph_serving *gone = l ? l->serving : NULL;

                if (!gone)
                        continue;
                /* Retired now, so its fini runs on the pool as soon as its
                 * calls are back, within the drain: never on the main
                 * thread, never unbounded. The saved set is kept. */
                count_unload(d, l);
                l->serving = NULL;
                ph_registry_touch(d->reg);
                ph_cache_unload(d->cache, p->name);
                life_settle_gone(d, p, gone);
                serving_retire(gone);
        }
}

void ph_life_stop_end(ph_daemon *d)
{
        ph_ops_fail_all(d->ops, "the daemon is stopping");
}

/* ---- transitions asked by the registry ---- */

static void life_free(ph_life *l)
{
        free(l->error);
        free(l->json_static);
        free(l->json_metadata);
        free(l);
}

void ph_life_shutdown(ph_daemon *d)
{
        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p)) {
                if (!p->life)
                        continue;
                serving_retire(p->life->serving);
                life_free(p->life);
                p->life = NULL;
        }
}

void ph_life_registry_event(ph_event_kind kind, ph_plugin *p, const ph_registry_why *why,
                            void *userdata)
{
        ph_daemon *d = userdata;
        ph_life *l = p->life;

        switch (kind) {
        case PH_EVENT_ADDED:
                l = p->life = calloc(1, sizeof(*l));
                if (!l) {
                        log_err("plugin %s: out of memory", p->name);
                        return;
                }
                l->wanted = ph_state_wanted(d->state, p->name);
                emit(d, kind, p, NULL);
                life_settle(d, p);
                if (d->ready && l->wanted && !load_refusal(d, p))
                        load_internal(d, p);    /* a restored plugin's file came back */
                return;
        case PH_EVENT_CHANGED:
                if (!l)
                        return;
                emit(d, kind, p, NULL);
                life_settle(d, p);
                /* Hot replace: the old version serves until the new one is
                 * ready, then drains; or a wanted plugin's file came back. */
                if (d->ready && (l->serving || l->wanted) && !load_refusal(d, p))
                        load_internal(d, p);
                return;
        case PH_EVENT_REMOVED:
                if (!l)
                        return;
                l->leaving = true;      /* p->file is NULL already */
                emit_why(d, kind, p, why);
                if (l->state == PH_PSTATE_LOADED)
                        d->n_loaded--;
                {
                        ph_serving *gone = life_drop(d, p, PH_VERR_NO_SUCH_PLUGIN,
                                                     "was removed while loading");

                        /* Calls still waiting for a thread do not run a
                         * plugin that left (deleted, or now untrusted). */
                        if (gone) {
                                count_unload(d, NULL);
                                ph_ops_take_back_calls(d->ops, gone, PH_VERR_NO_SUCH_PLUGIN,
                                                       "the plugin was removed before the call started");
                        }
                        serving_retire(gone);
                }
                life_free(l);
                p->life = NULL;
                return;
        case PH_EVENT_FAILED:
                /* A held plugin's new file was refused: it serves on. */
                if (!l)
                        return;
                set_error(l, why ? why->message : NULL);
                emit_why(d, kind, p, why);
                return;
        default:
                return;
        }
}

/* ---- finalising retired instances, on the plugin pool ----
 *
 * A reap job finalises whatever garbage there is when it starts. One job
 * waits for a thread at a time (garbage that comes meanwhile is its too);
 * garbage that comes once it runs gets a job of its own, so a fini that
 * hangs does not hold up the finalising of other plugins. But at most
 * reap_jobs_max() run at once: each fini that hangs keeps its thread, and
 * a client that loads and unloads such a plugin again and again would
 * otherwise take every plugin thread, one per cycle, and every plugin's
 * calls with them. Past the cap, garbage waits for a reap to return. */

typedef struct reap_job {
        ph_job job;
        ph_daemon *d;
} reap_job;

static unsigned reap_jobs_max(const ph_daemon *d)
{
        return d->cfg->workers / 4 > 2 ? d->cfg->workers / 4 : 2;
}

static void reap_async_cb(uv_async_t *a);

static void reap_work(ph_job *job)
{
        ph_daemon *d = ((reap_job *)job)->d;

        atomic_store(&d->reap_queued, false);
        atomic_store(&d->garbage, false);
        ph_cache_reap(d->cache);
}

static void reap_done(ph_job *job)
{
        reap_job *rj = (reap_job *)job;

        ph_daemon *d = rj->d;

        d->reaps_running--;
        free(rj);
        /* Garbage that waited for a place under the cap. */
        if (atomic_load(&d->garbage) && !atomic_load(&d->reap_queued))
                reap_async_cb(&d->reap_async);
}

static void reap_async_cb(uv_async_t *a)
{
        ph_daemon *d = a->data;
        reap_job *rj;

        if (d->reaps_running >= reap_jobs_max(d))
                return;                 /* reap_done queues it */
        if (atomic_exchange(&d->reap_queued, true))
                return;
        rj = calloc(1, sizeof(*rj));
        if (rj) {
                rj->d = d;
                rj->job.work = reap_work;
                rj->job.done = reap_done;
        }
        if (!rj || ph_pool_submit(d->pool, &rj->job) < 0) {
                /* The next garbage, or the stop, tries again. */
                free(rj);
                atomic_store(&d->reap_queued, false);
                log_warning("cannot queue the finalising of unloaded plugins; will retry");
                return;
        }
        d->reaps_running++;
}

void ph_life_fini_cb(void *userdata, const char *name, bool done)
{
        (void)userdata;
        if (done)
                ph_crash_leave();
        else
                ph_crash_enter_fini(name);
}

void ph_life_garbage_cb(void *userdata)
{
        ph_daemon *d = userdata;

        atomic_store(&d->garbage, true);
        uv_async_send(&d->reap_async);
}

bool ph_life_finalising(ph_daemon *d)
{
        /* Garbage whose wake-up the loop has not seen yet: queue its reap
         * now, so that a stop waits for it. */
        if (atomic_load(&d->garbage) && !atomic_load(&d->reap_queued))
                reap_async_cb(&d->reap_async);
        return atomic_load(&d->garbage) || d->reaps_running > 0;
}

/* An isolated plugin's worker faulted too often between calls. */
static void life_worker_quarantined(void *handle, const char *why, void *userdata)
{
        ph_daemon *d = userdata;

        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p))
                if (p->life && p->life->serving &&
                    ph_instance_runner_handle(p->life->serving->inst) == handle) {
                        life_quarantine(d, p, why);
                        return;
                }
}

int ph_life_reaper_init(ph_daemon *d)
{
        ph_worker_set_quarantine_cb(life_worker_quarantined, d);
        d->reap_async.data = d;
        atomic_init(&d->reap_queued, false);
        atomic_init(&d->garbage, false);
        return uv_async_init(d->loop, &d->reap_async, reap_async_cb);
}

unsigned ph_life_reaping(const ph_daemon *d)
{
        return d->reaps_running;
}
