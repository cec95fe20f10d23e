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
#include "listing.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "varlink.h"
#include "vec.h"

static const char *param_str(const ph_request *req, const char *name)
{
        return json_string_value(json_object_get(req->parameters, name));
}

/* ---- reads ---- */

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

static void method_info(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        ph_plugin *p = find_or_reply(d, param_str(req, "name"), r);
        const ph_plugin_counters *k;
        ph_jw w;

        if (!p)
                return;
        k = &p->life->counters;
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        ph_jw_key(&w, "plugin");
        ph_plugin_write(&w, d, p);
        ph_jw_key(&w, "metadata");
        ph_plugin_write_metadata(&w, p);
        ph_jw_key(&w, "counters");
        ph_metrics_write_counters(&w, k->calls, k->calls_failed, k->in_flight, k->loads,
                                  k->load_failures, k->unloads);
        ph_reply_jw(r, &w);
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
        [PH_M_LIST] = ph_listing_list,
        [PH_M_INFO] = method_info,
        [PH_M_QUERY] = ph_listing_query,
        [PH_M_LOAD] = method_load,
        [PH_M_UNLOAD] = method_unload,
        [PH_M_CALL] = method_call,
        [PH_M_RESCAN] = method_rescan,
        [PH_M_STATUS] = ph_metrics_status,
        [PH_M_MONITOR] = method_monitor,
        [PH_M_METRICS] = ph_metrics_metrics,
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

