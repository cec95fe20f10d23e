/* The methods of io.plughost and org.varlink.service. Reads answer at once
 * from the registry; Load and Call run on the plugin pool with a deadline;
 * Rescan on libuv's pool. Every reply is built here, every error through
 * ph_reply_error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "varlink.h"

/* ---- JSON views of registry objects ---- */

static json_t *json_str_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}

static json_t *plugin_json(const ph_plugin *p)
{
        const ph_meta *m = p->file->meta;
        json_t *ifaces = json_array();

        for (size_t i = 0; i < m->n_interfaces; i++)
                json_array_append_new(ifaces, json_string(m->interfaces[i]));
        return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:b, s:i, s:s, s:s, s:I, s:o}",
                         "name", p->name, "version", m->version, "interfaces", ifaces,
                         "description", json_str_or_null(m->description),
                         "license", json_str_or_null(m->license), "url", json_str_or_null(m->url),
                         "concurrency", m->serial ? "serial" : "parallel", "resident", m->resident,
                         "priority", m->priority, "state", ph_pstate_name(p->state),
                         "file", p->file->path, "generation", (json_int_t)p->file->generation,
                         "lastError", json_str_or_null(p->last_error));
}

static json_t *counters_json(const ph_plugin_counters *k)
{
        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "calls", (json_int_t)k->calls,
                         "callsFailed", (json_int_t)k->calls_failed,
                         "callsInFlight", (json_int_t)k->in_flight, "loads", (json_int_t)k->loads,
                         "loadFailures", (json_int_t)k->load_failures,
                         "unloads", (json_int_t)k->unloads);
}

static bool plugin_has_interface(const ph_plugin *p, const char *iface)
{
        for (size_t i = 0; i < p->file->meta->n_interfaces; i++)
                if (strcmp(p->file->meta->interfaces[i], iface) == 0)
                        return true;
        return false;
}

static const char *param_str(const ph_request *req, const char *name)
{
        return json_string_value(json_object_get(req->parameters, name));
}

/* ---- reads ---- */

struct list_ctx {
        const char *iface, *state;
        json_t *plugins, *rejected;
};

static int list_plugin_cb(ph_plugin *p, void *ud)
{
        struct list_ctx *l = ud;

        if (l->iface && !plugin_has_interface(p, l->iface))
                return 0;
        if (l->state && strcmp(l->state, ph_pstate_name(p->state)) != 0)
                return 0;
        json_array_append_new(l->plugins, plugin_json(p));
        return 0;
}

static int list_rejected_cb(ph_file *f, void *ud)
{
        struct list_ctx *l = ud;

        json_array_append_new(l->rejected,
                              json_pack("{s:s, s:s, s:s}", "file", f->path,
                                        "reason", f->untrusted ? "untrusted" :
                                                  f->shadowed ? "shadowed" : ph_reason_name(f->reason),
                                        "message", f->message ? f->message : ""));
        return 0;
}

static void method_list(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        struct list_ctx l = { param_str(req, "interface"), param_str(req, "state"),
                              json_array(), json_array() };

        ph_registry_foreach(d->reg, list_plugin_cb, &l);
        ph_registry_foreach_rejected(d->reg, list_rejected_cb, &l);
        ph_reply_ok(r, json_pack("{s:o, s:o}", "plugins", l.plugins, "rejected", l.rejected));
}

static ph_plugin *find_or_reply(ph_daemon *d, const char *name, ph_reply *r)
{
        ph_plugin *p = ph_registry_find(d->reg, name);

        if (!p)
                ph_reply_error(r, PH_VERR_NO_SUCH_PLUGIN, json_pack("{s:s}", "name", name),
                               "no plugin named '%.64s'", name);
        return p;
}

static void method_info(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_plugin *p = find_or_reply(d, param_str(req, "name"), r);
        json_t *meta;

        if (!p)
                return;
        /* The tree the reader validated: shared, read-only, loop thread only. */
        meta = json_incref((json_t *)p->file->meta->priv);
        ph_reply_ok(r, json_pack("{s:o, s:o, s:o}", "plugin", plugin_json(p),
                                 "metadata", meta ? meta : json_object(),
                                 "counters", counters_json(&p->counters)));
}

