/* The registry: every file found in the plugin directories, its verdict,
 * and one plugin per name (the winning file). It decides names and reports
 * what changed; what is loaded is lifecycle.c's business. Loop thread. */
#ifndef PH_REGISTRY_H
#define PH_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "events.h"
#include "plughost/plughost.h"
#include "tree.h"

/* Identity of a file version: any change means a new generation. */
typedef struct ph_file_id {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
} ph_file_id;

typedef struct ph_file {
        RB_ENTRY(ph_file) node;
        RB_ENTRY(ph_file) rejected_node; /* in the registry's refused-or-shadowed index */
        char *path;                 /* absolute: directory + "/" + name (in the same block) */
        unsigned dir_index;         /* lower wins a tie */
        ph_file_id id;
        uint64_t generation;
        ph_reason reason;           /* the reader's, or PH_REASON_UNTRUSTED */
        char *message;              /* why it is refused or shadowed */
        ph_meta *meta;              /* reason == OK only; its tree is dropped (see
                                     * ph_registry_find) */
        bool shadowed;              /* OK, but another file won the name */
        bool shadow_told;           /* its shadowing was reported */
        bool seen;                  /* apply bookkeeping */
        bool rejected;              /* in the refused-or-shadowed index */
        uid_t owner;
} ph_file;

struct ph_life;

typedef struct ph_plugin {
        RB_ENTRY(ph_plugin) node;
        char *name;                 /* in the same block */
        uint64_t id;                /* this incarnation of the name, never reused */
        ph_file *file;              /* the winner; never NULL */
        ph_file **candidates;       /* every OK file claiming this name: &one, or a vector */
        size_t n_candidates, cap_candidates;
        ph_file *one;               /* the usual case: one file claims the name */
        bool fresh;                 /* created by this apply: report it as added */
        bool touched;               /* this apply decides it */
        char *left_path;            /* the winner that left during this apply */
        struct ph_life *life;       /* lifecycle.c's; the registry never looks inside */
} ph_plugin;

/* Why a name left or a held plugin's file was refused. */
typedef struct ph_registry_why {
        const char *file;           /* the file that left or was refused */
        const char *reason;         /* "deleted", or ph_file_reason_name's word */
        const char *message;        /* the whole story, for a log line */
        long long uid;              /* the file's owner, or -1 */
} ph_registry_why;

/* Told of every change, on the loop thread: ADDED, CHANGED, REMOVED
 * (plugin is freed right after; why says why), and FAILED when a held
 * plugin's file was refused by the reader (why says why; the plugin keeps
 * its file). why is NULL for the others. */
typedef void (*ph_registry_event_fn)(ph_event_kind kind, ph_plugin *plugin,
                                     const ph_registry_why *why, void *userdata);
/* Told once per file version that is refused, or once when a file starts
 * being shadowed, after the apply's names are decided. */
typedef void (*ph_registry_rejected_fn)(const ph_file *file, void *userdata);
/* Whether a plugin is held (an instance serves it): a reader refusal of
 * its file then leaves it as it is, serving (a truncated copy written over
 * a loaded plugin must not take it away). */
typedef bool (*ph_registry_held_fn)(const ph_plugin *plugin, void *userdata);

typedef struct ph_registry ph_registry;

int ph_registry_new(ph_registry_event_fn event, ph_registry_held_fn held,
                    ph_registry_rejected_fn rejected, void *userdata, ph_registry **ret);
/* Frees everything; no events. */
void ph_registry_free(ph_registry *reg);

/* One scanned file, handed over by a scan job. */
typedef struct ph_scanned {
        char *name;                 /* file name inside the directory */
        bool present;               /* false: the file is gone */
        bool keep;                  /* still being written: leave its entry as it is */
        ph_file_id id;
        uid_t owner;
        ph_reason reason;           /* the verdict (PH_REASON_UNTRUSTED: message says why) */
        char *message;              /* malloc'd; NULL when reason is OK; owned until taken */
        ph_meta *meta;              /* reason OK: owned until taken */
} ph_scanned;

/* Frees what an item still owns. */
void ph_scanned_clear(ph_scanned *it);

typedef struct ph_apply_counts {
        unsigned added, changed, removed;
} ph_apply_counts;

/* Applies a scan of directory dir_index (path dir), deciding every name it
 * touched once, at the end: a rename inside the directory is one change.
 * With full, items is the whole listing and files not in it leave; else
 * items are the only names looked at (present or gone). Takes what it
 * keeps out of items; adds what changed to *counts. */
void ph_registry_apply(ph_registry *reg, unsigned dir_index, const char *dir, bool full,
                       ph_scanned *items, size_t n_items, ph_apply_counts *counts);

/* After a configuration change: map[i] is the new index of old directory
 * i, or -1 when it is gone (its files leave). */
void ph_registry_remap_dirs(ph_registry *reg, const int *map, unsigned n_old);

/* The plugin of that name, or NULL, for a client's request: its file's
 * metadata has its tree (ph_meta.priv, which Info shows) again, and the
 * last REGISTRY_TREES_KEPT plugins asked for keep theirs. Files keep no
 * tree otherwise (1 KiB each: 100 MiB at 100,000 plugins). */
#define REGISTRY_TREES_KEPT 32u
ph_plugin *ph_registry_find(ph_registry *reg, const char *name);
/* The same without the tree, for the daemon's own look-ups. */
ph_plugin *ph_registry_lookup(ph_registry *reg, const char *name);

/* A count that moves whenever what the registry shows may have changed:
 * after every apply (plugins come, go, change files), and when the owner
 * says so with ph_registry_touch (a plugin's serving instance changed, so
 * its metadata did). Pointers into the registry taken at one count are
 * valid while it stays. */
uint64_t ph_registry_changes(const ph_registry *reg);
void ph_registry_touch(ph_registry *reg);

/* Plugins in name order: the first, the next, and the first whose name
 * sorts after `after` (NULL: the first). */
ph_plugin *ph_registry_first(ph_registry *reg);
ph_plugin *ph_registry_next(ph_registry *reg, ph_plugin *p);
ph_plugin *ph_registry_after(ph_registry *reg, const char *after);

/* Files that are not the winner of a name (refused or shadowed), in path
 * order (an index of their own: as cheap with 100,000 plugins as with 3). */
ph_file *ph_registry_rejected_first(ph_registry *reg);
ph_file *ph_registry_rejected_next(ph_registry *reg, ph_file *f);
/* The first of them whose path sorts after `after` (NULL: the first). */
ph_file *ph_registry_rejected_after(ph_registry *reg, const char *after);

/* Names, and files refused or shadowed: counters, O(1). */
size_t ph_registry_count(const ph_registry *reg, size_t *ret_rejected);

/* The machine name of a file's refusal ("shadowed", "untrusted", the
 * reader's reason). */
const char *ph_file_reason_name(const ph_file *f);

#endif
