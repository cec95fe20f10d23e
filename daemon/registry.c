/* The registry of files and plugins. Files are keyed by path, plugins by
 * name (binary trees from <search.h>, so listings come out sorted). A name
 * goes to the file with the highest version; on a tie the earlier plugin
 * directory wins, then the lower path. */
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

struct ph_registry {
        void *files;                /* tree of ph_file *, by path */
        void *plugins;              /* tree of ph_plugin *, by name */
        size_t n_files, n_plugins;
        uint64_t next_generation;
        ph_registry_event_fn emit;
        void *userdata;
        bool counts_dirty;          /* the figures below need a recount */
        size_t n_loaded, n_rejected;
};

static const char *const state_names[] = {
        [PH_PSTATE_DISCOVERED] = "discovered", [PH_PSTATE_LOADING] = "loading",
        [PH_PSTATE_LOADED] = "loaded", [PH_PSTATE_FAILED] = "failed",
        [PH_PSTATE_QUARANTINED] = "quarantined",
};

static const char *const event_names[] = {
        [PH_EVENT_ADDED] = "added", [PH_EVENT_CHANGED] = "changed",
        [PH_EVENT_REMOVED] = "removed", [PH_EVENT_LOADED] = "loaded",
        [PH_EVENT_UNLOADED] = "unloaded", [PH_EVENT_FAILED] = "failed",
};

const char *ph_pstate_name(ph_pstate s)
{
        return state_names[s];
}

const char *ph_event_kind_name(ph_event_kind k)
{
        return event_names[k];
}

static int file_cmp(const void *a, const void *b)
{
        return strcmp(((const ph_file *)a)->path, ((const ph_file *)b)->path);
}

static int plugin_cmp(const void *a, const void *b)
{
        return strcmp(((const ph_plugin *)a)->name, ((const ph_plugin *)b)->name);
}

int ph_registry_new(ph_registry_event_fn fn, void *userdata, ph_registry **ret)
{
        ph_registry *reg = calloc(1, sizeof(*reg));

        if (!reg)
                return -ENOMEM;
        reg->emit = fn;
        reg->userdata = userdata;
        reg->next_generation = 1;
        reg->counts_dirty = true;
        *ret = reg;
        return 0;
}

static void file_free(void *p)
{
        ph_file *f = p;

        ph_meta_free(f->meta);
        free(f->message);
        free(f->path);
        free(f);
}

static void plugin_free(void *p)
{
        ph_plugin *pl = p;

        free(pl->candidates);
        free(pl->last_error);
        free(pl->name);
        free(pl);
}

void ph_registry_free(ph_registry *reg)
{
        if (!reg)
                return;
        tdestroy(reg->plugins, plugin_free);
        tdestroy(reg->files, file_free);
        free(reg);
}

ph_plugin *ph_registry_find(ph_registry *reg, const char *name)
{
        ph_plugin key = { .name = (char *)name };
        void *node = tfind(&key, &reg->plugins, plugin_cmp);

        return node ? *(ph_plugin **)node : NULL;
}