struct query_ctx {
        const char *iface;
        ph_plugin **found;
        size_t n, cap;
};

static int query_cb(ph_plugin *p, void *ud)
{
        struct query_ctx *q = ud;

        if (!plugin_has_interface(p, q->iface))
                return 0;
        if (q->n == q->cap) {
                size_t cap = q->cap ? q->cap * 2 : 16;
                ph_plugin **grown = realloc(q->found, cap * sizeof(*grown));
                if (!grown)
                        return 1;
                q->found = grown;
                q->cap = cap;
        }
        q->found[q->n++] = p;
        return 0;
}

/* Best first: priority, then version, then name. */
static int query_order(const void *a, const void *b)
{
        const ph_plugin *x = *(ph_plugin *const *)a, *y = *(ph_plugin *const *)b;
        int c;

        if (x->file->meta->priority != y->file->meta->priority)
                return y->file->meta->priority - x->file->meta->priority;
        c = ph_version_compare(y->file->meta->version, x->file->meta->version);
        return c ? c : strcmp(x->name, y->name);
}

static void method_query(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        struct query_ctx q = { .iface = param_str(req, "interface") };
        json_t *list = json_array();

        ph_registry_foreach(d->reg, query_cb, &q);
        if (q.n > 0)            /* found is NULL then: qsort(NULL, 0) is undefined */
                qsort(q.found, q.n, sizeof(*q.found), query_order);
        for (size_t i = 0; i < q.n; i++)
                json_array_append_new(list, plugin_json(q.found[i]));
        free(q.found);
        ph_reply_ok(r, json_pack("{s:o}", "plugins", list));
}

static json_t *daemon_counters_json(ph_daemon *d)
{
        ph_cache_counters k;

        ph_cache_get_counters(d->cache, &k);
        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "calls", (json_int_t)d->counters.calls,
                         "callsFailed", (json_int_t)d->counters.calls_failed,
                         "callsInFlight", (json_int_t)k.in_flight, "loads", (json_int_t)k.loads,
                         "loadFailures", (json_int_t)k.failures, "unloads", (json_int_t)k.unloads);
}

static void method_status(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        size_t loaded, rejected, n = ph_registry_count(d->reg, &loaded, &rejected);
        json_t *dirs = json_array();

        (void)req;
        for (size_t i = 0; i < d->cfg.n_plugin_dirs; i++)
                json_array_append_new(dirs, json_string(d->cfg.plugin_dirs[i]));
        ph_reply_ok(r, json_pack("{s:s, s:I, s:o, s:I, s:I, s:I, s:I, s:o}", "version", PACKAGE_VERSION,
                                 "uptimeSeconds", (json_int_t)((ph_now_ms() - d->started_ms) / 1000),
                                 "pluginDirectories", dirs, "plugins", (json_int_t)n,
                                 "loaded", (json_int_t)loaded, "rejected", (json_int_t)rejected,
                                 "clients", (json_int_t)ph_server_clients(d->server),
                                 "counters", daemon_counters_json(d)));
}

static void method_monitor(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        char *msg;
        size_t len;

        (void)d;
        (void)req;
        /* The first reply has no event: it says the subscription is live. */
        if (r && ph_varlink_reply(NULL, true, &msg, &len) == 0)
                ph_reply_stream(r, msg, len);
}

/* ---- Load and Call: plugin code on the pool, with a deadline ---- */

struct uid_calls {
        uid_t uid;
        unsigned n;
};

static unsigned *uid_calls_slot(ph_daemon *d, uid_t uid)
{
        struct uid_calls *grown;

        for (size_t i = 0; i < d->n_uid_calls; i++)
                if (d->uid_calls[i].uid == uid)
                        return &d->uid_calls[i].n;
        grown = realloc(d->uid_calls, (d->n_uid_calls + 1) * sizeof(*grown));
        if (!grown)
                return NULL;
        d->uid_calls = grown;
        grown[d->n_uid_calls] = (struct uid_calls){ uid, 0 };
        return &grown[d->n_uid_calls++].n;
}

