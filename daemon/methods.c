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

/* Paged and streamed List: a part stops growing past this many bytes
 * (a page: past half the message cap, so one more entry always fits). */
#define LIST_PART_BYTES (16u << 10)
#define LIST_PAGE_BYTES (PH_VARLINK_MESSAGE_MAX / 2)

/* Where a List is: a cursor (the last name or, past the plugins, the last
 * rejected file's path: paths start with '/', names never do), so that a
 * stream survives plugins coming and going between its parts. */
typedef struct list_state {
        ph_daemon *d;
        char *interface, *state;        /* filters, or NULL */
        char *after;                    /* the cursor, or NULL: from the start */
        long long left;                 /* entries still wanted; -1: no limit */
        size_t part_bytes;              /* SIZE_MAX: the whole list in one reply */
        bool more;                      /* streamed: parts say "continues" */
} list_state;

static void list_state_free(void *data)
{
        list_state *ls = data;

        if (!ls)
                return;
        free(ls->interface);
        free(ls->state);
        free(ls->after);
        free(ls);
}

static bool list_wants(const list_state *ls, const ph_plugin *p)
{
        if (!p->life || (ls->interface && !plugin_has_interface(p, ls->interface)))
                return false;
        return !ls->state || strcmp(ls->state, ph_pstate_name(p->life->state)) == 0;
}

static bool list_take(list_state *ls, ph_jw *w, size_t start)
{
        if (ls->left == 0 || ph_jw_len(w) - start >= ls->part_bytes)
                return false;
        return true;
}

static int list_cursor(list_state *ls, const char *at)
{
        char *copy = strdup(at);

        if (!copy)
                return -ENOMEM;
        free(ls->after);
        ls->after = copy;
        return 0;
}

/* Writes the next entries into w (an open parameters object) from the
 * cursor on; returns 1 when entries remain after them, 0 when the list is
 * done, -ENOMEM. */
static int list_write(list_state *ls, ph_jw *w)
{
        ph_registry *reg = ls->d->reg;
        size_t start = ph_jw_len(w);
        bool in_rejected = ls->after && ls->after[0] == '/';
        ph_plugin *p = in_rejected ? NULL : ph_registry_after(reg, ls->after);
        ph_file *f;
        const char *last = NULL;

        ph_jw_key(w, "plugins");
        ph_jw_array_open(w);
        for (; p; p = ph_registry_next(reg, p)) {
                if (!list_wants(ls, p))
                        continue;
                if (!list_take(ls, w, start))
                        break;
                ph_plugin_write(w, ls->d, p);
                last = p->name;
                if (ls->left > 0)
                        ls->left--;
        }
        ph_jw_array_close(w);
        if (last && list_cursor(ls, last) < 0)
                return -ENOMEM;
        ph_jw_key(w, "rejected");
        ph_jw_array_open(w);
        /* Past the plugins (even when none was taken): the rejected files. */
        f = p ? NULL : ph_registry_rejected_after(reg, in_rejected ? ls->after : NULL);
        last = NULL;
        for (; f; f = ph_registry_rejected_next(reg, f)) {
                if (!list_take(ls, w, start))
                        break;
                ph_jw_object_open(w);
                ph_jw_key(w, "file");
                ph_jw_text(w, f->path);
                ph_jw_key(w, "reason");
                ph_jw_string(w, ph_file_reason_name(f));
                ph_jw_key(w, "message");
                ph_jw_text(w, f->message ? f->message : "");
                ph_jw_object_close(w);
                last = f->path;
                if (ls->left > 0)
                        ls->left--;
        }
        ph_jw_array_close(w);
        if (last && list_cursor(ls, last) < 0)
                return -ENOMEM;
        return p || f ? 1 : 0;
}

