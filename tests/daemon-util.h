/* Helpers of the daemon tests: start the real plughostd in a mkdtemp
 * directory, talk Varlink to it over its socket, stop it and check how it
 * exited. Every helper fails the test (ck_assert) when something is off. */
#ifndef PH_DAEMON_UTIL_H
#define PH_DAEMON_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* How long a helper waits for the daemon (start, a reply, exit). */
#define DU_TIMEOUT_MS 20000

typedef struct du_daemon {
        char *dir;                      /* mkdtemp; removed by du_stop */
        char *plugins;                  /* dir/plugins, the one plugin directory */
        char *socket;                   /* dir/sock */
        char *state;                    /* dir/state */
        char *config;                   /* dir/plughostd.conf (empty unless written) */
        char *log;                      /* dir/plughostd.log: the daemon's stderr */
        pid_t pid;                      /* 0 when not running */
        bool dirs_from_config;          /* start without -p: the config's directories */
        void (*child_setup)(const struct du_daemon *d); /* run in the child before exec, or NULL */
} du_daemon;

/* One client connection with its read buffer. */
typedef struct du_conn {
        int fd;
        char *buf;
        size_t len, cap;
} du_conn;

/* Makes the directories and an empty configuration file. */
void du_init(du_daemon *d);
/* Copies the file src into the plugin directory as name (through a
 * temporary name, so that a scan never sees it half-written). */
void du_add_plugin(du_daemon *d, const char *src, const char *name);
/* Writes the configuration file (before du_start). */
void du_write_config(du_daemon *d, const char *text);
/* Starts $PH_BUILDDIR/plughostd and returns once it answers a Status. */
void du_start(du_daemon *d);
/* SIGTERM, then waits for the exit and asserts status 0; removes the
 * directory. Safe on a daemon that was never started. */
void du_stop(du_daemon *d);
/* The same for a daemon already sent SIGTERM: a second one could come
 * after it restored the default action, and kill it. */
void du_wait_stop(du_daemon *d);

/* Resident memory of a process, kB. */
long du_rss_kb(pid_t pid);

du_conn *du_connect(const du_daemon *d);
/* Closes and frees; NULL is fine. */
void du_close(du_conn *c);
/* Sends json and its NUL. */
void du_send(du_conn *c, const char *json);
/* Sends bytes as they are; returns false when the daemon hung up first. */
bool du_send_raw(du_conn *c, const void *data, size_t n);
/* The next reply, parsed; NULL when the daemon closed the connection.
 * Fails the test after DU_TIMEOUT_MS or on a reply that is not JSON. */
json_t *du_recv(du_conn *c);
/* True when no reply arrives within ms (nothing buffered either). */
bool du_quiet(du_conn *c, int ms);

/* One request on a new connection; the reply (never NULL). */
json_t *du_request(du_daemon *d, const char *json);
/* Same, formatted. */
json_t *du_requestf(du_daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The reply's error name, or NULL; its parameters (borrowed). */
const char *du_error(json_t *reply);
json_t *du_params(json_t *reply);
/* Shorthands on a reply's parameters. */
const char *du_str(json_t *obj, const char *path);
long long du_int(json_t *obj, const char *path);

/* Asserts the reply is the error name, and the daemon still answers a
 * Status on a new connection. Releases reply. */
void du_assert_error(du_daemon *d, json_t *reply, const char *name);
void du_assert_serving(du_daemon *d);

#endif
