/* Isolation settings: parsing and precedence. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isolation.h"

const char *ph_isolation_mode_name(ph_isolation_mode m)
{
        return m == PH_ISOLATION_PROCESS ? "process" : "inprocess";
}

static int parse_u64(const char *value, uint64_t max, bool suffixes, uint64_t *ret)
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
        if (*end || v == 0 || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* A user by name or number; its primary group comes with it. */
static int parse_user(ph_isolation *iso, const char *value, char *why, size_t why_size)
{
        struct passwd *pw = getpwnam(value);
        uint64_t n;

        if (!pw && parse_u64(value, 0x7fffffff, false, &n) == 0)
                pw = getpwuid((uid_t)n);
        if (!pw) {
                snprintf(why, why_size, "no such user");
                return -EINVAL;
        }
        if (pw->pw_uid == 0) {
                snprintf(why, why_size, "a worker does not run as root; leave User= unset to run "
                         "as the daemon's user");
                return -EINVAL;
        }
        iso->has_uid = true;
        iso->uid = pw->pw_uid;
        if (!iso->has_gid)
                iso->gid = pw->pw_gid;
        return 0;
}

static int parse_group(ph_isolation *iso, const char *value, char *why, size_t why_size)
{
        struct group *gr = getgrnam(value);
        uint64_t n;

        if (!gr && parse_u64(value, 0x7fffffff, false, &n) == 0)
                gr = getgrgid((gid_t)n);
        if (!gr) {
                snprintf(why, why_size, "no such group");
                return -EINVAL;
        }
        iso->has_gid = true;
        iso->gid = gr->gr_gid;
        return 0;
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
        if (strcmp(name, "LimitAS") == 0 &&
            parse_u64(value, UINT64_C(1) << 46, true, &iso->limit_as) < 0) {
                snprintf(why, why_size, "expected bytes, with an optional K, M or G suffix");
                return -EINVAL;
        }
        if (strcmp(name, "LimitCPU") == 0 && parse_u64(value, 1u << 30, false, &iso->limit_cpu) < 0) {
                snprintf(why, why_size, "expected seconds of CPU time, at least 1");
                return -EINVAL;
        }
        if (strcmp(name, "LimitNOFILE") == 0 &&
            parse_u64(value, 1u << 20, false, &iso->limit_nofile) < 0) {
                snprintf(why, why_size, "expected a number of descriptors, at least 1");
                return -EINVAL;
        }
        if (strcmp(name, "LimitAS") == 0 || strcmp(name, "LimitCPU") == 0 ||
            strcmp(name, "LimitNOFILE") == 0)
                return 0;
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
}
