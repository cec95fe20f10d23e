/* The sandbox of plughost-worker: the process that runs one untrusted
 * plugin is confined, irreversibly, before the plugin is loaded: resource
 * limits, an unprivileged user, no capabilities, Landlock (read-only
 * filesystem, no TCP, no signals or abstract sockets outside) and a seccomp
 * allowlist (worker/sandbox.c keeps the table). */
#ifndef PH_WORKER_SANDBOX_H
#define PH_WORKER_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ph_sandbox_opts {
        uid_t uid;
        gid_t gid;
        bool set_ids;           /* drop to uid/gid (setgroups to {gid} first) when set */
        uint64_t limit_as;      /* RLIMIT_AS bytes; 0: leave */
        uint64_t limit_cpu;     /* RLIMIT_CPU seconds; 0: leave */
        uint64_t limit_nofile;  /* RLIMIT_NOFILE; 0: leave */
        uint64_t limit_nproc;   /* RLIMIT_NPROC (every task of the real uid); 0: leave */
        pid_t parent;           /* when > 0: the process whose end kills this one
                                 * (PR_SET_PDEATHSIG, set again after the ids
                                 * change, which clears it); fails if it is gone */
        int keep_fd;            /* the one inherited fd the worker serves on (a unix
                                 * socketpair end); everything above 2 except it and
                                 * the plugin's memfd is already closed by the caller */
} ph_sandbox_opts;

/* Applies everything, irreversibly, to the calling process, which must be
 * single-threaded (seccomp and Landlock bind this thread only, and the
 * filter's pid checks use getpid()); with other threads running it fails
 * with -EINVAL and changes nothing. In order: RLIMIT_CORE 0 and the
 * configured limits; the ids when set_ids; all capabilities dropped when
 * still euid 0; not dumpable; no_new_privs; Landlock when the kernel has
 * it; the seccomp allowlist. Returns 0 or -errno; err (err_size bytes, may
 * be NULL) gets the failing step on error, and on success either "" or a
 * note (e.g. that Landlock is missing, which is not an error). A failure
 * can leave the process half-confined: the caller must exit. */
int ph_sandbox_apply(const ph_sandbox_opts *o, char *err, size_t err_size);

/* The Landlock ABI version the last successful ph_sandbox_apply() enforced,
 * or 0 when the kernel had no Landlock (or apply was not called): for Info
 * and logging. */
int ph_sandbox_landlock_abi(void);

#endif
