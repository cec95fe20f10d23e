/* The daemon's replies as jansson trees, as they were built before the JSON
 * writer: each function is the old code (git show acf1a73^:daemon/...,
 * e55914b^:protocol/reply.c) with only its name changed and what it needs
 * from today's structures. Where the daemon meant to change a reply, the
 * test normalises that case, not this file: the oracle stays the old
 * behaviour. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "oracle-json.h"
#include "varlink-internal.h"
#include "vec.h"
#include "worker.h"

/* ---- acf1a73^:daemon/plugin-json.c -------------------------------------------- */

static json_t *str_or_null(const char *s)
{
        return s ? ph_varlink_text(s) : json_null();
}

static json_t *pending_json(const ph_plugin *p)
{
        const ph_life *l = p->life;
        const char *state = "discovered";

        if (!l->serving || l->serving->generation == p->file->generation)
                return json_null();
        if (l->load && l->load->generation == p->file->generation)
                state = "loading";
        else if (l->failed_generation == p->file->generation)
                state = "failed";
        return json_pack("{s:s, s:I, s:o, s:s, s:o}", "version", p->file->meta->version,
                         "generation", (json_int_t)p->file->generation, "file",
                         str_or_null(p->file->path),
                         "state", state, "error",
                         str_or_null(l->failed_generation == p->file->generation ? l->error : NULL));
}

static json_t *worker_json(const ph_serving *srv)
{
        void *h = srv ? ph_instance_runner_handle(srv->inst) : NULL;
        ph_worker_stats st;

        if (!h)
                return json_null();
        ph_worker_stats_get(h, &st);
        return json_pack("{s:I, s:i, s:i, s:b, s:o}", "pid", (json_int_t)st.pid, "restarts",
                         (int)st.restarts, "faults", (int)st.faults, "quarantined", st.quarantined,
                         "lastFault", str_or_null(st.last_fault[0] ? st.last_fault : NULL));
}

static const char *isolation_name(const ph_daemon *d, const ph_plugin *p, const ph_serving *srv)
{
        ph_isolation iso;

        if (srv)
                return ph_instance_runner_handle(srv->inst) ? "process" : "inprocess";
        ph_config_isolation(d->cfg, p->name, p->file->path, &iso);
        return ph_isolation_mode_name(iso.mode);
}

json_t *oracle_plugin_json(const ph_daemon *d, const ph_plugin *p)
{
        const ph_life *l = p->life;
        const ph_meta *m = ph_life_meta(p);
        const ph_serving *srv = l->serving;
        json_t *ifaces = json_array(), *j;

        for (size_t i = 0; i < m->n_interfaces; i++)
                json_array_append_new(ifaces, json_string(m->interfaces[i]));
        j = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:b, s:i, s:s, s:o, s:I, s:o, s:o}",
                         "name", p->name, "version", m->version, "interfaces", ifaces,
                         "description", str_or_null(m->description),
                         "license", str_or_null(m->license), "url", str_or_null(m->url),
                         "concurrency", m->serial ? "serial" : "parallel", "resident", m->resident,
                         "priority", m->priority, "state", ph_pstate_name(l->state),
                         "file", str_or_null(srv ? srv->file : p->file->path),
                         "generation", (json_int_t)(srv ? srv->generation : p->file->generation),
                         "lastError", str_or_null(l->error), "pending", pending_json(p));
        if (j) {
                json_object_set_new(j, "isolation", json_string(isolation_name(d, p, srv)));
                json_object_set_new(j, "worker", worker_json(srv));
        }
        return j;
}

/* ---- acf1a73^:daemon/methods.c ---------------------------------------------------- */

static bool plugin_has_interface(const ph_plugin *p, const char *iface)
{
        const ph_meta *m = ph_life_meta(p);

        for (size_t i = 0; i < m->n_interfaces; i++)
                if (strcmp(m->interfaces[i], iface) == 0)
                        return true;
        return false;
}

static void append(json_t *a, json_t *v, bool *ok)
{
        if (json_array_append_new(a, v) < 0)
                *ok = false;
}

/* reply_whole: an incomplete reply was Busy; here, NULL. */
static json_t *whole(json_t *params, bool ok)
{
        if (!params || !ok) {
                json_decref(params);
                return NULL;
        }
        return params;
}

/* The whole List, as one reply. New since: "limit" pages with "next" and
 * "more" streams parts; the test puts their entries together before it
 * compares them with this. */
