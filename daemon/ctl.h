/* plughostctl: shared declarations of the command-line client. */
#ifndef PH_CTL_H
#define PH_CTL_H

#include <stdbool.h>
#include <stdio.h>

/* Exit codes, as documented in plughostctl(1). */
#define CTL_EXIT_OK 0
#define CTL_EXIT_FAILED 1
#define CTL_EXIT_USAGE 2

typedef struct ctl_opts {
        bool json;
        const char *socket_path;
} ctl_opts;

/* `inspect FILE...`: offline metadata reader. Returns an exit code. */
int ctl_inspect(const ctl_opts *opts, int argc, char **argv);

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