/* One part of a streamed List (ph_reply_part_fn). */
static int list_part(void *data, char **ret, size_t *ret_len)
{
        list_state *ls = data;
        ph_jw w;
        int more, r;

        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        if ((more = list_write(ls, &w)) < 0) {
                ph_jw_release(&w);
                return more;
        }
        /* A stream's limit is for the whole stream (a page's, for one page:
         * its "next" says where to go on). */
        if (ls->left == 0)
                more = 0;
        if ((r = ph_jw_message_end(&w, more, ret, ret_len)) < 0)
                return r;
        return more;
}

/* "next" is the cursor as it is when it is UTF-8 (every name, most paths);
 * a path that is not (a file name with any bytes) would come back with '?'
 * for them and name another place, so it is sent as '%' and the hex of its
 * bytes (names never start with '%', paths start with '/'). */
static int list_next_write(ph_jw *w, const char *cursor)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *u = (const unsigned char *)cursor;
        size_t n = strlen(cursor), i, k;
        char *enc;

        for (i = 0; i < n; i += k)
                if (!(k = ph_varlink_utf8_len(u + i, n - i)))
                        break;
        ph_jw_key(w, "next");
        if (i == n) {
                ph_jw_string(w, cursor);
                return 0;
        }
        if (!(enc = malloc(2 * n + 2)))
                return -ENOMEM;
        enc[0] = '%';
        for (i = 0; i < n; i++) {
                enc[1 + 2 * i] = hex[u[i] >> 4];
                enc[2 + 2 * i] = hex[u[i] & 15];
        }
        enc[2 * n + 1] = '\0';
        ph_jw_string(w, enc);
        free(enc);
        return 0;
}

static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* The cursor a client sent: as it is, or decoded from "%HEX". NULL with
 * *ret_bad set when it is not hex (or hides a NUL). */
static char *list_after_decode(const char *after, bool *ret_bad)
{
        size_t n = strlen(after);
        char *raw;

        if (after[0] != '%')
                return strdup(after);
        if ((n - 1) % 2 != 0 || n < 3) {
                *ret_bad = true;
                return NULL;
        }
        if (!(raw = malloc((n - 1) / 2 + 1)))
                return NULL;
        for (size_t i = 0; i < (n - 1) / 2; i++) {
                int hi = hex_digit(after[1 + 2 * i]), lo = hex_digit(after[2 + 2 * i]);

                if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                        free(raw);
                        *ret_bad = true;
                        return NULL;
                }
                raw[i] = (char)(hi << 4 | lo);
        }
        raw[(n - 1) / 2] = '\0';
        return raw;
}

static list_state *list_state_new(ph_daemon *d, const ph_request *req, bool *ret_bad)
{
        list_state *ls = calloc(1, sizeof(*ls));
        const char *iface = param_str(req, "interface"), *state = param_str(req, "state");
        const char *after = param_str(req, "after");
        json_t *limit = json_object_get(req->parameters, "limit");

        if (!ls)
                return NULL;
        ls->d = d;
        ls->left = limit ? json_integer_value(limit) : -1;
        if ((iface && !(ls->interface = strdup(iface))) || (state && !(ls->state = strdup(state))) ||
            (after && !(ls->after = list_after_decode(after, ret_bad)))) {
                list_state_free(ls);
                return NULL;
        }
        return ls;
}

