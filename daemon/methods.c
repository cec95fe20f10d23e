/* The methods of io.plughost and org.varlink.service: permissions, then
 * the handler. Reads answer at once from the registry; Load, Call and
 * Unload are lifecycle transitions (lifecycle.c); Rescan is a scan batch.
 * Every error goes through ph_reply_error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "lifecycle.h"
#include "log.h"
#include "ratelimit.h"
#include "varlink.h"
#include "vec.h"

static bool plugin_has_interface(const ph_plugin *p, const char *iface)
{
        const ph_meta *m = ph_life_meta(p);

        for (size_t i = 0; i < m->n_interfaces; i++)
                if (strcmp(m->interfaces[i], iface) == 0)
                        return true;
        return false;
}

static const char *param_str(const ph_request *req, const char *name)
{
        return json_string_value(json_object_get(req->parameters, name));
}

/* ---- reads ---- */

/* Appends v to a; a NULL v (no memory) marks the listing incomplete. */
static void append(json_t *a, json_t *v, bool *ok)
{
        if (json_array_append_new(a, v) < 0)
                *ok = false;
}

/* A reply built of parts: all of it, or an error, never a listing with
 * holes or an empty object where a plugin should be. */
static void reply_whole(ph_reply *r, json_t *params, bool ok)
{
        if (!params || !ok) {
                json_decref(params);
                ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                return;
        }
        ph_reply_ok(r, params);
}

static void method_list(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        const char *iface = param_str(req, "interface"), *state = param_str(req, "state");
        json_t *plugins = json_array(), *rejected = json_array();
        bool ok = true;

        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p)) {
                if (!p->life || (iface && !plugin_has_interface(p, iface)))
                        continue;
                if (state && strcmp(state, ph_pstate_name(p->life->state)) != 0)
                        continue;
                append(plugins, ph_plugin_json(d, p), &ok);
        }
        for (ph_file *f = ph_registry_rejected_first(d->reg); f; f = ph_registry_rejected_next(d->reg, f))
                append(rejected,
                       json_pack("{s:o, s:s, s:o}", "file", ph_varlink_text(f->path), "reason",
                                 ph_file_reason_name(f), "message",
                                 ph_varlink_text(f->message ? f->message : "")),
                       &ok);
        reply_whole(r, json_pack("{s:o, s:o}", "plugins", plugins, "rejected", rejected), ok);
}

static ph_plugin *find_or_reply(ph_daemon *d, const char *name, ph_reply *r)
{
        ph_plugin *p = ph_registry_find(d->reg, name);

        /* (A plugin without a lifecycle record is one whose record could
         * not be allocated: as if it were not there.) */
        if (p && !p->life)
                p = NULL;
        if (!p)
                ph_reply_error(r, PH_VERR_NO_SUCH_PLUGIN, json_pack("{s:s}", "name", name),
                               "no plugin named '%.64s'", name);
        return p;
}

static json_t *counters_json(const ph_plugin_counters *k)
{
        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "calls", (json_int_t)k->calls,
                         "callsFailed", (json_int_t)k->calls_failed,
                         "callsInFlight", (json_int_t)k->in_flight, "loads", (json_int_t)k->loads,
                         "loadFailures", (json_int_t)k->load_failures,
                         "unloads", (json_int_t)k->unloads);
}

static void method_info(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_plugin *p = find_or_reply(d, param_str(req, "name"), r);
        json_t *meta;

        if (!p)
                return;
        /* The tree the reader validated: shared, read-only, loop thread only. */
        meta = json_incref((json_t *)ph_life_meta(p)->priv);
        reply_whole(r, json_pack("{s:o, s:o, s:o}", "plugin", ph_plugin_json(d, p),
                                 "metadata", meta ? meta : json_object(),
                                 "counters", counters_json(&p->life->counters)), true);
}

/* Best first: priority, then version, then name. */
static int query_order(const void *a, const void *b)
{
        const ph_plugin *x = *(ph_plugin *const *)a, *y = *(ph_plugin *const *)b;
        const ph_meta *mx = ph_life_meta(x), *my = ph_life_meta(y);
        int c;

        if (mx->priority != my->priority)
                return my->priority - mx->priority;
        c = ph_version_compare(my->version, mx->version);
        return c ? c : strcmp(x->name, y->name);
}