typedef struct op_job {
        ph_job job;
        ph_daemon *d;
        ph_reply *reply;
        bool counted;                   /* holds a slot in uid_calls */
        uid_t uid;
        uv_timer_t timer;
        bool replied;                   /* the deadline answered already */
        /* inputs */
        char *name, *path, *config;
        uint64_t generation;
        ph_file_id id;                  /* for the quarantine marker */
        char *method, *params;          /* a Call when method is set */
        bool any_ready;                 /* a Call during a replace: whichever version is ready */
        ph_reply **joined;              /* other Loads answered with this one */
        size_t n_joined;
        /* outputs */
        int load_r, call_r;
        char err[1024];
        char *result;
} op_job;

/* The operation running on this pool thread, for the init hook. */
static __thread op_job *current_op;

void ph_daemon_init_cb(const char *name, uint64_t generation, bool done, void *ud)
{
        ph_daemon *d = ud;

        (void)generation;
        if (!current_op)
                return;
        if (!done)
                ph_state_init_mark(d->cfg.state_dir, name, &current_op->id);
        else
                ph_state_init_clear(d->cfg.state_dir, name);
}

int ph_daemon_check_cb(const struct stat *file_st, int image_fd, void *ud, char *err, size_t err_size)
{
        ph_daemon *d = ud;
        op_job *op = current_op;
        char why[256], dir[4096], hex[65], *slash;
        ph_digests *dg;
        int r;

        if (!op)
                return 0;
        if (ph_policy_check_file(file_st, why, sizeof(why)) < 0) {
                snprintf(err, err_size, "%s: untrusted file: %s", op->name, why);
                return -EPERM;
        }
        snprintf(dir, sizeof(dir), "%s", op->path);
        slash = strrchr(dir, '/');
        if (slash && slash != dir)
                *slash = '\0';
        r = ph_policy_check_dir(dir, why, sizeof(why));
        if (r == -EPERM) {
                snprintf(err, err_size, "%s: untrusted directory: %s", op->name, why);
                return r;
        }
        pthread_mutex_lock(&d->digests_lock);
        dg = ph_digests_ref(d->digests);
        pthread_mutex_unlock(&d->digests_lock);
        if (!dg)
                return 0;
        /* The hash is of the sealed copy: the very bytes that will run. */
        r = ph_digests_match(dg, image_fd, hex);
        ph_digests_unref(dg);
        if (r == 1)
                return 0;
        if (r < 0)
                snprintf(err, err_size, "%s: hashing: %s", op->name, strerror(-r));
        else
                snprintf(err, err_size, "%s: SHA-256 %s is not in the digests file", op->name, hex);
        return -EPERM;
}

static void op_work(ph_job *job)
{
        op_job *op = (op_job *)job;
        ph_load_request req = { .name = op->name, .generation = op->generation, .dirfd = AT_FDCWD,
                                .path = op->path, .config_json = op->config };
        ph_instance *inst;

        current_op = op;
        /* The version serving calls answers until a new one is ready, and
         * for good if the new one fails to load. */
        op->load_r = op->any_ready ? ph_cache_lookup(op->d->cache, op->name, &inst) : -ENOENT;
        if (op->load_r == 0)
                op->generation = ph_instance_generation(inst);
        else
                op->load_r = ph_cache_get(op->d->cache, &req, &inst, op->err, sizeof(op->err));
        current_op = NULL;
        if (op->load_r < 0 || !op->method) {
                if (op->load_r == 0)
                        ph_instance_unref(inst);
                return;
        }
        op->call_r = ph_instance_call(inst, op->method, op->params, &op->result, op->err,
                                      sizeof(op->err));
        ph_instance_unref(inst);
}

