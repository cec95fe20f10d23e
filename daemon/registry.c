/* The registry of files and plugins. Files are keyed by path, plugins by
 * name, in red-black trees (listings come out sorted, and a listing can
 * start after any name); the files refused or shadowed have a tree of
 * their own, so listing and counting them costs nothing for the others.
 * A name goes to the file with the highest version; on a tie the earlier
 * plugin directory wins, then the lower path. Every apply collects the
 * names it touched and decides each once at the end.
 *
 * What a plugin costs is constant and small: a file and a plugin are one
 * allocation each (path and name in the same block), a name claimed by
 * one file needs no vector, metadata is kept without its parsed tree, and
 * nothing is ever looked for by walking a list. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "vec.h"

RB_HEAD(file_tree, ph_file);
RB_HEAD(rejected_tree, ph_file);
RB_HEAD(plugin_tree, ph_plugin);

struct ph_registry {
        struct file_tree files;
        struct rejected_tree rejected;  /* the files refused or shadowed */
        struct plugin_tree plugins;
        size_t n_files, n_plugins, n_rejected;
        uint64_t next_generation, next_id;
        uint64_t changes;               /* ph_registry_changes */
        ph_registry_event_fn event;
        ph_registry_held_fn held;
        ph_registry_rejected_fn rejected_cb;
        void *userdata;
        /* Files whose metadata tree a find brought back, oldest first. */
        ph_file *viewed[REGISTRY_TREES_KEPT];
        size_t n_viewed;
        /* An apply's "dir/name", without an allocation per name. */
        char *path;
        size_t path_cap;
};

static int file_cmp(ph_file *a, ph_file *b)
{
        return strcmp(a->path, b->path);
}

static int plugin_cmp(ph_plugin *a, ph_plugin *b)
{
        return strcmp(a->name, b->name);
}

RB_GENERATE_STATIC(file_tree, ph_file, node, file_cmp)
RB_GENERATE_STATIC(rejected_tree, ph_file, rejected_node, file_cmp)
RB_GENERATE_STATIC(plugin_tree, ph_plugin, node, plugin_cmp)

void ph_scanned_clear(ph_scanned *it)
{
        free(it->name);
        free(it->message);
        ph_meta_free(it->meta);
        it->name = it->message = NULL;
        it->meta = NULL;
}

int ph_registry_new(ph_registry_event_fn event, ph_registry_held_fn held,
                    ph_registry_rejected_fn rejected, void *userdata, ph_registry **ret)
{
        ph_registry *reg = calloc(1, sizeof(*reg));

        if (!reg)
                return -ENOMEM;
        RB_INIT(&reg->files);
        RB_INIT(&reg->rejected);
        RB_INIT(&reg->plugins);
        reg->event = event;
        reg->held = held;
        reg->rejected_cb = rejected;
        reg->userdata = userdata;
        reg->next_generation = 1;
        reg->next_id = 1;
        *ret = reg;
        return 0;
}

/* One block: the struct, then the path. */
static ph_file *file_new(const char *path)
{
        size_t len = strlen(path) + 1;
        ph_file *f = calloc(1, sizeof(*f) + len);

        if (!f)
                return NULL;
        f->path = memcpy((char *)(f + 1), path, len);
        return f;
}

/* A file whose metadata is freed or replaced keeps no tree slot. */
static void file_unview(ph_registry *reg, ph_file *f)
{
        for (size_t i = 0; i < reg->n_viewed; i++)
                if (reg->viewed[i] == f) {
                        memmove(&reg->viewed[i], &reg->viewed[i + 1],
                                (reg->n_viewed - i - 1) * sizeof(reg->viewed[0]));
                        reg->n_viewed--;
                        return;
                }
}

static void file_free(ph_registry *reg, ph_file *f)
{
        file_unview(reg, f);
        ph_meta_free(f->meta);
        free(f->message);
        free(f);
}

static void plugin_free(ph_plugin *p)
{
        if (p->candidates != &p->one)
                free(p->candidates);
        free(p->left_path);
        free(p);
}

void ph_registry_free(ph_registry *reg)
{
        ph_plugin *p, *pn;
        ph_file *f, *fn;

        if (!reg)
                return;
        for (p = RB_MIN(plugin_tree, &reg->plugins); p; p = pn) {
                pn = RB_NEXT(plugin_tree, &reg->plugins, p);
                RB_REMOVE(plugin_tree, &reg->plugins, p);
                plugin_free(p);
        }
        for (f = RB_MIN(file_tree, &reg->files); f; f = fn) {
                fn = RB_NEXT(file_tree, &reg->files, f);
                RB_REMOVE(file_tree, &reg->files, f);
                file_free(reg, f);
        }
        free(reg->path);
        free(reg);
}

