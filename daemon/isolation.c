/* Isolation settings: parsing and precedence. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "isolation.h"

const char *ph_isolation_mode_name(ph_isolation_mode m)
{
        return m == PH_ISOLATION_PROCESS ? "process" : "inprocess";
}

static int parse_u64(const char *value, uint64_t min, uint64_t max, bool suffixes, uint64_t *ret)
{
        unsigned long long v;
        char *end;

        if (value[0] < '0' || value[0] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(value, &end, 10);
        if (errno || end == value)
                return -EINVAL;
        if (suffixes && *end) {
                unsigned shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;

                if (!shift || end[1] || v > (max >> shift))
                        return -EINVAL;
                v <<= shift;
                end++;
        }
        if (*end || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Whether this process may take other ids for its workers: root, or
 * CAP_SETUID and CAP_SETGID in its effective set. */
static bool may_set_ids(void)
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = { 0 };

        if (geteuid() == 0)
                return true;
        if (syscall(SYS_capget, &h, d) < 0)
                return false;
        return (d[0].effective & (1u << CAP_SETUID)) && (d[0].effective & (1u << CAP_SETGID));
}

static int ids_refusal(char *why, size_t why_size)
{
        if (may_set_ids())
                return 0;
        snprintf(why, why_size, "the daemon (uid %u) has no CAP_SETUID and CAP_SETGID to give a "
                 "worker another user or group", (unsigned)geteuid());
        return -EINVAL;
}

/* A user by name or number; its primary group comes with it. */
static int parse_user(ph_isolation *iso, const char *value, char *why, size_t why_size)
{
        struct passwd *pw = getpwnam(value);
        uint64_t n;

        if (!pw && parse_u64(value, 0, 0x7fffffff, false, &n) == 0) {
                if (n == 0)
                        goto root;
                pw = getpwuid((uid_t)n);
        }
        if (!pw) {
                snprintf(why, why_size, "no such user");
                return -EINVAL;
        }
        if (pw->pw_uid == 0)
                goto root;
        iso->has_uid = true;
        iso->uid = pw->pw_uid;
        if (!iso->has_gid)
                iso->gid = pw->pw_gid;
        return ids_refusal(why, why_size);
root:
        snprintf(why, why_size, "a worker does not run as root");
        return -EINVAL;
}

static int parse_group(ph_isolation *iso, const char *value, char *why, size_t why_size)
{
        struct group *gr = getgrnam(value);
        uint64_t n;

        if (!gr && parse_u64(value, 0, 0x7fffffff, false, &n) == 0) {
                if (n == 0)
                        goto root;
                gr = getgrgid((gid_t)n);
        }
        if (!gr) {
                snprintf(why, why_size, "no such group");
                return -EINVAL;
        }
        if (gr->gr_gid == 0)
                goto root;
        iso->has_gid = true;
        iso->gid = gr->gr_gid;
        return ids_refusal(why, why_size);
root:
        snprintf(why, why_size, "a worker does not run with group root");
        return -EINVAL;
}

/* A Limit...= key: its value within [min, max], or why not. */
static int parse_limit(const char *value, uint64_t min, uint64_t max, bool suffixes,
                       uint64_t *ret, const char *what, char *why, size_t why_size)
{
        if (parse_u64(value, min, max, suffixes, ret) == 0)
                return 0;
        snprintf(why, why_size, "expected %s from %llu to %llu%s", what, (unsigned long long)min,
                 (unsigned long long)max, suffixes ? " (or with a K, M or G suffix: at least 64M)" : "");
        return -EINVAL;
}

int ph_isolation_key(ph_isolation *iso, const char *name, const char *value, char *why,
                     size_t why_size)
{
        if (strcmp(name, "Isolation") == 0) {
                if (strcmp(value, "process") == 0)
                        iso->mode = PH_ISOLATION_PROCESS;
                else if (strcmp(value, "inprocess") == 0)
                        iso->mode = PH_ISOLATION_INPROCESS;
                else {
                        snprintf(why, why_size, "expected inprocess or process");
                        return -EINVAL;
                }
                return 0;
        }
        if (strcmp(name, "User") == 0)
                return parse_user(iso, value, why, why_size);
        if (strcmp(name, "Group") == 0)
                return parse_group(iso, value, why, why_size);
        if (strcmp(name, "LimitAS") == 0)
                return parse_limit(value, PH_ISOLATION_AS_MIN, UINT64_C(1) << 46, true, &iso->limit_as,
                                   "bytes", why, why_size);
        if (strcmp(name, "LimitCPU") == 0)
                return parse_limit(value, 1, 1u << 30, false, &iso->limit_cpu, "seconds", why, why_size);
        if (strcmp(name, "LimitNOFILE") == 0)
                return parse_limit(value, PH_ISOLATION_NOFILE_MIN, 1u << 20, false, &iso->limit_nofile,
                                   "descriptors", why, why_size);
        if (strcmp(name, "LimitNPROC") == 0)
                return parse_limit(value, PH_ISOLATION_NPROC_MIN, 1u << 22, false, &iso->limit_nproc,
                                   "tasks", why, why_size);
        return -ENOENT;
}

void ph_isolation_merge(ph_isolation *base, const ph_isolation *over)
{
        if (over->mode != PH_ISOLATION_UNSET)
                base->mode = over->mode;
        if (over->has_uid) {
                base->has_uid = true;
                base->uid = over->uid;
                if (!over->has_gid && !base->has_gid)
                        base->gid = over->gid;
        }
        if (over->has_gid) {
                base->has_gid = true;
                base->gid = over->gid;
        }
        if (over->limit_as)
                base->limit_as = over->limit_as;
        if (over->limit_cpu)
                base->limit_cpu = over->limit_cpu;
        if (over->limit_nofile)
                base->limit_nofile = over->limit_nofile;
        if (over->limit_nproc)
                base->limit_nproc = over->limit_nproc;
}
