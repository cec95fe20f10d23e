/* Internal to lib/: a plugin instance, as the cache makes it and
 * lib/instance.c runs it. instance.c knows nothing of the cache: an
 * instance carries the function its last unref calls (and that function's
 * owner), and a pointer to the call counters it bumps. */
#ifndef PH_INSTANCE_INTERNAL_H
#define PH_INSTANCE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "loader-internal.h"

#define PH_CALL_STRIPES 16u
#define PH_CACHE_LINE 64u

/* Calls started and ended, on a stripe picked by the calling thread, so
 * threads calling one instance (or many) mostly bump different cache lines;
 * summed when read. Owned by whoever embeds it (the cache, one for all its
 * instances); it must outlive every instance that points at it. */
typedef struct ph_call_counters {
        struct {
                atomic_uint_fast64_t started, ended;
        } __attribute__((aligned(PH_CACHE_LINE))) stripes[PH_CALL_STRIPES];
} ph_call_counters;

/* Sums the stripes: calls started so far, and calls running now. Any
 * thread; a racing call may be counted as started and not yet ended. */
void ph__call_counters_read(ph_call_counters *k, uint64_t *ret_calls, int64_t *ret_in_flight);

/* What the last ph_instance_unref calls, with the owner given at creation,
 * on the thread that dropped the reference and with no lock held. It takes
 * the instance over (to finalise it later with ph__instance_free) and must
 * not run plugin code. */
typedef void ph_instance_last_unref_fn(ph_instance *inst, void *owner);

struct ph_instance {
        /* Set before the instance is shared, then only read (by every call). */
        ph_image img;
        void *self;                             /* from init */
        const struct ph_runner *runner;         /* NULL: runs here (img is mapped) */
        void *run;                              /* runner's handle, once started */
        uint64_t generation;
        bool serial;
        bool started;                           /* init ran and succeeded, or there is none */
        ph_call_counters *counters;             /* not owned */
        ph_instance_last_unref_fn *last_unref;
        void *owner;                            /* last_unref's */
        struct ph_instance *next_dead;          /* the owner's list link */

        /* Written by every ref, unref and serial call: on lines of their
         * own, so that holders taking and dropping references do not slow
         * down threads that call through a borrowed pointer. */
        atomic_long refs __attribute__((aligned(PH_CACHE_LINE)));
        pthread_mutex_t call_lock;              /* serial plugins only; innermost lock */
};

/* Makes an instance of img with one reference (the caller's). Takes
 * ownership of *img on success (and zeroes it); leaves it the caller's on
 * failure (-ENOMEM). counters and owner must outlive the instance. */
int ph__instance_new(ph_image *img, uint64_t generation, ph_call_counters *counters,
                     ph_instance_last_unref_fn *last_unref, void *owner, ph_instance **ret);

/* Runs the plugin's init (if it has one) with req->config_json (NULL:
 * "{}") on the calling thread, before the instance is shared; with
 * req->runner, starts it there instead. On failure returns the plugin's
 * errno (-EIO for a value below -4095) with "NAME: init failed: MESSAGE"
 * in err, and the instance must be freed without being started;
 * *ret_transient says whether the runner blamed the host (see ph_runner). */
int ph__instance_start(ph_instance *inst, const ph_load_request *req, bool *ret_transient,
                       char *err, size_t err_size);

/* Runs fini (if the instance was started), closes the image and frees the
 * instance. No reference may be left. Accepts NULL. */
void ph__instance_free(ph_instance *inst);

#endif