uint64_t ph_registry_changes(const ph_registry *reg)
{
        return reg->changes;
}

void ph_registry_touch(ph_registry *reg)
{
        reg->changes++;
}

ph_plugin *ph_registry_lookup(ph_registry *reg, const char *name)
{
        ph_plugin key = { .name = (char *)name };

        return RB_FIND(plugin_tree, &reg->plugins, &key);
}

/* f's metadata gets its tree back and keeps it while f is among the last
 * REGISTRY_TREES_KEPT asked for; the oldest one's goes. */
static void file_view(ph_registry *reg, ph_file *f)
{
        file_unview(reg, f);
        if (reg->n_viewed == REGISTRY_TREES_KEPT) {
                ph_meta_drop_tree(reg->viewed[0]->meta);
                memmove(&reg->viewed[0], &reg->viewed[1],
                        (REGISTRY_TREES_KEPT - 1) * sizeof(reg->viewed[0]));
                reg->n_viewed--;
        }
        ph_meta_tree(f->meta);
        reg->viewed[reg->n_viewed++] = f;
}

ph_plugin *ph_registry_find(ph_registry *reg, const char *name)
{
        ph_plugin *p = ph_registry_lookup(reg, name);

        if (p && p->file && p->file->meta)
                file_view(reg, p->file);
        return p;
}

ph_plugin *ph_registry_first(ph_registry *reg)
{
        return RB_MIN(plugin_tree, &reg->plugins);
}

ph_plugin *ph_registry_next(ph_registry *reg, ph_plugin *p)
{
        return RB_NEXT(plugin_tree, &reg->plugins, p);
}

ph_plugin *ph_registry_after(ph_registry *reg, const char *after)
{
        ph_plugin key = { .name = (char *)after }, *p;

        if (!after)
                return ph_registry_first(reg);
        p = RB_NFIND(plugin_tree, &reg->plugins, &key);
        if (p && strcmp(p->name, after) == 0)
                p = RB_NEXT(plugin_tree, &reg->plugins, p);
        return p;
}

static bool file_rejected(const ph_file *f)
{
        return f->reason != PH_REASON_OK || f->shadowed;
}

/* After f's verdict or shadowing changed: the index follows. */
static void file_reindex(ph_registry *reg, ph_file *f)
{
        bool now = file_rejected(f);

        if (now == f->rejected)
                return;
        if (now) {
                RB_INSERT(rejected_tree, &reg->rejected, f);
                reg->n_rejected++;
        } else {
                RB_REMOVE(rejected_tree, &reg->rejected, f);
                reg->n_rejected--;
        }
        f->rejected = now;
}

ph_file *ph_registry_rejected_first(ph_registry *reg)
{
        return RB_MIN(rejected_tree, &reg->rejected);
}

ph_file *ph_registry_rejected_next(ph_registry *reg, ph_file *f)
{
        return RB_NEXT(rejected_tree, &reg->rejected, f);
}

ph_file *ph_registry_rejected_after(ph_registry *reg, const char *after)
{
        ph_file key = { .path = (char *)after }, *f;

        if (!after)
                return ph_registry_rejected_first(reg);
        f = RB_NFIND(rejected_tree, &reg->rejected, &key);
        if (f && strcmp(f->path, after) == 0)
                f = RB_NEXT(rejected_tree, &reg->rejected, f);
        return f;
}

const char *ph_file_reason_name(const ph_file *f)
{
        return f->reason == PH_REASON_OK && f->shadowed ? "shadowed" : ph_reason_name(f->reason);
}

size_t ph_registry_count(const ph_registry *reg, size_t *ret_rejected)
{
        if (ret_rejected)
                *ret_rejected = reg->n_rejected;
        return reg->n_plugins;
}

