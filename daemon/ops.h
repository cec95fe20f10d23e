/* Operations: plugin code run on the plugin pool (a load, or a call on a
 * borrowed instance), the clients waiting for each one, their deadlines,
 * and the plugin threads each uid holds. lifecycle.c decides which
 * operations to start and what their outcomes mean; this file runs them and
 * answers every waiter exactly once: with the outcome, with an error, or
 * with Timeout at its own deadline, whichever comes first. Loop thread,
 * except the work itself. */
#ifndef PH_OPS_H
#define PH_OPS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "deadline.h"
#include "pool.h"
#include "registry.h"
#include "server.h"
#include "worker.h"

typedef struct ph_ops ph_ops;
typedef struct ph_op ph_op;
typedef struct ph_waiter ph_waiter;
struct ph_serving;

typedef enum ph_op_kind {
        PH_OP_LOAD,
        PH_OP_CALL,
} ph_op_kind;

/* The calls of one instance: at most cap run on plugin threads at once
 * (1 for a serial plugin, MaxCallsPerPlugin otherwise); the others wait,
 * oldest first, without holding a thread: an in-process plugin's in the
 * pool's lane (a thread that finishes one of its calls takes the next),
 * an isolated one's here, on the loop. Embedded in its owner (lifecycle.c's
 * ph_serving), which outlives every op in it. */
typedef struct ph_lane {
        ph_pool_lane pool;              /* in-process calls */
        ph_op *head, *tail;             /* isolated calls waiting for room */
        unsigned running;               /* submitted to the pool */
        unsigned waiting;
        unsigned cap;
} ph_lane;

/* Someone waiting for an operation. */
struct ph_waiter {
        ph_waiter *prev, *next;         /* in op->waiters */
        ph_op *op;
        ph_reply *reply;                /* NULL: no one to answer (hot replace,
                                         * restore, oneway): the deadline only logs */
        ph_deadline deadline;
        ph_ops *ops;
        /* A Call waiting for its plugin to load: what to call then. */
        char *method, *params;
        uid_t uid;                      /* who asked (for the uid's thread count) */
        bool has_uid;
        bool charged;                   /* holds a place of uid (a Call waiting for a load) */
};

struct ph_op {
        ph_job job;
        ph_ops *ops;
        ph_op_kind kind;
        void *userdata;                 /* the ops' userdata (the daemon) */
        /* Inputs, copied: the work touches only these. */
        char *name;
        uint64_t plugin_id;             /* the registry incarnation it was started for */
        uint64_t generation;
        ph_config *cfg;                 /* a reference: what the op started with */
        char *path, *config_json;       /* LOAD */
        ph_file_id id;                  /* LOAD: for the quarantine marker */
        bool isolated;                  /* LOAD: in a worker process (wopts) */
        ph_worker_opts wopts;           /* LOAD: its path borrowed from cfg */
        ph_cache *cache;
        struct ph_serving *srv;         /* CALL: lifecycle.c's, holding the instance */
        ph_instance *call_inst;         /* CALL: borrowed from srv for the work */
        char *method, *params;          /* CALL; params NULL until the work
                                         * writes it from params_json */
        json_t *params_json;            /* CALL: a reference to the request's
                                         * object (NULL: {}), serialised on the
                                         * plugin thread, not the loop */
        size_t max_result;              /* CALL: bytes of result text */
        /* Outputs. */
        int r;                          /* 0 or -errno (load or call) */
        bool call_failed;               /* CALL: the plugin's error, not the host's */
        ph_fault fault;                 /* CALL: how an isolated plugin's worker failed it */
        ph_wcall wcall;                 /* CALL: an isolated plugin's, sent from the loop */
        bool abandoned;                 /* CALL: every waiter left before it started;
                                         * taken back from the pool, never run */
        char err[1024];
        char *result;                   /* CALL: the plugin's text, checked to be one
                                         * JSON object (NULL for null or nothing) on
                                         * the plugin thread, spliced into the reply
                                         * as it is */
        size_t result_size;             /* CALL: bytes of text the plugin returned */
        ph_instance *inst;              /* LOAD: a reference, for lifecycle.c to take */
        /* State. */
        ph_waiter *waiters;
        bool running;                   /* submitted, work not yet back */
        atomic_bool started;            /* a plugin thread took it (set there) */
        bool cancelled;                 /* unloaded or removed while it ran: its
                                         * outcome is dropped */
        uid_t uid;                      /* holds a place of this uid (queued or running) */
        bool counted;
        ph_lane *lane;                  /* CALL: the lane it runs or waits in */
        ph_op *lane_next;
        bool queued;                    /* waiting in lane, not yet submitted */
        uint64_t started_ms;
        uint64_t started_ns;            /* uv_hrtime(): a call's latency (Metrics) */
        void (*done)(ph_op *op);        /* lifecycle.c's, on the loop */
        ph_op *all_prev, *all_next;     /* every op, for the stop report */
};

