/* plughostctl: shared declarations of the command-line client. */
#ifndef PH_CTL_H
#define PH_CTL_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

/* Exit codes, as documented in plughostctl(1). */
#define CTL_EXIT_OK 0
#define CTL_EXIT_FAILED 1
#define CTL_EXIT_USAGE 2

typedef struct ctl_opts {
        bool json;
        const char *socket_path;
        const char *interface;      /* list --interface */
        const char *state;          /* list --state */
} ctl_opts;

/* `inspect FILE...`: offline metadata reader. Returns an exit code. */
int ctl_inspect(const ctl_opts *opts, int argc, char **argv);

/* ctl-commands.c: the commands that ask plughostd. Each returns an exit
 * code and prints the daemon's error on stderr. */
int ctl_list(const ctl_opts *opts, int argc, char **argv);
int ctl_info(const ctl_opts *opts, int argc, char **argv);
int ctl_query(const ctl_opts *opts, int argc, char **argv);
int ctl_load(const ctl_opts *opts, int argc, char **argv);
int ctl_unload(const ctl_opts *opts, int argc, char **argv);
int ctl_call(const ctl_opts *opts, int argc, char **argv);
int ctl_rescan(const ctl_opts *opts, int argc, char **argv);
int ctl_status(const ctl_opts *opts, int argc, char **argv);
/* Streams events until SIGINT or SIGTERM (then exits 0). */
int ctl_monitor(const ctl_opts *opts, int argc, char **argv);

/* ctl-client.c: a blocking Varlink client. Functions return 0 or a
 * negative errno, and print what went wrong on stderr themselves. */
typedef struct ctl_client ctl_client;

/* --socket, else $PLUGHOST_SOCKET, else the daemon's default. */
const char *ctl_socket_path(const ctl_opts *opts);
int ctl_client_open(const ctl_opts *opts, ctl_client **ret);
/* Waits for replies with mask as the signal mask (ppoll), so that signals
 * blocked otherwise end a wait without a race. mask is borrowed. */
void ctl_client_set_wait_mask(ctl_client *c, const sigset_t *mask);
void ctl_client_free(ctl_client *c);
/* Sends one request; params is taken (NULL: none). */
int ctl_client_send(ctl_client *c, const char *method, json_t *params, bool more);
/* The next reply, whole (caller owns it). -EINTR, not printed, when a
 * signal interrupted the wait; -ECONNRESET when the daemon hung up. */
int ctl_client_recv(ctl_client *c, json_t **ret_reply);
/* 0 for a reply, -EREMOTEIO for an error reply (its name and message
 * printed). */
int ctl_reply_check(json_t *reply);
/* Connects, sends, reads one reply: *ret_params gets its parameters (a
 * new reference). params is taken. */
int ctl_client_call(const ctl_opts *opts, const char *method, json_t *params, json_t **ret_params);

/* A text table: rows of cells, printed with aligned columns. */
typedef struct ctl_table ctl_table;

ctl_table *ctl_table_new(size_t n_columns, const char *const *headers);
/* Copies the cells; n_columns of them, NULL prints as "-". Returns 0 or -ENOMEM. */
int ctl_table_add(ctl_table *t, const char *const *cells);
void ctl_table_print(const ctl_table *t, FILE *out);
void ctl_table_free(ctl_table *t);

/* Copies s with control characters escaped (\n, \x1b, ...): for printing
 * untrusted text on a terminal. Caller frees; NULL on ENOMEM. */
char *ctl_escape(const char *s);

#endif
