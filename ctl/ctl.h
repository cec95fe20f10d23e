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
        bool no_legend;             /* tables without their header lines */
        const char *socket_path;
        const char *interface;      /* list --interface */
        const char *state;          /* list --state */
        const char *field;          /* info, inspect: -F FIELD */
        const char *output;         /* metrics --output FILE */
} ctl_opts;

/* ---- error.c: every message goes out here, once ---- */

/* Set once, before the first message: --json makes each error one JSON
 * object on stderr instead of a "plughostctl: ..." line. */
void ctl_error_set_json(bool json);
/* A usage error; returns CTL_EXIT_USAGE. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A local failure of kind ("plughostctl.ConnectFailed", ...), with extra
 * members for the JSON object (taken; may be NULL). Returns CTL_EXIT_FAILED. */
int ctl_fail(const char *kind, json_t *extra, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* The daemon's error reply (borrowed). Returns CTL_EXIT_FAILED. */
int ctl_fail_reply(json_t *reply);

/* ---- args.c: arguments checked before anything is sent ---- */

/* Each returns 0, or prints the usage error and returns -EINVAL. */
int ctl_check_name(const char *what, const char *s);
int ctl_check_interface(const char *s);
int ctl_check_state(const char *s);
/* The valid states joined with ", ", static storage. */
const char *ctl_states_text(void);

/* ---- field.c: -F FIELD ---- */

/* Checks the first component of a dotted path against the names allowed
 * (NULL-terminated); prints the usage error and returns -EINVAL. */
int ctl_field_check(const char *path, const char *const *fields);
/* Prints the value at path in root (borrowed): strings as text, arrays of
 * scalars one per line, other values as compact JSON; nothing for a
 * missing or null value. With json, the value as JSON. */
void ctl_field_print(json_t *root, const char *path, bool json);

/* ---- command.c: the command table, its options and its help ---- */

typedef struct ctl_command ctl_command;
const ctl_command *ctl_command_find(const char *name);
/* Parses the command's options and runs it; returns an exit code. */
int ctl_command_run(const ctl_command *cmd, ctl_opts *opts, int argc, char **argv);
/* The general usage, or one command's. */
void ctl_help_general(FILE *out);
void ctl_help_command(const ctl_command *cmd, FILE *out);
int ctl_help(const ctl_opts *opts, int argc, char **argv);

/* `inspect FILE...`: offline metadata reader. Returns an exit code. */
int ctl_inspect(const ctl_opts *opts, int argc, char **argv);
extern const char *const ctl_inspect_fields[];

/* commands.c: the commands that ask plughostd. Each returns an exit code. */
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
extern const char *const ctl_info_fields[];

/* metrics.c: `metrics [--output FILE]`, Prometheus's text format. */
int ctl_metrics(const ctl_opts *opts, int argc, char **argv);

/* print.c: text output of the daemon's replies. Each returns 0, or
 * -EBADMSG (printed) for a reply of the wrong shape. */
int ctl_print_list(const ctl_opts *opts, json_t *params);
int ctl_print_query(const ctl_opts *opts, json_t *params);
int ctl_print_info(const ctl_opts *opts, json_t *params);
int ctl_print_load(const ctl_opts *opts, json_t *params);
int ctl_print_call(const ctl_opts *opts, json_t *params);
int ctl_print_rescan(const ctl_opts *opts, json_t *params);
int ctl_print_status(const ctl_opts *opts, json_t *params);
void ctl_print_event(const ctl_opts *opts, json_t *params);
/* v as JSON on stdout, ASCII only, and a newline. */
void ctl_print_json(json_t *v, size_t flags);

/* client.c: a blocking Varlink client. Functions return 0 or a negative
 * errno, and print what went wrong themselves (through error.c). */
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
/* 0 for a reply, -EREMOTEIO for an error reply (printed). */
int ctl_reply_check(json_t *reply);
/* Connects, sends, reads the reply: *ret_params gets its parameters (a
 * new reference). With more, the request asks for a stream and the
 * replies' parameters are joined (arrays one after the other, the last
 * reply's other members). params is taken. */
int ctl_client_call(const ctl_opts *opts, const char *method, json_t *params, bool more,
                    json_t **ret_params);

/* output.c: a text table: rows of cells, printed with aligned columns. */
typedef struct ctl_table ctl_table;

ctl_table *ctl_table_new(size_t n_columns, const char *const *headers);
/* Copies the cells; n_columns of them, NULL prints as "-". Returns 0 or -ENOMEM. */
int ctl_table_add(ctl_table *t, const char *const *cells);
/* Without the header row when legend is false. */
void ctl_table_print(const ctl_table *t, bool legend, FILE *out);
void ctl_table_free(ctl_table *t);

/* Copies s with control characters escaped (\n, \x1b, C1 as \u0080...):
 * for printing untrusted text on a terminal. Caller frees; NULL on ENOMEM. */
char *ctl_escape(const char *s);

#endif
