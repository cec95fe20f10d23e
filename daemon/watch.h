/* The watcher: inotify on every plugin directory. It decides what to scan
 * (names renamed into place or closed after writing, whole directories
 * after an overflow or when they appear) and asks through its hooks; it
 * knows nothing of scans or the registry. Loop thread. */
#ifndef PH_WATCH_H
#define PH_WATCH_H

#include <stddef.h>
#include <uv.h>

#include "config.h"

typedef struct ph_watch ph_watch;

typedef struct ph_watch_hooks {
        void (*scan_dir)(void *userdata, unsigned dir_index);
        /* Takes the strings (not the vector). */
        void (*scan_names)(void *userdata, unsigned dir_index, char **names, size_t n);
        void *userdata;
} ph_watch_hooks;

/* cfg is borrowed (the daemon's current configuration). */
int ph_watch_new(uv_loop_t *loop, const ph_config *cfg, const ph_watch_hooks *hooks,
                 ph_watch **ret);
/* Re-reads the directory list after a configuration change. */
void ph_watch_set_config(ph_watch *w, const ph_config *cfg);
void ph_watch_free(ph_watch *w);
/* Copies the names in dir_index that are open for writing (w may be NULL). */
void ph_watch_writing(ph_watch *w, unsigned dir_index, char ***ret_names, size_t *ret_n);

#endif