static bool id_equal(const ph_file_id *a, const ph_file_id *b)
{
        return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
               a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
               a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Better claim on a name: higher version, earlier directory, lower path. */
static int file_better(const ph_file *a, const ph_file *b)
{
        int c = ph_version_compare(a->meta->version, b->meta->version);

        if (c != 0)
                return c > 0;
        if (a->dir_index != b->dir_index)
                return a->dir_index < b->dir_index;
        return strcmp(a->path, b->path) < 0;
}

/* A set of names touched by one apply, to re-decide once each. */
typedef struct name_set {
        char **names;
        size_t n;
} name_set;

/* Duplicates are dropped when the set is used (decide_all sorts it). */
static void name_set_add(name_set *s, const char *name)
{
        char **grown;

        grown = realloc(s->names, (s->n + 1) * sizeof(char *));
        if (!grown)
                return;
        s->names = grown;
        if ((s->names[s->n] = strdup(name)))
                s->n++;
}

static ph_plugin *plugin_get(ph_registry *reg, const char *name, bool create)
{
        ph_plugin *p = ph_registry_find(reg, name);

        if (p || !create)
                return p;
        p = calloc(1, sizeof(*p));
        if (!p || !(p->name = strdup(name)) || !tsearch(p, &reg->plugins, plugin_cmp)) {
                if (p)
                        free(p->name);
                free(p);
                return NULL;
        }
        reg->n_plugins++;
        p->fresh = true;
        return p;
}

static void candidate_add(ph_registry *reg, ph_file *f, name_set *touched)
{
        ph_plugin *p = plugin_get(reg, f->meta->name, true);
        ph_file **grown;

        if (!p)
                return;
        grown = realloc(p->candidates, (p->n_candidates + 1) * sizeof(*grown));
        if (!grown)
                return;
        p->candidates = grown;
        p->candidates[p->n_candidates++] = f;
        name_set_add(touched, f->meta->name);
}

static void candidate_remove(ph_registry *reg, ph_file *f, name_set *touched)
{
        ph_plugin *p;

        if (f->reason != PH_REASON_OK || f->untrusted || !(p = ph_registry_find(reg, f->meta->name)))
                return;
        for (size_t i = 0; i < p->n_candidates; i++)
                if (p->candidates[i] == f) {
                        p->candidates[i] = p->candidates[--p->n_candidates];
                        break;
                }
        if (p->file == f)
                p->file = NULL;
        name_set_add(touched, f->meta->name);
}

/* Re-decides the winner of a name and reports what changed. */
static void plugin_decide(ph_registry *reg, const char *name)
{
        ph_plugin *p = ph_registry_find(reg, name);
        ph_file *old, *best = NULL;
        uint64_t old_gen;
        bool is_new;

        if (!p)
                return;
        old = p->file;
        old_gen = old ? old->generation : 0;
        is_new = p->fresh;
        p->fresh = false;
        for (size_t i = 0; i < p->n_candidates; i++)
                if (!best || file_better(p->candidates[i], best))
                        best = p->candidates[i];
        for (size_t i = 0; i < p->n_candidates; i++) {
                ph_file *f = p->candidates[i];

                f->shadowed = f != best;
                free(f->message);
                f->message = NULL;
                if (f->shadowed && asprintf(&f->message, "shadowed by %s (version %s)", best->path,
                                            best->meta->version) < 0)
                        f->message = NULL;
        }
        if (!best) {
                /* Removed: the event handler unloads it, then it is freed. */
                if (reg->emit)
                        reg->emit(PH_EVENT_REMOVED, p, NULL, reg->userdata);
                tdelete(p, &reg->plugins, plugin_cmp);
                reg->n_plugins--;
                plugin_free(p);
                return;
        }
        p->file = best;
        if (is_new) {
                if (reg->emit)
                        reg->emit(PH_EVENT_ADDED, p, NULL, reg->userdata);
        } else if (best != old || best->generation != old_gen) {
                if (reg->emit)
                        reg->emit(PH_EVENT_CHANGED, p, NULL, reg->userdata);
        }
}

struct dir_walk {
        unsigned dir_index;
        ph_file **list;
        size_t n, cap;
};

static void dir_walk_push(struct dir_walk *w, ph_file *f)
{
        if (w->n == w->cap) {
                size_t cap = w->cap ? w->cap * 2 : 64;
                ph_file **grown = realloc(w->list, cap * sizeof(*grown));
                if (!grown)
                        return;
                w->list = grown;
                w->cap = cap;
        }
        w->list[w->n++] = f;
}

static __thread struct dir_walk *walk_ctx;

static void dir_walk_cb(const void *node, VISIT v, int depth)
{
        ph_file *f = *(ph_file *const *)node;
        struct dir_walk *w = walk_ctx;

        (void)depth;
        if (v != postorder && v != leaf)
                return;
        if (f->dir_index != w->dir_index)
                return;
        dir_walk_push(w, f);
}

/* Files of one directory. */
static void files_of_dir(ph_registry *reg, struct dir_walk *w)
{
        walk_ctx = w;
        twalk(reg->files, dir_walk_cb);
        walk_ctx = NULL;
}

static void file_delete(ph_registry *reg, ph_file *f, name_set *touched)
{
        candidate_remove(reg, f, touched);
        tdelete(f, &reg->files, file_cmp);
        reg->n_files--;
        file_free(f);
}

/* Takes the verdict out of the scan into the file. */
static void file_take_verdict(ph_file *f, ph_scanned *it)
{
        ph_meta_free(f->meta);
        free(f->message);
        f->reason = it->scan.reason;
        f->meta = it->scan.meta;
        it->scan.meta = NULL;
        f->message = f->reason == PH_REASON_OK ? NULL : strdup(it->scan.message);
        f->shadowed = false;
        f->untrusted = f->reason == PH_REASON_OK && it->trust[0];
        if (f->untrusted)
                f->message = strdup(it->trust);
}

/* The file of a loaded plugin replaced by one the reader refuses (a
 * truncated copy, say): the loaded version serves on, with the refusal as
 * its last error and a FAILED event. Returns whether that applied. */
static bool keep_serving(ph_registry *reg, ph_file *f, const ph_scanned *it)
{
        ph_plugin *p;
        char *msg;

        if (it->scan.reason == PH_REASON_OK || f->reason != PH_REASON_OK || f->untrusted ||
            !(p = ph_registry_find(reg, f->meta->name)) || p->file != f ||
            p->state != PH_PSTATE_LOADED)
                return false;
        if (asprintf(&msg, "%s: %s: %s; version %s serves on", f->path,
                     ph_reason_name(it->scan.reason), it->scan.message, f->meta->version) < 0)
                return false;
        f->id = it->id;
        free(p->last_error);
        p->last_error = msg;
        if (reg->emit)
                reg->emit(PH_EVENT_FAILED, p, msg, reg->userdata);
        return true;
}

/* Applies one listed file; returns 1 added, 2 changed, 0 unchanged. */
static int apply_item(ph_registry *reg, unsigned dir_index, const char *dir, ph_scanned *it,
                      name_set *touched)
{
        ph_file key, *f;
        void *node;
        int what;

        if (asprintf(&key.path, "%s/%s", dir, it->name) < 0)
                return 0;
        node = tfind(&key, &reg->files, file_cmp);
        f = node ? *(ph_file **)node : NULL;
        if (f) {
                free(key.path);
                f->seen = true;
                /* Unchanged: same identity, same directory, same trust
                 * verdict (a directory's mode can change it alone). */
                if (it->keep || (id_equal(&f->id, &it->id) && f->dir_index == dir_index &&
                                 f->untrusted == (it->scan.reason == PH_REASON_OK && it->trust[0])) ||
                    keep_serving(reg, f, it))
                        return 0;
                candidate_remove(reg, f, touched);
                what = 2;
        } else {
                if (it->keep)
                        return (free(key.path), 0);
                f = calloc(1, sizeof(*f));
                if (f)
                        f->path = key.path;
                if (!f || !tsearch(f, &reg->files, file_cmp)) {
                        free(f);
                        free(key.path);
                        return 0;
                }
                f->seen = true;
                reg->n_files++;
                what = 1;
        }
        f->dir_index = dir_index;
        f->id = it->id;
        f->generation = reg->next_generation++;
        file_take_verdict(f, it);
        if (f->reason == PH_REASON_OK && !f->untrusted)
                candidate_add(reg, f, touched);
        return what;
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void decide_all(ph_registry *reg, name_set *touched)
{
        if (touched->n > 0)     /* names is NULL then: qsort(NULL, 0) is undefined */
                qsort(touched->names, touched->n, sizeof(char *), name_cmp);
        for (size_t i = 0; i < touched->n; i++) {
                if (i == 0 || strcmp(touched->names[i], touched->names[i - 1]) != 0)
                        plugin_decide(reg, touched->names[i]);
        }
        for (size_t i = 0; i < touched->n; i++)
                free(touched->names[i]);
        free(touched->names);
        reg->counts_dirty = true;
}

void ph_registry_apply_dir(ph_registry *reg, unsigned dir_index, const char *dir,
                           ph_scanned *items, size_t n_items,
                           unsigned *ret_added, unsigned *ret_changed, unsigned *ret_removed)
{
        struct dir_walk w = { .dir_index = dir_index };
        name_set touched = { 0 };
        unsigned added = 0, changed = 0, removed = 0;

        files_of_dir(reg, &w);
        for (size_t i = 0; i < w.n; i++)
                w.list[i]->seen = false;
        for (size_t i = 0; i < n_items; i++) {
                int what = apply_item(reg, dir_index, dir, &items[i], &touched);
                added += what == 1;
                changed += what == 2;
        }
        for (size_t i = 0; i < w.n; i++)
                if (!w.list[i]->seen) {
                        file_delete(reg, w.list[i], &touched);
                        removed++;
                }
        free(w.list);
        decide_all(reg, &touched);
        if (ret_added)
                *ret_added = added;
        if (ret_changed)
                *ret_changed = changed;
        if (ret_removed)
                *ret_removed = removed;
}

void ph_registry_apply_file(ph_registry *reg, unsigned dir_index, const char *dir, const char *name,
                            ph_scanned *item, unsigned *ret_added, unsigned *ret_changed,
                            unsigned *ret_removed)
{
        name_set touched = { 0 };
        int what = 0, gone = 0;

        if (item) {
                what = apply_item(reg, dir_index, dir, item, &touched);
        } else {
                ph_file key, *f;
                void *node;

                if (asprintf(&key.path, "%s/%s", dir, name) >= 0) {
                        node = tfind(&key, &reg->files, file_cmp);
                        f = node ? *(ph_file **)node : NULL;
                        free(key.path);
                        if (f) {
                                file_delete(reg, f, &touched);
                                gone = 1;
                        }
                }
        }
        decide_all(reg, &touched);
        if (ret_added)
                *ret_added = what == 1;
        if (ret_changed)
                *ret_changed = what == 2;
        if (ret_removed)
                *ret_removed = (unsigned)gone;
}

static int remap_touch_cb(ph_plugin *p, void *ud)
{
        name_set_add(ud, p->name);
        return 0;
}

static __thread const int *remap_map;
static __thread unsigned remap_n;
static __thread struct dir_walk *remap_gone;

static void remap_cb(const void *node, VISIT v, int depth)
{
        ph_file *f = *(ph_file *const *)node;
        struct dir_walk *w = remap_gone;

        (void)depth;
        if (v != postorder && v != leaf)
                return;
        if (f->dir_index < remap_n && remap_map[f->dir_index] >= 0) {
                f->dir_index = (unsigned)remap_map[f->dir_index];
                return;
        }
        dir_walk_push(w, f);
}

void ph_registry_remap_dirs(ph_registry *reg, const int *map, unsigned n_old)
{
        struct dir_walk gone = { 0 };
        name_set touched = { 0 };

        remap_map = map;
        remap_n = n_old;
        remap_gone = &gone;
        twalk(reg->files, remap_cb);
        remap_gone = NULL;
        for (size_t i = 0; i < gone.n; i++)
                file_delete(reg, gone.list[i], &touched);
        free(gone.list);
        /* Directory order decides ties: every name may change hands. */
        ph_registry_foreach(reg, remap_touch_cb, &touched);
        decide_all(reg, &touched);
}

struct visit {
        int (*plugin_fn)(ph_plugin *p, void *ud);
        int (*file_fn)(ph_file *f, void *ud);
        void *ud;
        int stop;
};

static __thread struct visit *visit_ctx;

static void visit_plugin_cb(const void *node, VISIT v, int depth)
{
        (void)depth;
        if ((v == postorder || v == leaf) && !visit_ctx->stop)
                visit_ctx->stop = visit_ctx->plugin_fn(*(ph_plugin *const *)node, visit_ctx->ud);
}

static void visit_file_cb(const void *node, VISIT v, int depth)
{
        ph_file *f = *(ph_file *const *)node;

        (void)depth;
        if ((v == postorder || v == leaf) && !visit_ctx->stop &&
            (f->reason != PH_REASON_OK || f->shadowed || f->untrusted))
                visit_ctx->stop = visit_ctx->file_fn(f, visit_ctx->ud);
}

void ph_registry_foreach(ph_registry *reg, int (*fn)(ph_plugin *p, void *ud), void *ud)
{
        struct visit v = { .plugin_fn = fn, .ud = ud };

        visit_ctx = &v;
        twalk(reg->plugins, visit_plugin_cb);
        visit_ctx = NULL;
}

void ph_registry_foreach_rejected(ph_registry *reg, int (*fn)(ph_file *f, void *ud), void *ud)
{
        struct visit v = { .file_fn = fn, .ud = ud };

        visit_ctx = &v;
        twalk(reg->files, visit_file_cb);
        visit_ctx = NULL;
}

static int count_loaded_cb(ph_plugin *p, void *ud)
{
        *(size_t *)ud += p->state == PH_PSTATE_LOADED;
        return 0;
}

static int count_rejected_cb(ph_file *f, void *ud)
{
        (void)f;
        (*(size_t *)ud)++;
        return 0;
}

size_t ph_registry_count(const ph_registry *creg, size_t *ret_loaded, size_t *ret_rejected)
{
        ph_registry *reg = (ph_registry *)creg;

        /* Recounted only after a change: Status stays O(1) under load. */
        if (reg->counts_dirty) {
                reg->n_loaded = reg->n_rejected = 0;
                ph_registry_foreach(reg, count_loaded_cb, &reg->n_loaded);
                ph_registry_foreach_rejected(reg, count_rejected_cb, &reg->n_rejected);
                reg->counts_dirty = false;
        }
        if (ret_loaded)
                *ret_loaded = reg->n_loaded;
        if (ret_rejected)
                *ret_rejected = reg->n_rejected;
        return reg->n_plugins;
}

void ph_registry_set_state(ph_registry *reg, ph_plugin *p, ph_pstate state, const char *message,
                           bool emit)
{
        ph_event_kind kind;

        p->state = state;
        reg->counts_dirty = true;
        free(p->last_error);
        p->last_error = message ? strdup(message) : NULL;
        if (!emit || !reg->emit)
                return;
        if (state == PH_PSTATE_LOADED)
                kind = PH_EVENT_LOADED;
        else if (state == PH_PSTATE_FAILED || state == PH_PSTATE_QUARANTINED)
                kind = PH_EVENT_FAILED;
        else
                kind = PH_EVENT_UNLOADED;
        reg->emit(kind, p, message, reg->userdata);
}