static bool id_equal(const ph_file_id *a, const ph_file_id *b)
{
        return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
               a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
               a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Better claim on a name: higher version, earlier directory, lower path. */
static bool file_better(const ph_file *a, const ph_file *b)
{
        int c = ph_version_compare(a->meta->version, b->meta->version);

        if (c != 0)
                return c > 0;
        if (a->dir_index != b->dir_index)
                return a->dir_index < b->dir_index;
        return strcmp(a->path, b->path) < 0;
}

/* The names one apply touched (each once: ph_plugin.touched), decided at
 * its end; and the paths of the files it refused or shadowed, reported
 * after that. */
typedef struct name_set {
        ph_plugin **plugins;
        size_t n, cap;
        char **refused;
        size_t n_refused, cap_refused;
} name_set;

static void touch(name_set *s, ph_plugin *p)
{
        if (!p->touched &&
            ph__vec_push((void **)&s->plugins, &s->n, &s->cap, sizeof(ph_plugin *), &p) == 0)
                p->touched = true;
}

static void refused_add(name_set *s, const char *path)
{
        char *copy = strdup(path);

        if (copy && ph__vec_push((void **)&s->refused, &s->n_refused, &s->cap_refused, sizeof(char *),
                                 &copy) < 0)
                free(copy);
}

/* One block: the struct, then the name. */
static ph_plugin *plugin_get(ph_registry *reg, const char *name)
{
        ph_plugin *p = ph_registry_lookup(reg, name);
        size_t len;

        if (p)
                return p;
        len = strlen(name) + 1;
        p = calloc(1, sizeof(*p) + len);
        if (!p)
                return NULL;
        p->name = memcpy((char *)(p + 1), name, len);
        p->candidates = &p->one;
        p->cap_candidates = 1;
        p->id = reg->next_id++;
        p->fresh = true;
        RB_INSERT(plugin_tree, &reg->plugins, p);
        reg->n_plugins++;
        return p;
}

static int candidate_push(ph_plugin *p, ph_file *f)
{
        if (p->n_candidates == p->cap_candidates) {
                size_t cap = p->cap_candidates * 2 < 4 ? 4 : p->cap_candidates * 2;
                ph_file **v = malloc(cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                memcpy(v, p->candidates, p->n_candidates * sizeof(*v));
                if (p->candidates != &p->one)
                        free(p->candidates);
                p->candidates = v;
                p->cap_candidates = cap;
        }
        p->candidates[p->n_candidates++] = f;
        return 0;
}

static void candidate_add(ph_registry *reg, ph_file *f, name_set *touched)
{
        ph_plugin *p = plugin_get(reg, f->meta->name);

        if (p && candidate_push(p, f) == 0)
                touch(touched, p);
}

static void candidate_remove(ph_registry *reg, ph_file *f, name_set *touched)
{
        ph_plugin *p;

        if (f->reason != PH_REASON_OK || !(p = ph_registry_lookup(reg, f->meta->name)))
                return;
        for (size_t i = 0; i < p->n_candidates; i++)
                if (p->candidates[i] == f) {
                        p->candidates[i] = p->candidates[--p->n_candidates];
                        break;
                }
        if (p->file == f) {
                p->file = NULL;
                free(p->left_path);
                p->left_path = strdup(f->path);
        }
        touch(touched, p);
}

static void emit(ph_registry *reg, ph_event_kind kind, ph_plugin *p, const ph_registry_why *why)
{
        if (reg->event)
                reg->event(kind, p, why, reg->userdata);
}

static ph_file *file_find(ph_registry *reg, const char *path)
{
        ph_file key = { .path = (char *)path };

        return RB_FIND(file_tree, &reg->files, &key);
}

/* A name lost its last file: the winner was deleted (or moved away), or
 * it is still there and refused now. */
static void emit_removed(ph_registry *reg, ph_plugin *p, const char *left_path)
{
        ph_file *f = left_path ? file_find(reg, left_path) : NULL;
        ph_registry_why why = { .file = left_path, .reason = "deleted", .uid = -1 };
        char *msg = NULL;

        if (f && f->reason != PH_REASON_OK) {
                why.reason = ph_file_reason_name(f);
                why.uid = f->owner;
                if (asprintf(&msg, "%s: %s: %s", f->path, why.reason, f->message ? f->message : "") < 0)
                        msg = NULL;
        } else if (left_path && asprintf(&msg, "%s is gone", left_path) < 0) {
                msg = NULL;
        }
        why.message = msg;
        emit(reg, PH_EVENT_REMOVED, p, &why);
        free(msg);
}
/* Re-decides the winner of a name and reports what changed. */
static void plugin_decide(ph_registry *reg, ph_plugin *p, name_set *touched)
{
        ph_file *old, *best = NULL;
        uint64_t old_gen;
        char *old_path;
        bool is_new;

        p->touched = false;
        old_path = p->left_path;        /* ours now */
        p->left_path = NULL;
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
                if (f->shadowed && !f->shadow_told)
                        refused_add(touched, f->path);
                f->shadow_told = f->shadowed;
                file_reindex(reg, f);
        }
        if (!best) {
                if (!is_new)
                        emit_removed(reg, p, old_path);
                free(old_path);
                RB_REMOVE(plugin_tree, &reg->plugins, p);
                reg->n_plugins--;
                plugin_free(p);
                return;
        }
        free(old_path);         /* another file took the name */
        /* A name's generation only grows: a file that takes the name (one
         * scanned long ago, when the newer file that shadowed it is
         * deleted) is stamped anew, or a loaded plugin, which reloads only
         * onto a newer generation, would go on running the deleted file. */
        if (!is_new && best != old)
                best->generation = reg->next_generation++;
        p->file = best;
        if (is_new)
                emit(reg, PH_EVENT_ADDED, p, NULL);
        else if (best != old || best->generation != old_gen)
                emit(reg, PH_EVENT_CHANGED, p, NULL);
}

static int plugin_name_cmp(const void *a, const void *b)
{
        return strcmp((*(ph_plugin *const *)a)->name, (*(ph_plugin *const *)b)->name);
}

static void decide_all(ph_registry *reg, name_set *touched)
{
        reg->changes++;
        /* In name order, as before: events come out sorted. */
        if (touched->n > 0)     /* plugins is NULL then: qsort(NULL, 0) is undefined */
                qsort(touched->plugins, touched->n, sizeof(ph_plugin *), plugin_name_cmp);
        for (size_t i = 0; i < touched->n; i++)
                plugin_decide(reg, touched->plugins[i], touched);
        free(touched->plugins);
        /* After the names: a refusal that took a name away comes after
         * its "removed". */
        for (size_t i = 0; i < touched->n_refused; i++) {
                ph_file *f = file_find(reg, touched->refused[i]);

                if (f && reg->rejected_cb && (f->reason != PH_REASON_OK || f->shadowed))
                        reg->rejected_cb(f, reg->userdata);
                free(touched->refused[i]);
        }
        free(touched->refused);
}

static void file_delete(ph_registry *reg, ph_file *f, name_set *touched)
{
        candidate_remove(reg, f, touched);
        if (f->rejected) {
                RB_REMOVE(rejected_tree, &reg->rejected, f);
                reg->n_rejected--;
        }
        RB_REMOVE(file_tree, &reg->files, f);
        reg->n_files--;
        file_free(reg, f);
}

/* Takes the verdict out of the scan into the file. */
static void file_take_verdict(ph_registry *reg, ph_file *f, ph_scanned *it)
{
        file_unview(reg, f);
        ph_meta_free(f->meta);
        free(f->message);
        f->reason = it->reason;
        f->meta = NULL;
        f->message = NULL;
        if (f->reason == PH_REASON_OK) {
                f->meta = it->meta;
                it->meta = NULL;
        } else {
                f->message = it->message;
                it->message = NULL;
                if (!f->message)
                        f->message = strdup(ph_reason_describe(f->reason));
        }
        f->shadowed = false;
        f->shadow_told = false;
        file_reindex(reg, f);
}

/* The file of a held plugin replaced by one the reader refuses (a
 * truncated copy, say): the loaded version serves on, with a FAILED event
 * saying why. A trust refusal is not the reader's: it always applies.
 * Returns whether the file was kept. */
static bool keep_serving(ph_registry *reg, ph_file *f, const ph_scanned *it)
{
        ph_plugin *p;
        char *msg;

        if (it->reason == PH_REASON_OK || it->reason == PH_REASON_UNTRUSTED ||
            f->reason != PH_REASON_OK || !(p = ph_registry_lookup(reg, f->meta->name)) ||
            p->file != f || !reg->held || !reg->held(p, reg->userdata))
                return false;
        if (asprintf(&msg, "%s: %s: %s; version %s serves on", f->path, ph_reason_name(it->reason),
                     it->message ? it->message : ph_reason_describe(it->reason), f->meta->version) < 0)
                return false;
        f->id = it->id;
        emit(reg, PH_EVENT_FAILED, p, &(ph_registry_why){ .file = f->path,
                                                           .reason = ph_reason_name(it->reason),
                                                           .message = msg, .uid = it->owner });
        free(msg);
        return true;
}

/* dir + "/" + name in the registry's scratch buffer (valid until the
 * next call), or NULL without memory. */
static const char *path_of(ph_registry *reg, const char *dir, const char *name)
{
        size_t d = strlen(dir), n = strlen(name);

        if (ph__vec_reserve((void **)&reg->path, &reg->path_cap, d + n + 2, 1) < 0)
                return NULL;
        memcpy(reg->path, dir, d);
        reg->path[d] = '/';
        memcpy(reg->path + d + 1, name, n + 1);
        return reg->path;
}

static ph_file *file_lookup(ph_registry *reg, const char *dir, const char *name)
{
        const char *path = path_of(reg, dir, name);

        return path ? file_find(reg, path) : NULL;
}

/* Applies one present file. */
static void apply_item(ph_registry *reg, unsigned dir_index, const char *dir, ph_scanned *it,
                       name_set *touched, ph_apply_counts *counts)
{
        ph_file *f = file_lookup(reg, dir, it->name);

        if (f) {
                f->seen = true;
                /* Unchanged: same identity, directory and verdict kind (a
                 * directory's mode can change the trust verdict alone). */
                if (it->keep || (id_equal(&f->id, &it->id) && f->dir_index == dir_index &&
                                 (f->reason == PH_REASON_UNTRUSTED) ==
                                         (it->reason == PH_REASON_UNTRUSTED)) ||
                    keep_serving(reg, f, it))
                        return;
                candidate_remove(reg, f, touched);
                counts->changed++;
        } else {
                const char *path;

                if (it->keep)
                        return;
                if (!(path = path_of(reg, dir, it->name)) || !(f = file_new(path)))
                        return;
                RB_INSERT(file_tree, &reg->files, f);
                f->seen = true;
                reg->n_files++;
                counts->added++;
        }
        f->dir_index = dir_index;
        f->id = it->id;
        f->owner = it->owner;
        f->generation = reg->next_generation++;
        file_take_verdict(reg, f, it);
        if (f->reason == PH_REASON_OK)
                candidate_add(reg, f, touched);
        else
                refused_add(touched, f->path);
}

/* The files of directory dir_index: a range of the path order (dir + "/"
 * is a prefix of each), filtered by index since a nested directory's files
 * sort inside the same range. */
static void files_of_dir(ph_registry *reg, unsigned dir_index, const char *dir, ph_file ***ret,
                         size_t *ret_n)
{
        size_t dlen = strlen(dir), cap = 0;
        ph_file key, *f;

        *ret = NULL;
        *ret_n = 0;
        if (asprintf(&key.path, "%s/", dir) < 0)
                return;
        for (f = RB_NFIND(file_tree, &reg->files, &key); f && strncmp(f->path, key.path, dlen + 1) == 0;
             f = RB_NEXT(file_tree, &reg->files, f))
                if (f->dir_index == dir_index)
                        ph__vec_push((void **)ret, ret_n, &cap, sizeof(ph_file *), &f);
        free(key.path);
}

void ph_registry_apply(ph_registry *reg, unsigned dir_index, const char *dir, bool full,
                       ph_scanned *items, size_t n_items, ph_apply_counts *counts)
{
        name_set touched = { 0 };
        ph_file **listed = NULL;
        size_t n_listed = 0;

        if (full) {
                files_of_dir(reg, dir_index, dir, &listed, &n_listed);
                for (size_t i = 0; i < n_listed; i++)
                        listed[i]->seen = false;
        }
        for (size_t i = 0; i < n_items; i++) {
                ph_file *f;

                if (items[i].present || full) {
                        apply_item(reg, dir_index, dir, &items[i], &touched, counts);
                } else if ((f = file_lookup(reg, dir, items[i].name)) && f->dir_index == dir_index) {
                        file_delete(reg, f, &touched);
                        counts->removed++;
                }
        }
        for (size_t i = 0; i < n_listed; i++)
                if (!listed[i]->seen) {
                        file_delete(reg, listed[i], &touched);
                        counts->removed++;
                }
        free(listed);
        decide_all(reg, &touched);
}

void ph_registry_remap_dirs(ph_registry *reg, const int *map, unsigned n_old)
{
        name_set touched = { 0 };
        ph_file *f, *next;

        for (f = RB_MIN(file_tree, &reg->files); f; f = next) {
                next = RB_NEXT(file_tree, &reg->files, f);
                if (f->dir_index < n_old && map[f->dir_index] >= 0)
                        f->dir_index = (unsigned)map[f->dir_index];
                else
                        file_delete(reg, f, &touched);
        }
        /* Directory order decides ties: every name may change hands. */
        for (ph_plugin *p = ph_registry_first(reg); p; p = ph_registry_next(reg, p))
                touch(&touched, p);
        decide_all(reg, &touched);
}
