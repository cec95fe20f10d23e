/* Shared helpers of the Check suites: fixture paths, temporary files,
 * byte patches and running a program to capture its output. */
#ifndef PH_TESTUTIL_H
#define PH_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* $PH_FIXTURES/name (or $PH_EXAMPLES when examples is set). Static buffer. */
const char *tu_fixture(const char *name);
const char *tu_example(const char *name);

/* A fresh mkdtemp directory, removed with its content by tu_tmpdir_free. */
char *tu_tmpdir(void);
void tu_tmpdir_free(char *dir);

/* Joins dir and name into a malloc'd path. */
char *tu_path(const char *dir, const char *name);

/* Reads a whole (small) file; *ret_size gets its size. Aborts the test on error. */
unsigned char *tu_read_file(const char *path, size_t *ret_size);
void tu_write_file(const char *path, const void *data, size_t size);
void tu_copy_file(const char *from, const char *to);

/* Runs argv (argv[0] is a path) with stdout captured into a malloc'd
 * string; returns the exit status, or -1 if it did not exit normally. */
int tu_run(char *const argv[], char **ret_stdout);

/* Runs a suite in fork mode and returns the number of failed tests. */
int tu_run_suite(Suite *s);

#endif
