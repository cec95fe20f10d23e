/* The registry: every file found in the plugin directories, its verdict,
 * and one plugin per name (the winning file). Owned by the loop thread. */
#ifndef PH_REGISTRY_H
#define PH_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "plughost/plughost.h"

typedef enum ph_pstate {
        PH_PSTATE_DISCOVERED,
        PH_PSTATE_LOADING,
        PH_PSTATE_LOADED,
        PH_PSTATE_FAILED,
        PH_PSTATE_QUARANTINED,
} ph_pstate;

const char *ph_pstate_name(ph_pstate s);

/* Identity of a file version: any change means a new generation. */
typedef struct ph_file_id {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
} ph_file_id;

typedef struct ph_file {
        char *path;                 /* absolute: directory + "/" + name */
        unsigned dir_index;         /* lower wins a tie */
        ph_file_id id;
        uint64_t generation;
        ph_reason reason;           /* from the reader */
        char *message;              /* reader's message, or why it is shadowed */
        ph_meta *meta;              /* reason == OK only */
        bool shadowed;              /* OK, but another file won the name */
        bool untrusted;             /* OK, but refused by the trust policy (message) */
        bool seen;                  /* scan bookkeeping */
} ph_file;

typedef struct ph_plugin_counters {
        uint64_t calls, calls_failed, loads, load_failures, unloads;
        int64_t in_flight;
} ph_plugin_counters;

typedef struct ph_plugin {
        char *name;
        ph_file *file;              /* the winner; never NULL */
        ph_file **candidates;       /* every OK file claiming this name */
        size_t n_candidates;
        ph_pstate state;
        uint64_t loaded_generation; /* generation of the instance serving calls */
        uint64_t failed_generation; /* its load failed: answered without a retry */
        void *loading;              /* the Load in flight, which others join */
        char *last_error;
        bool wanted;                /* a client loaded it: keep loaded */
        bool fresh;                 /* created by this apply: report it as added */
        ph_plugin_counters counters;
} ph_plugin;

typedef enum ph_event_kind {
        PH_EVENT_ADDED,
        PH_EVENT_CHANGED,
        PH_EVENT_REMOVED,
        PH_EVENT_LOADED,
        PH_EVENT_UNLOADED,
        PH_EVENT_FAILED,
} ph_event_kind;

const char *ph_event_kind_name(ph_event_kind k);

/* Called for every change, on the loop thread. plugin may be freed right
 * after a REMOVED event. */
typedef void (*ph_registry_event_fn)(ph_event_kind kind, ph_plugin *plugin,
                                     const char *message, void *userdata);

typedef struct ph_registry ph_registry;

int ph_registry_new(ph_registry_event_fn fn, void *userdata, ph_registry **ret);
void ph_registry_free(ph_registry *reg);

/* One scanned file, handed over by a scan job. */
typedef struct ph_scanned {
        char *name;                 /* file name inside the directory */
        bool keep;                  /* still being written: leave its entry as it is */
        char trust[256];            /* why the trust policy refuses it; "" if it does not */
        ph_file_id id;
        ph_scan scan;               /* verdict; meta owned until taken */
} ph_scanned;

/* Applies the full listing of directory dir_index (path dir): new files
 * are added, files whose identity changed get a new generation and verdict
 * (but a loaded plugin's file that the reader now refuses keeps serving,
 * with a FAILED event), files not listed are removed. Takes what it keeps
 * out of items. Counts what changed. */
void ph_registry_apply_dir(ph_registry *reg, unsigned dir_index, const char *dir,
                           ph_scanned *items, size_t n_items,
                           unsigned *ret_added, unsigned *ret_changed, unsigned *ret_removed);

/* Applies what a scan of one file found: item is NULL when the file is
 * gone. Counts like ph_registry_apply_dir. */
void ph_registry_apply_file(ph_registry *reg, unsigned dir_index, const char *dir, const char *name,
                            ph_scanned *item, unsigned *ret_added, unsigned *ret_changed,
                            unsigned *ret_removed);

/* After a configuration change: map[i] is the new index of old directory
 * i, or -1 when it is gone (its files leave). */
void ph_registry_remap_dirs(ph_registry *reg, const int *map, unsigned n_old);

ph_plugin *ph_registry_find(ph_registry *reg, const char *name);

/* Visits plugins in name order; stops when fn returns non-zero. */
void ph_registry_foreach(ph_registry *reg, int (*fn)(ph_plugin *p, void *ud), void *ud);
/* Visits files that are not the winner of a name (refused or shadowed). */
void ph_registry_foreach_rejected(ph_registry *reg, int (*fn)(ph_file *f, void *ud), void *ud);

size_t ph_registry_count(const ph_registry *reg, size_t *ret_loaded, size_t *ret_rejected);

/* Sets state and last error (message may be NULL) and emits the matching
 * event (LOADED, UNLOADED, FAILED) when emit is set. */
void ph_registry_set_state(ph_registry *reg, ph_plugin *p, ph_pstate state, const char *message,
                           bool emit);

#endif
