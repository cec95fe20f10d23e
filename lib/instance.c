/* Plugin instances: reference counts, and the plugin's own functions (init,
 * call, fini) called through them. The last unref hands the instance to
 * whatever its owner set at creation (the cache's graveyard); fini and
 * dlclose run later, in ph__instance_free, never inside the caller that
 * dropped the reference. Nothing here knows the cache. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instance-internal.h"

/* The largest errno the kernel ABI knows (MAX_ERRNO). */
#define INSTANCE_ERRNO_MAX 4095

/* A plugin's negative return as a negative errno: anything outside
 * -4095..-1 is no errno (and -INT_MIN would overflow), so it becomes -EIO. */
static int plugin_errno(int r)
{
        return r < -INSTANCE_ERRNO_MAX ? -EIO : r;
}

/* The line a call counts on: thread descriptors are far apart, so their
 * addresses are mixed to pick a stripe. */
static unsigned call_stripe(void)
{
        uint64_t h = (uint64_t)(uintptr_t)pthread_self() * 0x9e3779b97f4a7c15ull;

        return (unsigned)(h >> 60) % PH_CALL_STRIPES;
}

void ph__call_counters_read(ph_call_counters *k, uint64_t *ret_calls, int64_t *ret_in_flight)
{
        uint64_t started = 0, ended = 0;

        for (unsigned i = 0; i < PH_CALL_STRIPES; i++) {
                /* ended first: a call seen ending was seen starting too. */
                ended += atomic_load(&k->stripes[i].ended);
                started += atomic_load(&k->stripes[i].started);
        }
        *ret_calls = started;
        *ret_in_flight = (int64_t)(started - ended);
}

int ph__instance_new(ph_image *img, uint64_t generation, ph_call_counters *counters,
                     ph_instance_last_unref_fn *last_unref, void *owner, ph_instance **ret)
{
        size_t size = (sizeof(ph_instance) + PH_CACHE_LINE - 1) / PH_CACHE_LINE * PH_CACHE_LINE;
        ph_instance *inst = aligned_alloc(PH_CACHE_LINE, size);

        if (!inst)
                return -ENOMEM;
        memset(inst, 0, size);
        inst->img = *img;
        memset(img, 0, sizeof(*img));
        img->memfd = -1;
        inst->generation = generation;
        inst->serial = inst->img.meta->serial;
        inst->counters = counters;
        inst->last_unref = last_unref;
        inst->owner = owner;
        atomic_init(&inst->refs, 1);
        pthread_mutex_init(&inst->call_lock, NULL);
        *ret = inst;
        return 0;
}

/* The plugin's message for its last failure on this thread, or strerror. */
static void instance_error(ph_instance *inst, int r, char *err, size_t err_size,
                           const char *prefix)
{
        const char *msg = inst->img.entry->last_error ? inst->img.entry->last_error() : NULL;

        if (err_size == 0)
                return;
        if (msg && msg[0])
                snprintf(err, err_size, "%s%.*s", prefix, (int)strnlen(msg, PLUGHOST_ERROR_MAX),
                         msg);
        else
                snprintf(err, err_size, "%s%s", prefix, strerror(-r));
}

int ph__instance_start(ph_instance *inst, const ph_load_request *req, bool *ret_transient,
                       char *err, size_t err_size)
{
        const char *name = req->name, *config_json = req->config_json;
        char prefix[PH_NAME_MAX + 32];
        int r;

        if (req->runner) {
                r = req->runner->start(req, inst->img.memfd, inst->img.meta, &inst->run,
                                       ret_transient, err, err_size);
                if (r < 0)
                        return r;
                inst->runner = req->runner;
                inst->started = true;
                return 0;
        }
        if (inst->img.entry->init) {
                if (inst->img.entry->clear_error)
                        inst->img.entry->clear_error();
                r = inst->img.entry->init(config_json ? config_json : "{}", &inst->self);
                if (r < 0) {
                        r = plugin_errno(r);
                        snprintf(prefix, sizeof(prefix), "%s: init failed: ", name);
                        instance_error(inst, r, err, err_size, prefix);
                        return r;
                }
        }
        inst->started = true;
        return 0;
}

void ph__instance_free(ph_instance *inst)
{
        if (!inst)
                return;
        if (inst->runner)
                inst->runner->stop(inst->run);
        else if (inst->started && inst->img.entry->fini)
                inst->img.entry->fini(inst->self);
        ph__image_close(&inst->img);
        pthread_mutex_destroy(&inst->call_lock);
        free(inst);
}

ph_instance *ph_instance_ref(ph_instance *inst)
{
        atomic_fetch_add_explicit(&inst->refs, 1, memory_order_relaxed);
        return inst;
}

void ph_instance_unref(ph_instance *inst)
{
        if (!inst)
                return;
        /* acq_rel: whoever drops the last reference sees every write made
         * under the others (a fence would do, but TSan does not model it). */
        if (atomic_fetch_sub_explicit(&inst->refs, 1, memory_order_acq_rel) != 1)
                return;
        inst->last_unref(inst, inst->owner);
}

const ph_meta *ph_instance_meta(const ph_instance *inst)
{
        return inst->img.meta;
}

uint64_t ph_instance_generation(const ph_instance *inst)
{
        return inst->generation;
}

void *ph_instance_runner_handle(const ph_instance *inst)
{
        return inst->runner ? inst->run : NULL;
}

/* A call through the runner: counted like one made here; the runner
 * serialises what must be. */
static int instance_call_runner(ph_instance *inst, const char *method, const char *params_json,
                                char **ret_result, char *err, size_t err_size)
{
        ph_call_counters *k = inst->counters;
        unsigned stripe = call_stripe();
        int r;

        atomic_fetch_add_explicit(&k->stripes[stripe].started, 1, memory_order_relaxed);
        r = inst->runner->call(inst->run, method, params_json ? params_json : "{}", ret_result,
                               err, err_size);
        atomic_fetch_add_explicit(&k->stripes[stripe].ended, 1, memory_order_release);
        return r;
}

int ph_instance_call(ph_instance *inst, const char *method, const char *params_json,
                     char **ret_result, char *err, size_t err_size)
{
        const struct plughost_plugin *entry = inst->img.entry;
        ph_call_counters *k = inst->counters;
        unsigned stripe = call_stripe();
        char *result = NULL;
        int r;

        if (!method || !ret_result)
                return -EINVAL;
        if (inst->runner)
                return instance_call_runner(inst, method, params_json, ret_result, err, err_size);
        if (entry->clear_error)
                entry->clear_error();
        atomic_fetch_add_explicit(&k->stripes[stripe].started, 1, memory_order_relaxed);
        if (inst->serial)
                pthread_mutex_lock(&inst->call_lock);
        r = entry->call(inst->self, method, params_json ? params_json : "{}", &result);
        if (inst->serial)
                pthread_mutex_unlock(&inst->call_lock);
        /* release: a reader that sees the call ended sees it started. */
        atomic_fetch_add_explicit(&k->stripes[stripe].ended, 1, memory_order_release);
        if (r < 0) {
                free(result);
                r = plugin_errno(r);
                instance_error(inst, r, err, err_size, "");
                return r;
        }
        *ret_result = result;
        return 0;
}
