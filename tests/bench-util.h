/* Scaffolding shared by the benchmarks (tests/bench-*.c): the scratch
 * directory and its cleanup, small file helpers, the SDK-built plugin,
 * the header line, clocks. */
#ifndef PH_BENCH_UTIL_H
#define PH_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BU_PATH_SIZE 64u
#define BU_DIR_DEPTH_MAX 3u

typedef char bu_path[BU_PATH_SIZE];

const char *bu_met(bool ok);
uint64_t bu_now_ns(void);
int bu_u64_cmp(const void *a, const void *b);

/* "plughost <prog> on <host>: nproc <nproc>, <uname>[, <cpu model>]". */
void bu_print_header(const char *prog, long nproc);

/* Makes the scratch directory from tmpl (a mkdtemp template, updated in
 * place and kept), removed at exit and on fatal signals by cleanup, or by
 * bu_dir_remove if cleanup is NULL. Subdirectories are emptied down to
 * depth levels (at most BU_DIR_DEPTH_MAX). With watchdog_sec > 0, SIGALRM
 * ends the run too after writing watchdog_msg to stderr. */
int bu_dir_make(char *tmpl, unsigned depth, void (*cleanup)(void), unsigned watchdog_sec,
                const char *watchdog_msg);
/* Empties and removes it; async-signal-safe, and a no-op in children. */
void bu_dir_remove(void);
bool bu_is_owner(void);
void bu_dir_path(char *buf, size_t size, const char *name);

int bu_fd_write_all(int fd, const void *buf, size_t size);
int bu_file_put(const char *path, const void *buf, size_t size, mode_t mode);
/* Reads the whole (small) file into a malloc'd buffer the caller frees. */
int bu_file_get(const char *path, unsigned char **ret, size_t *ret_size);
/* Reads every file once, whole, so that what is measured finds them cached. */
void bu_files_warm(bu_path *paths, unsigned n, size_t size);

/* Writes source as plugin.c in the scratch directory, builds plugin.so from
 * it with $CC against the SDK under $PH_SRCDIR, and reads it back. */
int bu_plugin_make(const char *source, unsigned char **ret_img, size_t *ret_size);

#endif