static void op_free_cb(uv_handle_t *h)
{
        op_job *op = h->data;

        free(op->joined);
        free(op->name);
        free(op->path);
        free(op->config);
        free(op->method);
        free(op->params);
        free(op->result);
        free(op);
}

static void op_timeout_cb(uv_timer_t *t)
{
        op_job *op = t->data;
        double secs = op->d->cfg.call_timeout_sec;

        op->replied = true;
        op->d->counters.timeouts++;
        log_warning("%s %s%s%s: no answer after %.1f s", op->method ? "call" : "load", op->name,
                    op->method ? "." : "", op->method ? op->method : "", secs);
        for (size_t i = 0; i <= op->n_joined; i++)
                ph_reply_error(i ? op->joined[i - 1] : op->reply, PH_VERR_TIMEOUT,
                               json_pack("{s:s, s:s, s:f}", "name", op->name, "method",
                                         op->method ? op->method : "", "seconds", secs),
                               "%s did not answer within %.1f s", op->name, secs);
        op->reply = NULL;
        op->n_joined = 0;
}

/* Applies a load's outcome to the registry (if the plugin is still the
 * same file version). */
static void op_record_load(op_job *op)
{
        ph_plugin *p = ph_registry_find(op->d->reg, op->name);

        if (!p || p->file->generation != op->generation)
                return;
        if (op->load_r == 0) {
                if (p->state != PH_PSTATE_LOADED || p->loaded_generation != op->generation) {
                        p->counters.loads++;
                        p->loaded_generation = op->generation;
                        ph_registry_set_state(op->d->reg, p, PH_PSTATE_LOADED, NULL, true);
                }
        } else if (op->load_r == -ESTALE) {
                if (p->state == PH_PSTATE_LOADING)
                        p->state = PH_PSTATE_DISCOVERED;
        } else {
                p->counters.load_failures++;
                /* A loaded older version keeps serving; say why the new one did not. */
                if (p->state == PH_PSTATE_LOADED && p->loaded_generation != op->generation) {
                        free(p->last_error);
                        p->last_error = strdup(op->err);
                        ph_methods_on_event(PH_EVENT_FAILED, p, op->err, op->d);
                } else {
                        /* No fd, no memory, no permission: the next Load tries again. */
                        p->failed_generation = ph_cache_error_transient(op->load_r) ? 0 : op->generation;
                        ph_registry_set_state(op->d->reg, p, PH_PSTATE_FAILED, op->err, true);
                }
        }
}

static void op_done(ph_job *job)
{
        op_job *op = (op_job *)job;
        ph_plugin *p;

        if (op->counted) {
                unsigned *n = uid_calls_slot(op->d, op->uid);
                if (n && *n > 0)
                        (*n)--;
        }

        uv_timer_stop(&op->timer);
        op_record_load(op);
        if (op->method) {
                p = ph_registry_find(op->d->reg, op->name);
                if (p)
                        p->counters.in_flight--;
                if (op->load_r == 0) {
                        op->d->counters.calls++;
                        if (p)
                                p->counters.calls++;
                        if (op->call_r < 0) {
                                op->d->counters.calls_failed++;
                                if (p)
                                        p->counters.calls_failed++;
                        }
                }
        }
        p = ph_registry_find(op->d->reg, op->name);
        if (p && p->loading == op)
                p->loading = NULL;
        for (size_t i = 0; !op->replied && i < op->n_joined; i++) {
                if (op->load_r < 0)
                        ph_reply_error(op->joined[i], PH_VERR_LOAD_FAILED,
                                       json_pack("{s:s}", "name", op->name), "%s", op->err);
                else if (p)
                        ph_reply_ok(op->joined[i], json_pack("{s:o}", "plugin", plugin_json(p)));
                else
                        ph_reply_error(op->joined[i], PH_VERR_NO_SUCH_PLUGIN,
                                       json_pack("{s:s}", "name", op->name),
                                       "%s was removed while loading", op->name);
        }
        if (!op->replied) {
                if (op->load_r < 0) {
                        ph_reply_error(op->reply, op->load_r == -ESTALE ? PH_VERR_BUSY : PH_VERR_LOAD_FAILED,
                                       json_pack("{s:s}", "name", op->name), "%s", op->err);
                } else if (!op->method) {
                        p = ph_registry_find(op->d->reg, op->name);
                        if (p)
                                ph_reply_ok(op->reply, json_pack("{s:o}", "plugin", plugin_json(p)));
                        else
                                ph_reply_error(op->reply, PH_VERR_NO_SUCH_PLUGIN,
                                               json_pack("{s:s}", "name", op->name),
                                               "%s was removed while loading", op->name);
                } else if (op->call_r < 0) {
                        ph_reply_error(op->reply, PH_VERR_CALL_FAILED,
                                       json_pack("{s:s, s:s, s:i}", "name", op->name, "method",
                                                 op->method, "errno", -op->call_r),
                                       "%s", op->err);
                } else {
                        json_error_t jerr;
                        json_t *res = op->result ? json_loads(op->result, JSON_DECODE_ANY, &jerr)
                                                 : json_null();
                        if (!res)
                                ph_reply_error(op->reply, PH_VERR_CALL_FAILED,
                                               json_pack("{s:s, s:s, s:i}", "name", op->name,
                                                         "method", op->method, "errno", EBADMSG),
                                               "%s returned invalid JSON: %s", op->name, jerr.text);
                        else
                                ph_reply_ok(op->reply, json_pack("{s:o}", "result", res));
                }
        }
        uv_close((uv_handle_t *)&op->timer, op_free_cb);
}

