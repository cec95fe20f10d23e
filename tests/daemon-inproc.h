/* The daemon's modules run inside a test process: the registry, lifecycle,
 * operations, scanner and server of plughostd (all of daemon/ but main.c),
 * wired as main.c wires them, on a socket in a mkdtemp directory. The test
 * is its own client: it sends a request, then turns the loop until the
 * reply arrives, and can look at the daemon's state in between. Every
 * helper fails the test (ck_assert) when something is off. */
#ifndef PH_DAEMON_INPROC_H
#define PH_DAEMON_INPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"

/* How long a helper waits for the loop to do something. */
#define IP_TIMEOUT_MS 20000

typedef struct ip_daemon {
        ph_daemon d;                    /* first: dispatch's userdata is &d */
        uv_loop_t loop;
        char *dir;                      /* mkdtemp; removed by ip_stop */
        char *plugins;                  /* dir/plugins: the first plugin directory */
        char *odd;                      /* the second: its name has a control
                                         * character and bytes that are not UTF-8 */
        char *config;                   /* dir/plughostd.conf */
        char *socket;
        char *state;
        bool started;
} ip_daemon;

typedef struct ip_conn {
        int fd;
        char *buf;
        size_t len, cap;
} ip_conn;

/* Makes the directories and an empty configuration file. */
void ip_init(ip_daemon *h);
void ip_write_config(ip_daemon *h, const char *text);
/* Builds the configuration and the modules, scans every directory, then
 * accepts clients. dispatch gets &h->d as its userdata (it may call
 * ph_methods_dispatch). */
void ip_start(ip_daemon *h, ph_server_dispatch_fn dispatch);
/* Stops as SIGTERM would (calls drain, instances are finalised), frees
 * everything and removes the directory. */
void ip_stop(ip_daemon *h);

/* Turns the loop for about ms. */
void ip_pump(ip_daemon *h, int ms);
/* A scan of every directory, applied, as Rescan does. */
void ip_rescan(ip_daemon *h);

/* Clients of the in-process server. */
ip_conn *ip_connect(ip_daemon *h);
void ip_close(ip_conn *c);
/* Sends json and its NUL. */
void ip_send(ip_conn *c, const char *json);
/* Turns the loop until c has a whole message; returns its text (malloc'd,
 * without the NUL). Fails the test after IP_TIMEOUT_MS. */
char *ip_recv(ip_daemon *h, ip_conn *c);
/* One request on a new connection, its reply. */
char *ip_request(ip_daemon *h, const char *json);

/* ph_now_ms (main.c's, which is not linked in) stands still from now on
 * at its current value, so that uptimeSeconds is the same for the daemon
 * and the oracle; 0 lets it run again. */
void ip_clock_freeze(bool freeze);

#endif