json_t *oracle_list(ph_daemon *d, const char *iface, const char *state)
{
        json_t *plugins = json_array(), *rejected = json_array();
        bool ok = true;

        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p)) {
                if (!p->life || (iface && !plugin_has_interface(p, iface)))
                        continue;
                if (state && strcmp(state, ph_pstate_name(p->life->state)) != 0)
                        continue;
                append(plugins, oracle_plugin_json(d, p), &ok);
        }
        for (ph_file *f = ph_registry_rejected_first(d->reg); f; f = ph_registry_rejected_next(d->reg, f))
                append(rejected,
                       json_pack("{s:o, s:s, s:o}", "file", ph_varlink_text(f->path), "reason",
                                 ph_file_reason_name(f), "message",
                                 ph_varlink_text(f->message ? f->message : "")),
                       &ok);
        return whole(json_pack("{s:o, s:o}", "plugins", plugins, "rejected", rejected), ok);
}

static json_t *counters_json(const ph_plugin_counters *k)
{
        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "calls", (json_int_t)k->calls,
                         "callsFailed", (json_int_t)k->calls_failed,
                         "callsInFlight", (json_int_t)k->in_flight, "loads", (json_int_t)k->loads,
                         "loadFailures", (json_int_t)k->load_failures,
                         "unloads", (json_int_t)k->unloads);
}

json_t *oracle_info(ph_daemon *d, const char *name)
{
        ph_plugin *p = ph_registry_find(d->reg, name);
        json_t *meta;

        if (!p || !p->life)
                return NULL;
        meta = json_incref((json_t *)ph_life_meta(p)->priv);
        return whole(json_pack("{s:o, s:o, s:o}", "plugin", oracle_plugin_json(d, p),
                               "metadata", meta ? meta : json_object(),
                               "counters", counters_json(&p->life->counters)), true);
}

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

json_t *oracle_query(ph_daemon *d, const char *iface)
{
        ph_plugin **found = NULL;
        size_t n = 0, cap = 0;
        json_t *list = json_array();
        bool ok = true;

        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p))
                if (p->life && plugin_has_interface(p, iface) &&
                    ph__vec_push((void **)&found, &n, &cap, sizeof(*found), &p) < 0) {
                        free(found);
                        json_decref(list);
                        return NULL;
                }
        if (n > 0)
                qsort(found, n, sizeof(*found), query_order);
        for (size_t i = 0; i < n; i++)
                append(list, oracle_plugin_json(d, found[i]), &ok);
        free(found);
        return whole(json_pack("{s:o}", "plugins", list), ok);
}

static json_t *daemon_counters_json(ph_daemon *d)
{
        const ph_daemon_counters *k = &d->counters;

        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "calls", (json_int_t)k->calls,
                         "callsFailed", (json_int_t)k->calls_failed,
                         "callsInFlight", (json_int_t)k->in_flight, "loads", (json_int_t)k->loads,
                         "loadFailures", (json_int_t)k->load_failures, "unloads", (json_int_t)k->unloads);
}

json_t *oracle_status(ph_daemon *d)
{
        size_t rejected, n = ph_registry_count(d->reg, &rejected), loaded = ph_life_loaded_count(d);
        json_t *dirs = json_array();

        for (size_t i = 0; i < d->cfg->n_plugin_dirs; i++)
                json_array_append_new(dirs, ph_varlink_text(d->cfg->plugin_dirs[i]));
        return json_pack("{s:s, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "version",
                         PACKAGE_VERSION,
                         "uptimeSeconds", (json_int_t)((ph_now_ms() - d->started_ms) / 1000),
                         "pluginDirectories", dirs, "plugins", (json_int_t)n,
                         "loaded", (json_int_t)loaded, "rejected", (json_int_t)rejected,
                         "clients", (json_int_t)ph_server_clients(d->server),
                         "bufferedBytes", (json_int_t)ph_server_buffered(d->server),
                         "disconnected", (json_int_t)ph_server_disconnects(d->server),
                         "counters", daemon_counters_json(d));
}

/* ---- acf1a73^:daemon/lifecycle.c and ops.c ----------------------------------------- */

json_t *oracle_load(ph_daemon *d, ph_plugin *p)
{
        return json_pack("{s:o}", "plugin", oracle_plugin_json(d, p));
}

/* op_take_result's parse (the size checks aside), then call_done's
 * json_pack("{s:O?}", "result", op->result). Changed on purpose: the
 * daemon now sends the plugin's text as it is, so the bytes match only
 * where jansson would write that text the same (test_call compares the
 * normalised forms, and the bytes where they must match). */
json_t *oracle_call(const char *text)
{
        json_error_t jerr;
        json_t *j = NULL, *params;

        if (text) {
                j = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
                if (!j)
                        return NULL;
                if (json_is_null(j)) {
                        json_decref(j);
                        j = NULL;
                } else if (!json_is_object(j)) {
                        json_decref(j);
                        return NULL;
                }
        }
        params = json_pack("{s:O?}", "result", j);
        json_decref(j);
        return params;
}

/* ---- acf1a73^:daemon/events.c --------------------------------------------------------- */