/* Starts a load (and call, if method) of p; reply may be NULL. */
static void op_start(ph_daemon *d, ph_plugin *p, const char *method, json_t *params, ph_reply *r,
                     const ph_conn *c)
{
        unsigned *slot = NULL;
        op_job *op;

        /* A version that failed to load fails the same way: say so at once
         * (the cache remembers it too), without taking a plugin thread. */
        if (p->state == PH_PSTATE_FAILED && p->failed_generation == p->file->generation) {
                ph_reply_error(r, PH_VERR_LOAD_FAILED, json_pack("{s:s}", "name", p->name), "%s",
                               p->last_error ? p->last_error : "load failed");
                return;
        }
        if (ph_state_quarantined(d, p->name, &p->file->id)) {
                const char *why = "quarantined: the daemon stopped while this version was "
                                  "initialising; replace the file to try again";

                if (p->state != PH_PSTATE_QUARANTINED)
                        ph_registry_set_state(d->reg, p, PH_PSTATE_QUARANTINED, why, true);
                ph_reply_error(r, PH_VERR_LOAD_FAILED, json_pack("{s:s}", "name", p->name),
                               "%s: %s", p->name, why);
                return;
        }
        /* One user cannot take every plugin thread: calls per uid are capped. */
        if (c && (slot = uid_calls_slot(d, ph_conn_uid(c))) && *slot >= d->cfg.max_calls_per_uid) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "uid %u has %u operations in flight already",
                               (unsigned)ph_conn_uid(c), *slot);
                return;
        }
        op = calloc(1, sizeof(*op));

        if (!op || !(op->name = strdup(p->name)) || !(op->path = strdup(p->file->path)) ||
            !(op->config = strdup(ph_config_plugin_json(&d->cfg, p->name))) ||
            (method && (!(op->method = strdup(method)) ||
                        !(op->params = params ? json_dumps(params, JSON_COMPACT) : strdup("{}"))))) {
                if (op)
                        free(op->name), free(op->path), free(op->config), free(op->method);
                free(op);
                ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                return;
        }
        op->d = d;
        op->reply = r;
        op->generation = p->file->generation;
        op->id = p->file->id;
        op->any_ready = method && p->state == PH_PSTATE_LOADED &&
                        p->loaded_generation != p->file->generation;
        op->job.work = op_work;
        op->job.done = op_done;
        uv_timer_init(d->loop, &op->timer);
        op->timer.data = op;
        if (ph_pool_submit(d->pool, &op->job) < 0) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "too many operations queued; try again");
                op->replied = true;
                uv_close((uv_handle_t *)&op->timer, op_free_cb);
                return;
        }
        if (slot) {
                (*slot)++;
                op->counted = true;
                op->uid = ph_conn_uid(c);
        }
        if (method)
                p->counters.in_flight++;
        else
                p->loading = op;
        if (p->state != PH_PSTATE_LOADED)
                p->state = PH_PSTATE_LOADING;
        if (r)
                uv_timer_start(&op->timer, op_timeout_cb, (uint64_t)(d->cfg.call_timeout_sec * 1000), 0);
}