static void method_query(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        const char *iface = param_str(req, "interface");
        ph_plugin **found = NULL;
        size_t n = 0, cap = 0;
        json_t *list = json_array();
        bool ok = true;

        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p))
                if (p->life && plugin_has_interface(p, iface) &&
                    ph__vec_push((void **)&found, &n, &cap, sizeof(*found), &p) < 0) {
                        free(found);
                        json_decref(list);
                        ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                        return;
                }
        if (n > 0)              /* found is NULL then: qsort(NULL, 0) is undefined */
                qsort(found, n, sizeof(*found), query_order);
        for (size_t i = 0; i < n; i++)
                append(list, ph_plugin_json(d, found[i]), &ok);
        free(found);
        reply_whole(r, json_pack("{s:o}", "plugins", list), ok);
}

static json_t *daemon_counters_json(ph_daemon *d)
{
        const ph_daemon_counters *k = &d->counters;

        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "calls", (json_int_t)k->calls,
                         "callsFailed", (json_int_t)k->calls_failed,
                         "callsInFlight", (json_int_t)k->in_flight, "loads", (json_int_t)k->loads,
                         "loadFailures", (json_int_t)k->load_failures, "unloads", (json_int_t)k->unloads);
}

static void method_status(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        size_t rejected, n = ph_registry_count(d->reg, &rejected), loaded = ph_life_loaded_count(d);
        json_t *dirs = json_array();

        (void)req;
        for (size_t i = 0; i < d->cfg->n_plugin_dirs; i++)
                json_array_append_new(dirs, ph_varlink_text(d->cfg->plugin_dirs[i]));
        ph_reply_ok(r, json_pack("{s:s, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "version",
                                 PACKAGE_VERSION,
                                 "uptimeSeconds", (json_int_t)((ph_now_ms() - d->started_ms) / 1000),
                                 "pluginDirectories", dirs, "plugins", (json_int_t)n,
                                 "loaded", (json_int_t)loaded, "rejected", (json_int_t)rejected,
                                 "clients", (json_int_t)ph_server_clients(d->server),
                                 "bufferedBytes", (json_int_t)ph_server_buffered(d->server),
                                 "disconnected", (json_int_t)ph_server_disconnects(d->server),
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

/* ---- Load, Call, Unload: lifecycle transitions ---- */

static void method_load(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_plugin *p = find_or_reply(d, param_str(req, "name"), r);

        if (p)
                ph_life_load(d, p, r, c);
}

static void method_call(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_plugin *p = find_or_reply(d, param_str(req, "name"), r);

        if (p)
                ph_life_call(d, p, param_str(req, "method"),
                             json_object_get(req->parameters, "parameters"), r, c);
}

static void method_unload(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_plugin *p = find_or_reply(d, param_str(req, "name"), r);

        if (!p)
                return;
        ph_life_unload(d, p);
        ph_reply_ok(r, NULL);
}

static void rescan_done(void *userdata, const ph_scan_result *res)
{
        ph_reply *r = userdata;

        if (res->error == -ECANCELED) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "the daemon is stopping");
        } else if (res->error < 0) {
                ph_reply_error(r, PH_VERR_SCAN_FAILED, json_pack("{s:o}", "directory", ph_varlink_text(res->error_dir)),
                               "cannot read %s: %s", res->error_dir, strerror(-res->error));
        } else {
                ph_reply_ok(r, json_pack("{s:i, s:i, s:i}", "added", (int)res->counts.added,
                                         "changed", (int)res->counts.changed,
                                         "removed", (int)res->counts.removed));
        }
}

static void method_rescan(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        (void)req;
        if (ph_scan_all(d->scanner, rescan_done, r) < 0)
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
        const ph_acl *acl = name ? ph_config_plugin_acl(d->cfg, name) : &d->cfg->acl;
        size_t n;
        const gid_t *groups = ph_conn_groups(c, &n);

        return ph_acl_allows(acl, ph_conn_uid(c), groups, n);
}

void ph_methods_dispatch(void *userdata, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_daemon *d = userdata;
        method_fn fn = (unsigned)req->method->id < _PH_M_MAX ? method_table[req->method->id] : NULL;

        if (d->stopping && (req->method->flags & PH_METHOD_WRITE)) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "the daemon is stopping");
                return;
        }
        if ((req->method->flags & PH_METHOD_WRITE) && !client_allowed(d, c, req)) {
                const char *name = param_str(req, "name");

                if (ph_ratelimit_ok(d->rl_denied, ph_conn_uid(c), uv_now(d->loop)))
                        ph_log_fields(PH_LOG_NOTICE,
                                      &(ph_log_ctx){ .reason = "permission-denied",
                                                     .uid = ph_conn_uid(c) },
                                      "permission denied: %s by uid %u pid %d%s%.64s", req->method->name,
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