/* The cache's hooks for a load (req->userdata is the operation): the
 * trust policy and pins, judged with the operation's configuration, and
 * the quarantine marker around init. Plugin threads. */
int ph_ops_check_cb(const struct stat *file_st, int image_fd, const ph_load_request *req,
                    char *err, size_t err_size);
void ph_ops_init_cb(const ph_load_request *req, bool done);

/* userdata is handed to every operation (ph_op.userdata). */
int ph_ops_new(uv_loop_t *loop, ph_pool *pool, void *userdata, ph_ops **ret);
void ph_ops_free(ph_ops *ops);
/* The configuration for new operations (deadlines, per-uid caps). */
void ph_ops_set_config(ph_ops *ops, const ph_config *cfg);

/* A new operation for plugin p (name, id, generation of its file, and for
 * a load its path and config), with cfg referenced. NULL on ENOMEM. */
ph_op *ph_op_new(ph_ops *ops, ph_op_kind kind, const ph_plugin *p, ph_cache *cache);
/* Frees an operation that was never submitted; answers its waiters with
 * Busy (out of memory). */
void ph_op_discard(ph_op *op, const char *why);

/* Whether uid may take one more plugin thread. */
bool ph_ops_uid_has_room(ph_ops *ops, uid_t uid, unsigned *ret_now);
/* Submits op to the plugin pool, charging a thread to uid (if has_uid).
 * Returns 0, or -EAGAIN (queue full) or -ENOMEM (an isolated call's
 * parameters not serialised); op untouched but for its params. */
int ph_op_submit(ph_op *op, bool has_uid, uid_t uid);

/* Submits a call through lane: now if fewer than cap of its calls run,
 * else once one of them is done. Returns 0, or -EAGAIN (queue full; op
 * untouched). */
int ph_op_submit_lane(ph_op *op, ph_lane *lane, unsigned cap, bool has_uid, uid_t uid);

/* Adds a waiter to op, with a deadline of the configured call timeout.
 * reply may be NULL. Returns it, or NULL (and answers reply with Busy) on
 * ENOMEM. */
ph_waiter *ph_op_wait(ph_op *op, ph_reply *reply, bool has_uid, uid_t uid);
/* A Call that waits for its plugin's load holds a place of its uid under
 * MaxCallsPerUser= (it keeps its parameters meanwhile), until it is
 * answered or moved to the call's own operation. */
void ph_waiter_charge(ph_waiter *w);
/* Moves w to another operation, keeping its deadline (and giving back a
 * place charged with ph_waiter_charge). */
void ph_waiter_move(ph_waiter *w, ph_op *to);
/* Answers a waiter and frees it (params stolen). */
void ph_waiter_ok(ph_waiter *w, json_t *params);
/* Answers with the reply begun in jw (ph_jw_reply_begin), and frees w. */
void ph_waiter_ok_jw(ph_waiter *w, ph_jw *jw);
void ph_waiter_error(ph_waiter *w, int verr, json_t *params, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Answers every waiter of op with the same error. */
void ph_op_fail_waiters(ph_op *op, int verr, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Takes op back from its lane or the pool if no plugin thread took it
 * yet: its done() runs now with -ECANCELED and abandoned set. Returns
 * whether it did. */
bool ph_op_take_back(ph_op *op);
/* Answers and takes back the calls on srv that have not started (the
 * plugin was removed). */
void ph_ops_take_back_calls(ph_ops *ops, const struct ph_serving *srv, int verr, const char *why);
/* Removes the quarantine markers of the loads still running: a stop is
 * not a crash (before _exit). */
void ph_ops_clear_load_markers(ph_ops *ops);
/* Frees op once its work is back and lifecycle.c is done with it. */
void ph_op_free(ph_op *op);

/* Operations whose work is still running (a stop waits for them). */
unsigned ph_ops_running(const ph_ops *ops);
/* Logs each operation still running: which plugin, which method, for how
 * long. */
void ph_ops_log_running(ph_ops *ops, const char *why);
/* Answers every waiter of every operation with Busy (the daemon stops),
 * and takes back the calls that wait in a lane. */
void ph_ops_fail_all(ph_ops *ops, const char *why);

#endif
