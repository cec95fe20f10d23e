/* Private to worker/: the steps of ph_sandbox_apply() kept in files of
 * their own, and the one way they report a failure. */
#ifndef PH_WORKER_SANDBOX_INTERNAL_H
#define PH_WORKER_SANDBOX_INTERNAL_H

#include <stddef.h>

/* Formats "step: strerror(-r)" into err (may be NULL) and returns r (< 0). */
int ph__sandbox_fail(char *err, size_t err_size, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Restricts the calling thread with Landlock: the filesystem read-only
 * (writes to /dev/null only), no TCP bind/connect, and with ABI >= 6 no
 * abstract unix sockets or signals outside the domain. Needs no_new_privs.
 * Returns the ABI version enforced, 0 when the kernel has no Landlock
 * (nothing done), or -errno with err filled. */
int ph__sandbox_landlock(char *err, size_t err_size);

#endif