static void method_list(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        json_t *limit = json_object_get(req->parameters, "limit");
        bool bad = false;
        list_state *ls;
        ph_jw w;
        int more;

        if (limit && json_integer_value(limit) < 1) {
                ph_reply_error(r, PH_VERR_INVALID_PARAMETER, json_pack("{s:s}", "parameter", "limit"),
                               "limit must be at least 1");
                return;
        }
        if (!(ls = list_state_new(d, req, &bad))) {
                if (bad)
                        ph_reply_error(r, PH_VERR_INVALID_PARAMETER,
                                       json_pack("{s:s}", "parameter", "after"),
                                       "after: not a cursor this daemon gave (%%HEX)");
                else
                        ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                return;
        }
        if (req->more && r) {
                /* Parts made as the client reads them. */
                ls->part_bytes = LIST_PART_BYTES;
                ph_reply_parts(r, list_part, ls, list_state_free);
                return;
        }
        /* A page ends short of the cap, with "next"; a plain List is whole
         * or io.plughost.ReplyTooLarge (a client that knows no "next"
         * must not take a page for everything). */
        ls->part_bytes = limit ? LIST_PAGE_BYTES : SIZE_MAX;
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        more = list_write(ls, &w);
        if (more > 0 && ls->after && list_next_write(&w, ls->after) < 0)
                more = -ENOMEM;
        list_state_free(ls);
        if (more < 0) {
                ph_jw_release(&w);
                ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                return;
        }
        if (w.err == -EMSGSIZE) {
                ph_jw_release(&w);
                ph_reply_error(r, PH_VERR_REPLY_TOO_LARGE,
                               json_pack("{s:I}", "limit", (json_int_t)PH_VARLINK_MESSAGE_MAX),
                               "the list would exceed %u bytes: ask with \"more\" (streamed) or "
                               "\"limit\" (paged)", PH_VARLINK_MESSAGE_MAX);
                return;
        }
        ph_reply_jw(r, &w);
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

static void count_write(ph_jw *w, const char *key, uint64_t v)
{
        ph_jw_key(w, key);
        ph_jw_int(w, (long long)v);
}

/* The counters of a plugin or of the daemon (the same six). */
static void counters_write(ph_jw *w, uint64_t calls, uint64_t failed, uint64_t in_flight,
                           uint64_t loads, uint64_t load_failures, uint64_t unloads)
{
        ph_jw_object_open(w);
        count_write(w, "calls", calls);
        count_write(w, "callsFailed", failed);
        count_write(w, "callsInFlight", in_flight);
        count_write(w, "loads", loads);
        count_write(w, "loadFailures", load_failures);
        count_write(w, "unloads", unloads);
        ph_jw_object_close(w);
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
        counters_write(&w, k->calls, k->calls_failed, k->in_flight, k->loads, k->load_failures,
                       k->unloads);
        ph_reply_jw(r, &w);
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
        ph_jw w;

        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p))
                if (p->life && plugin_has_interface(p, iface) &&
                    ph__vec_push((void **)&found, &n, &cap, sizeof(*found), &p) < 0) {
                        free(found);
                        ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                        return;
                }
        if (n > 0)              /* found is NULL then: qsort(NULL, 0) is undefined */
                qsort(found, n, sizeof(*found), query_order);
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        ph_jw_key(&w, "plugins");
        ph_jw_array_open(&w);
        for (size_t i = 0; i < n; i++)
                ph_plugin_write(&w, d, found[i]);
        ph_jw_array_close(&w);
        free(found);
        ph_reply_jw(r, &w);
}

static void method_status(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        size_t rejected, n = ph_registry_count(d->reg, &rejected), loaded = ph_life_loaded_count(d);
        const ph_daemon_counters *k = &d->counters;
        ph_jw w;

        (void)req;
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        ph_jw_key(&w, "version");
        ph_jw_string(&w, PACKAGE_VERSION);
        count_write(&w, "uptimeSeconds", (ph_now_ms() - d->started_ms) / 1000);
        ph_jw_key(&w, "pluginDirectories");
        ph_jw_array_open(&w);
        for (size_t i = 0; i < d->cfg->n_plugin_dirs; i++)
                ph_jw_text(&w, d->cfg->plugin_dirs[i]);
        ph_jw_array_close(&w);
        count_write(&w, "plugins", n);
        count_write(&w, "loaded", loaded);
        count_write(&w, "rejected", rejected);
        count_write(&w, "clients", ph_server_clients(d->server));
        count_write(&w, "bufferedBytes", ph_server_buffered(d->server));
        count_write(&w, "disconnected", ph_server_disconnects(d->server));
        ph_jw_key(&w, "counters");
        counters_write(&w, k->calls, k->calls_failed, k->in_flight, k->loads, k->load_failures,
                       k->unloads);
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

