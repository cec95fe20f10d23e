/* Directory scans on libuv's thread pool. Work is merged per directory (a
 * full listing, or a set of names) so it never queues without bound; one
 * scan runs at a time, and its result is handed to the apply callback on
 * the loop. The trust policy runs before a byte of a file is read; files
 * larger than the loader takes are refused unread; a stop cancels the
 * running scan. */
#ifndef PH_SCAN_H
#define PH_SCAN_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "registry.h"

typedef struct ph_scanner ph_scanner;

/* What a batch (ph_scan_all) found; error is the first directory that
 * could not be read (-errno), with its path. */
typedef struct ph_scan_result {
        ph_apply_counts counts;
        int error;
        char error_dir[512];
} ph_scan_result;

typedef struct ph_scanner_hooks {
        /* Applies one directory's scan (loop thread). */
        void (*apply)(void *userdata, unsigned dir_index, const char *dir, bool full,
                      ph_scanned *items, size_t n_items, ph_apply_counts *counts);
        /* The names of dir_index being written right now: left alone.
         * Fills a malloc'd vector of malloc'd strings (or NULL, 0). */
        void (*writing)(void *userdata, unsigned dir_index, char ***ret_names, size_t *ret_n);
        void *userdata;
} ph_scanner_hooks;

typedef void (*ph_scan_done_fn)(void *userdata, const ph_scan_result *res);

int ph_scanner_new(uv_loop_t *loop, const ph_config *cfg, const ph_scanner_hooks *hooks,
                   ph_scanner **ret);
/* A new configuration: work for directories that stay follows them to
 * their new index; work for directories that left is finished. cfg is
 * borrowed (the daemon keeps it alive while it is current). */
void ph_scanner_set_config(ph_scanner *s, const ph_config *cfg);
/* Scans every directory; done runs once all were applied. -ENOMEM. */
int ph_scan_all(ph_scanner *s, ph_scan_done_fn done, void *userdata);
/* Scans one directory whole (the watcher: it appeared, or events were lost). */
void ph_scan_dir(ph_scanner *s, unsigned dir_index);
/* Scans some names of a directory (takes the strings, not the vector). */
void ph_scan_names(ph_scanner *s, unsigned dir_index, char **names, size_t n_names);
/* Cancels the running scan and drops the queued ones; their batches are
 * not answered. A stopped scanner takes no more work. */
void ph_scanner_stop(ph_scanner *s);
/* True while a scan runs on the pool (a stop waits for it). */
bool ph_scanner_busy(const ph_scanner *s);
/* Only once it is not busy. */
void ph_scanner_free(ph_scanner *s);

/* True for names the watcher and scanner skip: dotfiles, *.tmp, *~,
 * *.part, *.swp, *.dpkg-new and friends: files still being written. */
bool ph_scan_ignored_name(const char *name);

#endif