json_t *oracle_event_json(const ph_event *e)
{
        json_t *ev = json_pack("{s:s}", "kind", ph_event_kind_name(e->kind));

        if (!ev)
                return NULL;
        if (e->name)
                json_object_set_new(ev, "name", ph_varlink_text(e->name));
        if (e->version)
                json_object_set_new(ev, "version", ph_varlink_text(e->version));
        if (e->generation)
                json_object_set_new(ev, "generation", json_integer((json_int_t)e->generation));
        if (e->file)
                json_object_set_new(ev, "file", ph_varlink_text(e->file));
        if (e->reason)
                json_object_set_new(ev, "reason", json_string(e->reason));
        if (e->message)
                json_object_set_new(ev, "message", ph_varlink_text(e->message));
        if (e->fix)
                json_object_set_new(ev, "fix", json_string(e->fix));
        return ev;
}

/* acf1a73^:daemon/server.c ph_server_broadcast's serialisation. */
int oracle_event_message(const ph_event *e, char **ret, size_t *ret_len)
{
        json_t *ev = oracle_event_json(e);

        if (!ev)
                return -ENOMEM;
        return oracle_reply(json_pack("{s:o}", "event", ev), true, ret, ret_len);
}

/* ---- e55914b^:protocol/reply.c ------------------------------------------------------ */

#define ERROR_MESSAGE_MAX PH_VARLINK_STRING_MAX

struct dump {
        char *data;
        size_t len;
        size_t size;
        bool too_big;
};

static int dump_cb(const char *buffer, size_t size, void *userdata)
{
        struct dump *d = userdata;

        if (size > PH_VARLINK_MESSAGE_MAX - 1 - d->len) {
                d->too_big = true;
                return -1;
        }
        if (d->len + size + 1 > d->size) {
                size_t n = d->size ? d->size * 2 : 256;
                char *p;

                while (n < d->len + size + 1)
                        n *= 2;
                if (n > PH_VARLINK_MESSAGE_MAX)
                        n = PH_VARLINK_MESSAGE_MAX;
                p = realloc(d->data, n);
                if (!p)
                        return -1;
                d->data = p;
                d->size = n;
        }
        memcpy(d->data + d->len, buffer, size);
        d->len += size;
        return 0;
}

static int message_dump(json_t *root, char **ret, size_t *ret_len)
{
        struct dump d = { 0 };
        int r;

        if (!root)
                return -ENOMEM;
        r = json_dump_callback(root, dump_cb, &d, JSON_COMPACT);
        json_decref(root);
        if (r < 0 || !d.data) {
                free(d.data);
                return d.too_big ? -EMSGSIZE : -ENOMEM;
        }
        d.data[d.len] = '\0';
        *ret = d.data;
        *ret_len = d.len + 1;
        return 0;
}

static json_t *message_new(const char *key, json_t *value, json_t *params)
{
        json_t *root = json_object();

        if (!params)
                params = json_object();
        if (!root || !params) {
                json_decref(value);
                json_decref(root);
                json_decref(params);
                return NULL;
        }
        if (key && json_object_set_new(root, key, value) < 0) {
                json_decref(root);
                json_decref(params);
                return NULL;
        }
        if (json_object_set_new(root, "parameters", params) < 0) {
                json_decref(root);
                return NULL;
        }
        return root;
}

int oracle_reply(json_t *params, bool continues, char **ret, size_t *ret_len)
{
        json_t *root;

        if (params && !json_is_object(params)) {
                json_decref(params);
                return -EINVAL;
        }
        root = message_new(NULL, NULL, params);
        if (root && continues && json_object_set_new(root, "continues", json_true()) < 0) {
                json_decref(root);
                return -ENOMEM;
        }
        return message_dump(root, ret, ret_len);
}

int oracle_error(ph_verr e, json_t *params, char **ret, size_t *ret_len)
{
        const char *name = ph_varlink_error_name(e);

        if (!name || (params && !json_is_object(params))) {
                json_decref(params);
                return -EINVAL;
        }
        return message_dump(message_new("error", json_string(name), params), ret, ret_len);
}

int oracle_errorf(ph_verr e, json_t *params, char **ret, size_t *ret_len, const char *fmt, ...)
{
        char text[ERROR_MESSAGE_MAX + 4];
        va_list ap;
        size_t len;
        int n;

        if (!ph_varlink_error_name(e) || (params && !json_is_object(params))) {
                json_decref(params);
                return -EINVAL;
        }
        if (!params)
                params = json_object();
        va_start(ap, fmt);
        n = vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        len = n < 0 ? 0 : (size_t)n;
        if (len > sizeof(text) - 1)
                len = sizeof(text) - 1;
        ph__utf8_sanitise(text, len);
        len = ph__utf8_cut(text, len, ERROR_MESSAGE_MAX);
        if (!params || json_object_set_new(params, "message", json_stringn(text, len)) < 0) {
                json_decref(params);
                return -ENOMEM;
        }
        return oracle_error(e, params, ret, ret_len);
}
