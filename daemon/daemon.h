/* plughostd's state, owned by the loop thread, and the pieces that share it. */
#ifndef PH_DAEMON_H
#define PH_DAEMON_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "policy.h"
#include "plughost/plughost.h"
#include "pool.h"
#include "registry.h"

typedef struct ph_server ph_server;
typedef struct ph_watch ph_watch;
typedef struct scan_job scan_job;
typedef struct ph_conn ph_conn;
typedef struct ph_reply ph_reply;

typedef struct ph_daemon_counters {
        uint64_t calls, calls_failed, loads, load_failures, unloads, timeouts, requests;
} ph_daemon_counters;

typedef struct ph_daemon {
        uv_loop_t *loop;
        ph_config cfg;
        ph_cache *cache;
        ph_registry *reg;
        ph_pool *pool;
        ph_server *server;
        uv_async_t reap_async;          /* the cache has instances to finalise */
        bool reap_running;
        uint64_t started_ms;
        ph_watch *watch;
        scan_job *scanq_head, *scanq_tail;      /* scans run one at a time */
        bool scan_running;
        bool ready;                     /* first scan done */
        bool stopping;
        ph_daemon_counters counters;
        char **wanted;                  /* loaded by clients: restored at start */
        size_t n_wanted;
        json_t *quarantine;             /* name -> file identity that died in init */
        ph_digests *digests;            /* SHA-256 pins, or NULL */
        pthread_mutex_t digests_lock;   /* guards the pointer, for loads on workers */
        struct uid_calls *uid_calls;    /* calls in flight per uid */
        size_t n_uid_calls;
        uv_signal_t sigterm, sigint, sighup;
        uv_timer_t stop_timer;
        uv_timer_t status_timer, watchdog_timer;
} ph_daemon;

/* ---- scan.c: directory scans on libuv's pool ---- */

/* Scans every configured directory; done(d, ud) runs on the loop when all
 * have been applied to the registry, with the totals. */
typedef void (*ph_scan_done_fn)(ph_daemon *d, unsigned added, unsigned changed,
                                unsigned removed, void *ud);
int ph_scan_all(ph_daemon *d, ph_scan_done_fn done, void *ud);
/* Rescans one directory (the watcher, after it appeared or vanished). */
int ph_scan_dir(ph_daemon *d, unsigned dir_index);
/* Scans some files of a directory (takes names and the strings). */
int ph_scan_files(ph_daemon *d, unsigned dir_index, char **names, size_t n_names);
/* Forgets queued scans (at stop). */
void ph_scan_drop_queue(ph_daemon *d);

/* ---- notify.c: systemd notifications ---- */

void ph_notify_start(ph_daemon *d);             /* watchdog timer, if asked for */
void ph_notify_ready(ph_daemon *d);             /* READY=1 + STATUS= */
void ph_notify_status(ph_daemon *d);
void ph_notify_reloading(void);                 /* RELOADING=1 + MONOTONIC_USEC= */
void ph_notify_reloaded(ph_daemon *d);          /* READY=1 again */
void ph_notify_stopping(void);
void ph_notify_extend(uint64_t usec);           /* EXTEND_TIMEOUT_USEC= */
void ph_notify_stop(ph_daemon *d);

/* ---- state.c: what survives a restart ---- */

void ph_state_load(ph_daemon *d);
void ph_state_want(ph_daemon *d, const char *name, bool want);
bool ph_state_wanted(const ph_daemon *d, const char *name);
int ph_state_save_loaded(ph_daemon *d);
/* Worker threads: around a plugin's init. */
void ph_state_init_mark(const char *state_dir, const char *name, const ph_file_id *id);
void ph_state_init_clear(const char *state_dir, const char *name);
/* True if name's file (id) was being initialised when the daemon died. */
bool ph_state_quarantined(ph_daemon *d, const char *name, const ph_file_id *id);

/* ---- watch.c: inotify on the plugin directories ---- */

int ph_watch_new(ph_daemon *d, ph_watch **ret);
/* Re-reads the directory list after a configuration change. */
void ph_watch_reconfigure(ph_watch *w);
void ph_watch_free(ph_watch *w);
/* Copies the names in dir_index that are open for writing (w may be NULL). */
void ph_watch_writing(ph_watch *w, unsigned dir_index, char ***ret_names, size_t *ret_n);

/* True for names the watcher and scanner skip: dotfiles, *.tmp, *~,
 * *.part, *.swp, *.dpkg-new and friends: files still being written. */
bool ph_scan_ignored_name(const char *name);

/* ---- server.c: the socket and its connections ---- */

/* Listens; clients can connect (they wait in the backlog) but are
 * accepted only from ph_server_start on. */
int ph_server_new(ph_daemon *d, ph_server **ret);
/* Starts accepting: after the first scan, so no client sees an empty
 * registry. */
void ph_server_start(ph_server *s);
/* Stops accepting and closes idle connections. */
void ph_server_stop(ph_server *s);
void ph_server_free(ph_server *s);
unsigned ph_server_clients(const ph_server *s);
/* True when the listener came from systemd (socket activation). */
bool ph_server_activated(const ph_server *s);

/* Connection facts for methods. */
uid_t ph_conn_uid(const ph_conn *c);
/* The peer's groups (primary and supplementary, from SO_PEERGROUPS). */
const gid_t *ph_conn_groups(const ph_conn *c, size_t *ret_n);
pid_t ph_conn_pid(const ph_conn *c);

/* A reply slot: every request that expects an answer gets one, in order. */
ph_reply *ph_reply_new(ph_conn *c);
/* Completes a slot with a serialised message (taken). A slot whose
 * connection went away frees itself. */
void ph_reply_send(ph_reply *r, char *msg, size_t len);
/* For streams (Monitor): sends a message but keeps the slot open. Returns
 * -EPIPE when the connection is gone or cannot keep up (then the slot is
 * finished and freed). */
int ph_reply_stream(ph_reply *r, char *msg, size_t len);
/* Helpers that build and send. */
void ph_reply_ok(ph_reply *r, json_t *params);
void ph_reply_error(ph_reply *r, int verr, json_t *params, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Broadcasts an event to every Monitor stream. */
void ph_server_broadcast(ph_server *s, json_t *event);

/* ---- methods.c: io.plughost and org.varlink.service ---- */

struct ph_request;
/* Runs a validated request; answers through r (NULL for oneway). */
void ph_methods_dispatch(ph_daemon *d, ph_conn *c, struct ph_request *req, ph_reply *r);

/* The registry's event hook: feeds Monitor streams and the log. */
void ph_methods_on_event(ph_event_kind kind, ph_plugin *p, const char *message, void *ud);

/* The cache's trust hook: policy and pins on the file and its copy. */
int ph_daemon_check_cb(const struct stat *file_st, int image_fd, void *ud, char *err, size_t err_size);

/* The cache's init hook: the quarantine marker around init. Pool threads. */
void ph_daemon_init_cb(const char *name, uint64_t generation, bool done, void *ud);
/* Loads every plugin clients had loaded (after the first scan). */
void ph_methods_restore(ph_daemon *d);

/* The cache's garbage hook: schedules a reap on the pool. Any thread. */
void ph_daemon_garbage_cb(void *ud);

uint64_t ph_now_ms(void);

#endif
