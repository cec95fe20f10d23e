/* The Landlock step of the worker's sandbox: every access right the running
 * kernel's ABI knows is handled, and only reading, listing and mapping
 * beneath the system directories (plus writing /dev/null) is granted back:
 * not the daemon's state, runtime or plugin directories, /tmp, /var or
 * /home. The uapi header of
 * the build machine may predate the kernel, so the rights and the ruleset
 * attribute of ABI 3..6 are spelled out here. */
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox-internal.h"

/* The newest ABI whose rights this file knows (7 added only logging). */
#define LL_ABI_KNOWN 7

#define LL_FS_TRUNCATE          (1ULL << 14)    /* ABI 3 */
#define LL_FS_IOCTL_DEV         (1ULL << 15)    /* ABI 5 */
#define LL_NET_BIND_TCP         (1ULL << 0)     /* ABI 4 */
#define LL_NET_CONNECT_TCP      (1ULL << 1)     /* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX  (1ULL << 0)     /* ABI 6 */
#define LL_SCOPE_SIGNAL         (1ULL << 1)     /* ABI 6 */

/* struct landlock_ruleset_attr as of ABI 6; the kernel is told how much of
 * it the running ABI reads. */
struct ll_ruleset_attr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;
        uint64_t scoped;
};

static uint64_t ll_fs_rights(int abi)
{
        /* ABI 1: execute .. make_sym, bits 0-12. */
        uint64_t r = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;

        if (abi >= 2)
                r |= LANDLOCK_ACCESS_FS_REFER;
        if (abi >= 3)
                r |= LL_FS_TRUNCATE;
        if (abi >= 5)
                r |= LL_FS_IOCTL_DEV;
        return r;
}

/* What a plugin may read: the system's programs, libraries, configuration
 * and the kernel's views; absent ones are skipped. */
static const char *const ll_readable[] = {
        "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/opt",
        "/proc", "/sys", "/dev",
};

/* Grants allowed (masked to what is handled) beneath path. */
static int ll_allow(int ruleset, const char *path, uint64_t allowed, uint64_t handled)
{
        struct landlock_path_beneath_attr pb = { .allowed_access = allowed & handled };
        int r = 0;

        pb.parent_fd = open(path, O_PATH | O_CLOEXEC);
        if (pb.parent_fd < 0)
                return -errno;
        if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
                r = -errno;
        close(pb.parent_fd);
        return r;
}

int ph__sandbox_landlock(char *err, size_t err_size)
{
        struct ll_ruleset_attr attr = { 0 };
        size_t attr_size = sizeof(attr.handled_access_fs);
        int abi, ruleset, r;

        abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
        if (abi < 0) {
                /* Not built in (ENOSYS) or off at boot (EOPNOTSUPP). */
                if (errno == ENOSYS || errno == EOPNOTSUPP)
                        return 0;
                return ph__sandbox_fail(err, err_size, -errno, "landlock: probing the ABI");
        }
        if (abi > LL_ABI_KNOWN)
                abi = LL_ABI_KNOWN;

        attr.handled_access_fs = ll_fs_rights(abi);
        if (abi >= 4) {
                /* No rule grants these: no TCP bind or connect at all. */
                attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
                attr_size = offsetof(struct ll_ruleset_attr, scoped);
        }
        if (abi >= 6) {
                attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
                attr_size = sizeof(attr);
        }
        ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
        if (ruleset < 0)
                return ph__sandbox_fail(err, err_size, -errno, "landlock: creating the ruleset (ABI %d)", abi);

        /* Read and map system files and libraries (and the image, as
         * /proc/self/fd/N); create, write, remove or rename nothing.
         * Truncate on /dev/null lets fopen(..., "w") of it work. */
        for (size_t i = 0; i < sizeof(ll_readable) / sizeof(ll_readable[0]); i++) {
                r = ll_allow(ruleset, ll_readable[i], LANDLOCK_ACCESS_FS_READ_FILE |
                             LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_EXECUTE,
                             attr.handled_access_fs);
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        ph__sandbox_fail(err, err_size, r, "landlock: a rule for %s", ll_readable[i]);
                        goto fail;
                }
        }
        r = ll_allow(ruleset, "/dev/null", LANDLOCK_ACCESS_FS_WRITE_FILE | LL_FS_TRUNCATE,
                     attr.handled_access_fs);
        if (r < 0) {
                ph__sandbox_fail(err, err_size, r, "landlock: a rule for /dev/null");
                goto fail;
        }
        if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
                r = ph__sandbox_fail(err, err_size, -errno, "landlock: restricting the process");
                goto fail;
        }
        close(ruleset);
        return abi;

fail:
        close(ruleset);
        return r;
}