static void method_load(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_plugin *p = find_or_reply(d, param_str(req, "name"), r);

        if (!p)
                return;
        p->wanted = true;
        ph_state_want(d, p->name, true);
        if (p->state == PH_PSTATE_LOADED && p->loaded_generation == p->file->generation) {
                ph_reply_ok(r, json_pack("{s:o}", "plugin", plugin_json(p)));
                return;
        }
        if (p->loading && ((op_job *)p->loading)->generation == p->file->generation) {
                /* The same load is under way: answer with it. */
                op_job *op = p->loading;
                ph_reply **grown;

                if (!r)
                        return;
                grown = realloc(op->joined, (op->n_joined + 1) * sizeof(*grown));
                if (!grown) {
                        ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                        return;
                }
                op->joined = grown;
                op->joined[op->n_joined++] = r;
                return;
        }
        op_start(d, p, NULL, NULL, r, c);
}

static void method_call(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_plugin *p = find_or_reply(d, param_str(req, "name"), r);

        if (!p)
                return;
        op_start(d, p, param_str(req, "method"), json_object_get(req->parameters, "parameters"), r, c);
}

static void method_unload(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_plugin *p = find_or_reply(d, param_str(req, "name"), r);

        if (!p)
                return;
        p->wanted = false;
        ph_state_want(d, p->name, false);
        ph_cache_unload(d->cache, p->name);
        if (p->state == PH_PSTATE_LOADED) {
                p->counters.unloads++;
                p->loaded_generation = 0;
                ph_registry_set_state(d->reg, p, PH_PSTATE_DISCOVERED, NULL, true);
        }
        ph_reply_ok(r, NULL);
}

static void rescan_done(ph_daemon *d, unsigned added, unsigned changed, unsigned removed, void *ud)
{
        (void)d;
        ph_reply_ok(ud, json_pack("{s:i, s:i, s:i}", "added", (int)added, "changed", (int)changed,
                                  "removed", (int)removed));
}

static void method_rescan(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        (void)req;
        if (ph_scan_all(d, rescan_done, r) < 0)
                ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
}

/* ---- org.varlink.service ---- */

static void method_get_info(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        (void)d;
        (void)req;
        ph_reply_ok(r, ph_varlink_get_info(PACKAGE_VERSION));
}

static void method_get_interface_description(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        const char *iface = param_str(req, "interface");
        const char *text = ph_varlink_interface_description(iface);

        (void)d;
        if (!text) {
                ph_reply_error(r, PH_VERR_INTERFACE_NOT_FOUND, json_pack("{s:s}", "interface", iface),
                               "interface not served here");
                return;
        }
        ph_reply_ok(r, json_pack("{s:s}", "description", text));
}

typedef void (*method_fn)(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r);

static const method_fn method_table[_PH_M_MAX] = {
        [PH_M_GET_INFO] = method_get_info,
        [PH_M_GET_INTERFACE_DESCRIPTION] = method_get_interface_description,
        [PH_M_LIST] = method_list,
        [PH_M_INFO] = method_info,
        [PH_M_QUERY] = method_query,
        [PH_M_LOAD] = method_load,
        [PH_M_UNLOAD] = method_unload,
        [PH_M_CALL] = method_call,
        [PH_M_RESCAN] = method_rescan,
        [PH_M_STATUS] = method_status,
        [PH_M_MONITOR] = method_monitor,
};

