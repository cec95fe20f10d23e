/* Internal to the loader and the instance cache. */
#ifndef PH_CACHE_INTERNAL_H
#define PH_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "plughost/plughost.h"
#include "plughost/abi.h"

/* A loaded, not yet initialised plugin image. */
typedef struct ph_image {
        void *handle;                           /* from dlopen */
        int memfd;                              /* the sealed copy; names the image */
        const struct plughost_plugin *entry;
        ph_meta *meta;                          /* read from the loaded bytes */
} ph_image;

/* Copies the file open on fd into a sealed memfd, lets check (if any) judge
 * the file's stat and the sealed copy, scans that copy, checks
 * that it carries want_name, and dlopens it as /proc/self/fd/N (glibc hands
 * back an already-loaded image for a known name, so N stays open while the
 * image lives). Checks the entry point's ABI against the note's. On failure
 * returns a negative errno with a message in err. Thread-safe. */
typedef struct ph_image_check {
        int (*cb)(const struct stat *file_st, int image_fd, void *userdata,
                  char *err, size_t err_size);
        void *userdata;
} ph_image_check;

int ph__image_load(int fd, const char *want_name, uint64_t max_size,
                   const ph_image_check *check, ph_image *ret, char *err, size_t err_size);

/* dlclose (unless the plugin is resident) and free; the memfd is closed
 * once glibc no longer has the image. Accepts an image from a failed load. */
void ph__image_close(ph_image *img);

struct ph_instance {
        atomic_long refs;
        ph_cache *cache;                /* where the last unref sends it */
        ph_image img;
        void *self;                     /* from init */
        uint64_t generation;
        bool serial;
        pthread_mutex_t call_lock;      /* serial plugins only; innermost lock */
        struct ph_instance *next_dead;  /* graveyard link */
};

/* Hands an instance whose refs reached 0 to the cache's graveyard. */
void ph__cache_bury(ph_cache *c, ph_instance *inst);

/* Counts a call starting (+1) or ending (-1), on a stripe picked by the
 * calling thread, so calls on different threads touch different lines. */
void ph__cache_count_call(ph_cache *c, int delta);

#endif
