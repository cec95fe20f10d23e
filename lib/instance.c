/* Plugin instances: reference counts and calls. The last unref hands the
 * instance to its cache's graveyard; fini and dlclose run later, in
 * ph_cache_reap, never inside the caller that dropped the reference. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache-internal.h"

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
        ph__cache_bury(inst->cache, inst);
}

const ph_meta *ph_instance_meta(const ph_instance *inst)
{
        return inst->img.meta;
}

uint64_t ph_instance_generation(const ph_instance *inst)
{
        return inst->generation;
}

/* The plugin's message for its last failure on this thread, if any. */
static void instance_error(ph_instance *inst, int r, char *err, size_t err_size)
{
        const char *msg = inst->img.entry->last_error ? inst->img.entry->last_error() : NULL;

        if (err_size == 0)
                return;
        if (msg && msg[0])
                snprintf(err, err_size, "%.*s", (int)strnlen(msg, PLUGHOST_ERROR_MAX), msg);
        else
                snprintf(err, err_size, "%s", strerror(-r));
}

int ph_instance_call(ph_instance *inst, const char *method, const char *params_json,
                     char **ret_result, char *err, size_t err_size)
{
        char *result = NULL;
        int r;

        if (!method || !ret_result)
                return -EINVAL;
        if (inst->img.entry->clear_error)
                inst->img.entry->clear_error();
        ph__cache_count_call(inst->cache, +1);
        if (inst->serial)
                pthread_mutex_lock(&inst->call_lock);
        r = inst->img.entry->call(inst->self, method, params_json ? params_json : "{}", &result);
        if (inst->serial)
                pthread_mutex_unlock(&inst->call_lock);
        ph__cache_count_call(inst->cache, -1);
        if (r < 0) {
                free(result);
                instance_error(inst, r, err, err_size);
                return r;
        }
        *ret_result = result;
        return 0;
}
