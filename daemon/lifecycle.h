/* A plugin's lifecycle: its state machine, the instance serving its calls
 * and the loads under way. The one file that changes a plugin's state;
 * method handlers and the registry ask for transitions. Loop thread.
 *
 * The state is derived from facts, never assigned from outside:
 *   loaded       an instance serves calls (of this file version or an
 *                older one while the new one loads or after it failed);
 *   loading      no instance serves, a load is under way;
 *   quarantined  no instance; the daemon died while this file version
 *                initialised, or its worker process faulted too often;
 *   failed       no instance; this file version failed to load;
 *   discovered   none of these.
 * See docs/architecture.md for the transitions. */
#ifndef PH_LIFECYCLE_H
#define PH_LIFECYCLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "jw.h"
#include "ops.h"
#include "registry.h"
#include "server.h"

struct ph_daemon;

typedef enum ph_pstate {
        PH_PSTATE_DISCOVERED,           /* in protocol/names.c's order */
        PH_PSTATE_LOADING,
        PH_PSTATE_LOADED,
        PH_PSTATE_FAILED,
        PH_PSTATE_QUARANTINED,
        _PH_PSTATE_MAX,
} ph_pstate;

const char *ph_pstate_name(ph_pstate s);
/* -EINVAL for a name that is not a state. */
int ph_pstate_from_name(const char *name);

/* One loaded generation, pinned on the loop: calls borrow inst (no
 * reference per call); in_flight keeps it alive. */
typedef struct ph_serving {
        ph_instance *inst;              /* the daemon's reference */
        uint64_t generation;
        char *file;                     /* where it was loaded from */
        unsigned in_flight;             /* calls borrowing inst (running or in lane) */
        ph_lane lane;                   /* its calls: how many run at once */
        bool retired;                   /* no longer serving: released at in_flight 0 */
} ph_serving;

typedef struct ph_plugin_counters {
        uint64_t calls, calls_failed, loads, load_failures, unloads;
        uint64_t in_flight;
} ph_plugin_counters;

/* Read-only outside lifecycle.c. */
typedef struct ph_life {
        ph_pstate state;                /* derived: written by life_settle alone */
        ph_serving *serving;            /* the instance serving calls, or NULL */
        ph_op *load;                    /* the newest load under way, or NULL */
        uint64_t failed_generation;     /* this generation failed to load: answered
                                         * without a retry until the file, its Config=
                                         * or an Unload says otherwise */
        bool failed_retry;              /* ... unless the error was the host's (no fd,
                                         * no memory): the next Load tries again */
        uint64_t quarantined_generation;/* its worker faulted too often: not loaded
                                         * again until the file changes */
        char *error;                    /* why the last load failed, or the file's refusal */
        bool wanted;                    /* a client loaded it: keep it loaded */
        bool leaving;                   /* its name is being removed: operations
                                         * that finish now find no plugin */
        ph_plugin_counters counters;
        /* What clients see that changes only with the generation whose
         * metadata is shown (plugin-json.c): rendered once, spliced. */
        uint64_t json_generation;       /* 0: nothing rendered */
        char *json_static;              /* "name":...,"priority":N */
        size_t json_static_len;
        uint64_t json_metadata_generation;
        char *json_metadata;            /* the metadata object, for Info */
        size_t json_metadata_len;
} ph_life;

/* The registry's hooks (userdata: the daemon). */
void ph_life_registry_event(ph_event_kind kind, ph_plugin *p, const ph_registry_why *why,
                            void *userdata);
/* A refused or shadowed file: a "rejected" event. */
void ph_life_registry_rejected(const ph_file *f, void *userdata);
bool ph_life_held(const ph_plugin *p, void *userdata);

/* Load: answers r with the plugin once an instance of its current file
 * serves, or with why not. */
void ph_life_load(struct ph_daemon *d, ph_plugin *p, ph_reply *r, const ph_conn *c);
/* Call: on the serving instance, loading it first if needed. params may
 * be NULL. */
void ph_life_call(struct ph_daemon *d, ph_plugin *p, const char *method, json_t *params,
                  ph_reply *r, const ph_conn *c);
/* Unload: answered at once; the instance is finalised when its calls
 * return; a load under way is cancelled (its waiters get LoadFailed). */
void ph_life_unload(struct ph_daemon *d, ph_plugin *p);
/* After the first scan: loads what clients had loaded. */
void ph_life_restore(struct ph_daemon *d);
/* After a reload: plugins whose Config= changed may be tried again. */
void ph_life_config_changed(struct ph_daemon *d, const ph_config *old, const ph_config *cfg);
/* A stop begins: every instance is retired (calls in flight finish on
 * it; then it is finalised on the pool). Loads that finish from now on
 * are dropped. */
void ph_life_stop_begin(struct ph_daemon *d);
/* The drain is over: every waiter left is answered (Busy); running work
 * goes on. */
void ph_life_stop_end(struct ph_daemon *d);
/* After the loop, with no plugin code running: drops every instance (the
 * cache runs fini when it is freed) and frees the lifecycle records. */
void ph_life_shutdown(struct ph_daemon *d);

/* What a plugin shows: the serving instance's metadata if one serves,
 * else its file's. */
const ph_meta *ph_life_meta(const ph_plugin *p);
size_t ph_life_loaded_count(const struct ph_daemon *d);

/* Call's reply, begun in jw (for ph_reply_jw): {"result": the plugin's
 * text as it wrote it (size bytes, checked by ops.c), or null for a NULL
 * result}. For waiter_result and tests/test-replies.c. */
void ph__life_result_reply(ph_jw *jw, const char *result, size_t size);

/* Finalising retired instances (the cache's garbage hook; any thread). */
void ph_life_garbage_cb(void *userdata);
/* The cache's fini hook: the crash context (crash.h) names the plugin
 * whose fini and dlclose run, on the reaping thread. */
void ph_life_fini_cb(void *userdata, const char *name, bool done);
int ph_life_reaper_init(struct ph_daemon *d);
/* Whether instances wait to be finalised or are being finalised (queues
 * their reap if the wake-up is still on its way). Loop thread. */
bool ph_life_finalising(struct ph_daemon *d);
/* Reap jobs not yet done (finis may hang in them). */
unsigned ph_life_reaping(const struct ph_daemon *d);

#endif