/* Changing methods: root, our own user, then the plugin's access list if
 * it has one, else the global one. */
static bool client_allowed(ph_daemon *d, ph_conn *c, ph_request *req)
{
        const char *name = param_str(req, "name");
        const ph_acl *acl = name ? ph_config_plugin_acl(&d->cfg, name) : &d->cfg.acl;
        size_t n;
        const gid_t *groups = ph_conn_groups(c, &n);

        return ph_acl_allows(acl, ph_conn_uid(c), groups, n);
}

void ph_methods_dispatch(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        method_fn fn = (unsigned)req->method->id < _PH_M_MAX ? method_table[req->method->id] : NULL;

        if (d->stopping && (req->method->flags & PH_METHOD_WRITE)) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "the daemon is stopping");
                return;
        }
        if ((req->method->flags & PH_METHOD_WRITE) && !client_allowed(d, c, req)) {
                const char *name = param_str(req, "name");

                log_notice("permission denied: %s by uid %u pid %d%s%.64s", req->method->name,
                           (unsigned)ph_conn_uid(c), (int)ph_conn_pid(c), name ? " on " : "",
                           name ? name : "");
                ph_reply_error(r, PH_VERR_PERMISSION_DENIED,
                               json_pack("{s:s}", "method", req->method->name),
                               "uid %u may not call %s%s%.64s", (unsigned)ph_conn_uid(c),
                               req->method->name, name ? " on " : "", name ? name : "");
                return;
        }
        if (!fn) {
                ph_reply_error(r, PH_VERR_METHOD_NOT_IMPLEMENTED,
                               json_pack("{s:s}", "method", req->method->name), "not implemented");
                return;
        }
        fn(d, c, req, r);
}

/* ---- events ---- */

void ph_methods_on_event(ph_event_kind kind, ph_plugin *p, const char *message, void *ud)
{
        ph_daemon *d = ud;
        json_t *ev;

        ev = json_pack("{s:s, s:s, s:s, s:I}", "kind", ph_event_kind_name(kind), "name", p->name,
                       "version", p->file ? p->file->meta->version : "",
                       "generation", (json_int_t)(p->file ? p->file->generation : 0));
        if (message)
                json_object_set_new(ev, "message", json_string(message));
        if (kind == PH_EVENT_FAILED)
                log_warning("plugin %s: %s", p->name, message ? message : "failed");
        else
                log_info("plugin %s %s", p->name, ph_event_kind_name(kind));
        if (d->server)
                ph_server_broadcast(d->server, ev);
        else
                json_decref(ev);

        if (kind == PH_EVENT_REMOVED) {
                ph_cache_unload(d->cache, p->name);
                return;
        }
        if (kind == PH_EVENT_ADDED)
                p->wanted = ph_state_wanted(d, p->name);
        if (kind != PH_EVENT_ADDED && kind != PH_EVENT_CHANGED)
                return;
        if (p->state == PH_PSTATE_QUARANTINED && !ph_state_quarantined(d, p->name, &p->file->id))
                ph_registry_set_state(d->reg, p, PH_PSTATE_DISCOVERED, NULL, false);
        if (p->state == PH_PSTATE_FAILED && kind == PH_EVENT_CHANGED)
                ph_registry_set_state(d->reg, p, PH_PSTATE_DISCOVERED, NULL, false);
        /* Hot replace, or a restored plugin: load the new version; an old
         * one serves until the new one is ready, and then drains. */
        if (d->ready && (p->state == PH_PSTATE_LOADED || p->wanted))
                op_start(d, p, NULL, NULL, NULL, NULL);
}

static int restore_cb(ph_plugin *p, void *ud)
{
        ph_daemon *d = ud;

        if (p->wanted && p->state != PH_PSTATE_LOADED)
                op_start(d, p, NULL, NULL, NULL, NULL);
        return 0;
}

void ph_methods_restore(ph_daemon *d)
{
        ph_registry_foreach(d->reg, restore_cb, d);
}
