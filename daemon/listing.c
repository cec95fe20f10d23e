/* List and Query: the replies that can be longer than a message. Each is
 * whole (or io.plughost.ReplyTooLarge saying how to ask), or streamed
 * ("more": parts made as the client reads them), or cut by a limit.
 *
 * List walks the registry in name order from a cursor, so a stream or a
 * pager survives plugins coming and going. Query is in rank order (best
 * first), which no cursor can hold across changes: a stream takes a
 * snapshot of the names, in order, charged to the connection, and skips
 * those gone by the time their part is made. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "hex.h"
#include "lifecycle.h"
#include "listing.h"
#include "varlink.h"
#include "vec.h"

/* A streamed part stops growing past this many bytes. */
#define LISTING_PART_BYTES (16u << 10)

static const char *param_str(const ph_request *req, const char *name)
{
        return json_string_value(json_object_get(req->parameters, name));
}

static bool plugin_has_interface(const ph_plugin *p, const char *iface)
{
        const ph_meta *m = ph_life_meta(p);

        for (size_t i = 0; i < m->n_interfaces; i++)
                if (strcmp(m->interfaces[i], iface) == 0)
                        return true;
        return false;
}

/* ---- List ---- */

/* A page stops growing past half the message cap: one more entry always
 * fits. */
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
        ph_hex_encode(u, n, enc + 1);
        ph_jw_string(w, enc);
        free(enc);
        return 0;
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
        if (ph_hex_decode(after + 1, (n - 1) / 2, (unsigned char *)raw) < 0 ||
            memchr(raw, '\0', (n - 1) / 2)) {
                free(raw);
                *ret_bad = true;
                return NULL;
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

void ph_listing_list(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        (void)c;
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
                ls->part_bytes = LISTING_PART_BYTES;
                ph_reply_parts(r, list_part, ls, list_state_free, sizeof(*ls));
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

/* ---- Query ---- */

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

/* Every (interface, plugin) pair, by interface, each interface's best
 * first: made by the first Query after the registry changed (a pass over
 * every plugin and a sort), so that a Query is a binary search and not a
 * pass over 100,000 plugins on the loop. Its pointers are valid while
 * ph_registry_changes stays at changes. */
typedef struct rank_pair {
        const char *iface;
        ph_plugin *p;
} rank_pair;

struct ph_rank_index {
        uint64_t changes;
        rank_pair *v;
        size_t n;
};

static int rank_pair_order(const void *a, const void *b)
{
        const rank_pair *x = a, *y = b;
        int c = strcmp(x->iface, y->iface);

        return c ? c : query_order(&x->p, &y->p);
}

void ph_listing_free(ph_daemon *d)
{
        if (d->ranks)
                free(d->ranks->v);
        free(d->ranks);
        d->ranks = NULL;
}

static int rank_index(ph_daemon *d, ph_rank_index **ret)
{
        ph_rank_index *ix = d->ranks;
        uint64_t now = ph_registry_changes(d->reg);
        rank_pair *v = NULL;
        size_t n = 0, cap = 0;

        if (ix && ix->changes == now) {
                *ret = ix;
                return 0;
        }
        for (ph_plugin *p = ph_registry_first(d->reg); p; p = ph_registry_next(d->reg, p)) {
                const ph_meta *m = p->life ? ph_life_meta(p) : NULL;

                for (size_t i = 0; m && i < m->n_interfaces; i++) {
                        rank_pair e = { m->interfaces[i], p };

                        if (ph__vec_push((void **)&v, &n, &cap, sizeof(e), &e) < 0) {
                                free(v);
                                return -ENOMEM;
                        }
                }
        }
        if (n > 0)              /* v is NULL then: qsort(NULL, 0) is undefined */
                qsort(v, n, sizeof(*v), rank_pair_order);
        if (!ix && !(ix = d->ranks = calloc(1, sizeof(*ix)))) {
                free(v);
                return -ENOMEM;
        }
        free(ix->v);
        ix->v = v;
        ix->n = n;
        ix->changes = now;
        *ret = ix;
        return 0;
}

/* The plugins providing iface, best first, at most limit (-1: all): a
 * range of the index, valid until the registry changes. */
static int query_find(ph_daemon *d, const char *iface, long long limit, const rank_pair **ret,
                      size_t *ret_n)
{
        ph_rank_index *ix;
        size_t lo, hi, n;
        int r;

        if ((r = rank_index(d, &ix)) < 0)
                return r;
        for (lo = 0, hi = ix->n; lo < hi;) {
                size_t mid = lo + (hi - lo) / 2;

                if (strcmp(ix->v[mid].iface, iface) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (n = 0; lo + n < ix->n && strcmp(ix->v[lo + n].iface, iface) == 0; n++)
                if (limit >= 0 && n == (size_t)limit)
                        break;
        *ret = ix->v ? ix->v + lo : NULL;
        *ret_n = n;
        return 0;
}

/* A streamed Query: the names in rank order, in one block (the array,
 * then the strings), and how far the parts have gone. */
typedef struct query_state {
        ph_daemon *d;
        char *interface;
        char **names;
        size_t n, pos, bytes;
} query_state;

static void query_state_free(void *data)
{
        query_state *qs = data;

        if (!qs)
                return;
        free(qs->interface);
        free(qs->names);
        free(qs);
}

static query_state *query_state_new(ph_daemon *d, const char *iface, const rank_pair *found, size_t n)
{
        query_state *qs = calloc(1, sizeof(*qs));
        size_t text = 0;
        char *at;

        if (!qs)
                return NULL;
        for (size_t i = 0; i < n; i++)
                text += strlen(found[i].p->name) + 1;
        qs->d = d;
        qs->n = n;
        qs->bytes = sizeof(*qs) + strlen(iface) + 1 + n * sizeof(char *) + text;
        if (!(qs->interface = strdup(iface)) || !(qs->names = malloc(n * sizeof(char *) + text + 1))) {
                query_state_free(qs);
                return NULL;
        }
        at = (char *)(qs->names + n);
        for (size_t i = 0; i < n; i++) {
                size_t len = strlen(found[i].p->name) + 1;

                qs->names[i] = memcpy(at, found[i].p->name, len);
                at += len;
        }
        return qs;
}

/* One part of a streamed Query (ph_reply_part_fn): the next plugins of
 * the snapshot still there and still providing the interface. */
static int query_part(void *data, char **ret, size_t *ret_len)
{
        query_state *qs = data;
        ph_jw w;
        size_t start;
        int r;

        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        ph_jw_key(&w, "plugins");
        ph_jw_array_open(&w);
        start = ph_jw_len(&w);
        for (; qs->pos < qs->n && ph_jw_len(&w) - start < LISTING_PART_BYTES; qs->pos++) {
                ph_plugin *p = ph_registry_lookup(qs->d->reg, qs->names[qs->pos]);

                if (p && p->life && plugin_has_interface(p, qs->interface))
                        ph_plugin_write(&w, qs->d, p);
        }
        ph_jw_array_close(&w);
        if ((r = ph_jw_message_end(&w, qs->pos < qs->n, ret, ret_len)) < 0)
                return r;
        return qs->pos < qs->n;
}

void ph_listing_query(ph_daemon *d, ph_conn *c, ph_request *req, ph_reply *r)
{
        const char *iface = param_str(req, "interface");
        json_t *jlimit = json_object_get(req->parameters, "limit");
        long long limit = jlimit ? json_integer_value(jlimit) : -1;
        const rank_pair *found;
        query_state *qs;
        size_t n;
        ph_jw w;

        (void)c;
        if (jlimit && limit < 1) {
                ph_reply_error(r, PH_VERR_INVALID_PARAMETER, json_pack("{s:s}", "parameter", "limit"),
                               "limit must be at least 1");
                return;
        }
        if (query_find(d, iface, limit, &found, &n) < 0) {
                ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                return;
        }
        if (req->more && r) {
                qs = query_state_new(d, iface, found, n);
                if (!qs) {
                        ph_reply_error(r, PH_VERR_BUSY, NULL, "out of memory");
                        return;
                }
                ph_reply_parts(r, query_part, qs, query_state_free, qs->bytes);
                return;
        }
        ph_jw_init(&w, PH_VARLINK_MESSAGE_MAX);
        ph_jw_reply_begin(&w);
        ph_jw_key(&w, "plugins");
        ph_jw_array_open(&w);
        for (size_t i = 0; i < n && w.err == 0; i++)
                ph_plugin_write(&w, d, found[i].p);
        ph_jw_array_close(&w);
        if (w.err == -EMSGSIZE) {
                ph_jw_release(&w);
                ph_reply_error(r, PH_VERR_REPLY_TOO_LARGE,
                               json_pack("{s:I}", "limit", (json_int_t)PH_VARLINK_MESSAGE_MAX),
                               "the plugins would exceed %u bytes: ask with \"more\" (streamed) or "
                               "\"limit\" (the best ones)", PH_VARLINK_MESSAGE_MAX);
                return;
        }
        ph_reply_jw(r, &w);
}
