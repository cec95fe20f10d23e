/* More helpers of the daemon tests, on top of daemon-util: start the daemon
 * from its configuration file alone, kill it and wait for its death, read
 * Monitor events and poll the registry against deadlines. Like daemon-util,
 * every helper fails the test (ck_assert) when something is off. */
#ifndef PH_DAEMON_UTIL2_H
#define PH_DAEMON_UTIL2_H

#include <jansson.h>
#include <stdbool.h>

#include "daemon-util.h"

long long du2_now_ms(void);
void du2_nap_ms(long ms);

/* Starts the daemon like du_start, but without -p: the plugin directories
 * are the configuration file's (d->config). */
void du2_start_from_config(du_daemon *d);
/* Waits up to ms for the daemon to exit by itself; returns its wait
 * status and forgets its pid. Fails the test if it is still running. */
int du2_wait_exit(du_daemon *d, int ms);
/* SIGKILL and reap, as a crash would leave things. */
void du2_kill9(du_daemon *d);

/* Opens a Monitor stream and reads its first (empty) reply. */
du_conn *du2_monitor(du_daemon *d);
/* Reads events until one of kind (NULL: any) for name (NULL: any)
 * arrives, before the absolute deadline; returns it (owned by the caller)
 * or NULL when the deadline passed or the stream ended. */
json_t *du2_wait_event(du_conn *c, const char *kind, const char *name, long long deadline_ms);

/* List, Info and Status; the parameters are returned (owned). */
json_t *du2_list(du_daemon *d);
/* The plugin's Info parameters, or NULL on NoSuchPlugin. */
json_t *du2_info(du_daemon *d, const char *name);
long long du2_status_int(du_daemon *d, const char *key);
/* The plugin object of name in a List's "plugins", or NULL (borrowed). */
json_t *du2_find(json_t *list, const char *name);
/* True if a List's "rejected" names a file whose path ends in /base. */
bool du2_rejected_has(json_t *list, const char *base);
/* Polls Info until the plugin's state is state (or, with state NULL, the
 * plugin is gone) before the deadline; returns whether it happened. */
bool du2_wait_state(du_daemon *d, const char *name, const char *state, int ms);

/* One Call on connection c; the reply (owned). */
json_t *du2_call(du_conn *c, const char *name, const char *method);

/* Whether the daemon's log holds text; polls until ms passed. */
bool du2_log_wait(du_daemon *d, const char *text, int ms);

/* Copies src to dst: the bytes through a temporary file in dst's directory,
 * renamed over dst. */
void du2_copy_over(const char *src, const char *dst);
/* Writes a copy of src whose plugin name (in the metadata note) is
 * replaced by new_name, which must have the same length as the old one. */
void du2_copy_renamed(const char *src, const char *old_name, const char *new_name, const char *dst);

#endif
